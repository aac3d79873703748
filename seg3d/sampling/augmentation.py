"""Drawing and applying one sample's random transforms.

Every transform here is a transform of the whole volume, applied only to the
voxels a sample reads: spatial ones through the reading itself
(:class:`~seg3d.sampling.extraction.SpatialTransform`), intensity ones
pointwise with per-case constants. An augmented sample is therefore exactly the
sample of an augmented volume, consistent across pathways and target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from seg3d.sampling.config import AugmentationConfig
from seg3d.sampling.extraction import Region, SpatialTransform


@dataclass(frozen=True)
class IntensityTransform:
    """Per channel: gamma on the case's channel range, then scale and shift.

    ``x -> scale * (low + (high - low) * ((x - low) / (high - low)) ** gamma)
    + shift``, where ``low``/``high`` are the channel's minimum and maximum over
    the case (so gamma keeps that range and the map is the same for every voxel
    of the volume).

    Attributes:
        scale: ``(C,)`` multipliers.
        shift: ``(C,)`` offsets, in normalised intensity units.
        gamma: ``(C,)`` exponents; 1 leaves the channel's values unchanged.
    """

    scale: np.ndarray
    shift: np.ndarray
    gamma: np.ndarray

    def apply_(
        self,
        segment: np.ndarray,
        region: Region | None,
        low: Sequence[float],
        high: Sequence[float],
    ) -> None:
        """Transform a segment's in-volume voxels in place.

        Args:
            segment: ``(C, I, J, K)`` float32 segment.
            region: its part inside the volume (padding is left at its value),
                or ``None`` when none of it is.
            low: ``(C,)`` the case's per-channel minimum.
            high: ``(C,)`` the case's per-channel maximum.
        """
        if region is None:
            return
        for channel in range(segment.shape[0]):
            values = segment[(channel, *region)]  # a view: edits land in segment
            gamma = float(self.gamma[channel])
            scale, shift = float(self.scale[channel]), float(self.shift[channel])
            floor = float(low[channel])
            span = float(high[channel]) - floor
            if gamma != 1.0 and span > 0:
                # scale * (floor + span * ((x - floor) / span) ** gamma) + shift,
                # regrouped into four passes over the voxels. x >= floor holds
                # exactly in float arithmetic, so the base is never negative.
                values -= floor
                np.power(values, gamma, out=values)
                values *= scale * span ** (1.0 - gamma)
                values += scale * floor + shift
            else:
                values *= scale
                values += shift


def draw_augmentation(
    rng: np.random.Generator, config: AugmentationConfig, num_channels: int
) -> tuple[SpatialTransform, IntensityTransform | None]:
    """Draw one sample's transforms.

    Args:
        rng: the sample's random generator.
        config: which transforms and how strong.
        num_channels: number of image channels ``C``.

    Returns:
        The spatial transform (possibly the identity) and the intensity
        transform, or ``None`` when the config has no intensity augmentation.
    """
    flip_axes = [a for a in config.flip_axes if rng.random() < 0.5]
    turns = int(rng.integers(4)) if config.rotate_in_plane else 0
    spatial = SpatialTransform.from_flips_and_rotation(flip_axes, turns)

    has_intensity = (
        config.intensity_scale_std > 0
        or config.intensity_shift_std > 0
        or config.gamma_probability > 0
    )
    if not has_intensity:
        return spatial, None
    scale = rng.normal(1.0, config.intensity_scale_std, num_channels)
    shift = rng.normal(0.0, config.intensity_shift_std, num_channels)
    log_low, log_high = np.log(config.gamma_range)
    gamma = np.exp(rng.uniform(log_low, log_high, num_channels))
    gamma[rng.random(num_channels) >= config.gamma_probability] = 1.0
    intensity = IntensityTransform(
        scale.astype(np.float32), shift.astype(np.float32), gamma
    )
    return spatial, intensity
