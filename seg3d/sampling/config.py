"""What the sampler draws: class balance and augmentation, frozen and validated.

Read from a TOML table such as::

    [sampling]
    foreground_share = 0.5          # share of centres on any foreground label
    # class_shares = {1 = 0.3, 2 = 0.2}   # or per label value; rest background

    [sampling.augmentation]
    flip_axes = [0]                 # canonical voxel axes, each flipped with p = 1/2
    rotate_in_plane = false         # 90-degree turns in the i-j plane
    intensity_scale_std = 0.1       # per channel, multiplier ~ N(1, std)
    intensity_shift_std = 0.1       # per channel, offset ~ N(0, std) (z-score units)
    gamma_probability = 0.3         # per channel
    gamma_range = [0.7, 1.5]

(:func:`seg3d.config.from_dict` builds these classes from such a table; a bad
value raises :class:`~seg3d.errors.ConfigError` naming the key.) The defaults
follow the paper for the class balance (half of the centres on foreground);
the augmentation defaults are seg3d's own, moderate choices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class AugmentationConfig:
    """Random transforms applied to every sample, identically on all pathways.

    Spatial transforms (flips, rotations) act on the volume the sample is read
    from, so they move the target with the segments. Intensity transforms act
    per channel, pointwise, on voxels inside the volume: padding stays
    :data:`~seg3d.sampling.padding.PAD_VALUE`, as at inference.

    Attributes:
        flip_axes: voxel axes (0 = i, 1 = j, 2 = k) that are each reversed with
            probability 1/2. After reorientation to RAS, axis 0 is left-right,
            the brain's plane of near-symmetry.
        rotate_in_plane: rotate by 0, 90, 180 or 270 degrees in the i-j plane
            (equally likely); needs segments square in that plane.
        intensity_scale_std: standard deviation of the per-channel multiplier,
            drawn from N(1, std).
        intensity_shift_std: standard deviation of the per-channel offset,
            drawn from N(0, std), in units of the normalised image (z-scores).
        gamma_probability: per channel, probability of a gamma transform.
        gamma_range: ``(low, high)`` gamma, drawn log-uniformly. The transform
            maps the case's channel range ``[min, max]`` onto [0, 1], raises
            it to the power gamma, and maps it back, so the range is kept.
    """

    flip_axes: tuple[int, ...] = (0,)
    rotate_in_plane: bool = False
    intensity_scale_std: float = 0.1
    intensity_shift_std: float = 0.1
    gamma_probability: float = 0.3
    gamma_range: tuple[float, float] = (0.7, 1.5)

    def __post_init__(self) -> None:
        axes = tuple(int(a) for a in self.flip_axes)
        if any(a not in (0, 1, 2) for a in axes) or len(set(axes)) != len(axes):
            raise ValueError(
                f"flip_axes must be distinct axes among 0, 1, 2, not {list(axes)}"
            )
        object.__setattr__(self, "flip_axes", axes)
        for name in ("intensity_scale_std", "intensity_shift_std"):
            _check_range(name, getattr(self, name), 0.0, math.inf)
        _check_range("gamma_probability", self.gamma_probability, 0.0, 1.0)
        low, high = self.gamma_range
        if not 0 < low <= high < math.inf:
            raise ValueError(
                f"gamma_range must be (low, high) with 0 < low <= high, "
                f"not {list(self.gamma_range)}"
            )

    @classmethod
    def none(cls) -> AugmentationConfig:
        """No augmentation at all."""
        return cls(
            flip_axes=(),
            intensity_scale_std=0.0,
            intensity_shift_std=0.0,
            gamma_probability=0.0,
        )


@dataclass(frozen=True)
class SamplingConfig:
    """Where training segments are centred, and how they are augmented.

    Centres always lie inside the case's ROI mask (the whole volume without
    one). A centre on "foreground" lies on a voxel whose label is not 0; a
    centre on background on a voxel labelled 0.

    Attributes:
        foreground_share: share of centres on any foreground label, in [0, 1];
            the paper uses 0.5. Ignored when ``class_shares`` is given.
        class_shares: share of centres per foreground label value (as stored
            in the label files, e.g. ``{1: 0.3, 2: 0.2}``); the rest, ``1 -
            sum``, goes to background. Keys from TOML arrive as strings and are
            converted.
        augmentation: the random transforms.
    """

    foreground_share: float = 0.5
    class_shares: dict[int, float] | None = None
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)

    def __post_init__(self) -> None:
        _check_range("foreground_share", self.foreground_share, 0.0, 1.0)
        if self.class_shares is None:
            return
        shares = {}
        for key, share in self.class_shares.items():
            label = _label_key(key)
            _check_range(f"class_shares[{label}]", share, 0.0, 1.0)
            shares[label] = float(share)
        if 0 in shares:
            raise ValueError(
                "class_shares names foreground labels only; background gets "
                "the rest (1 - their sum), so remove label 0"
            )
        if sum(shares.values()) > 1.0 + 1e-9:
            raise ValueError(
                f"class_shares must sum to at most 1, not {sum(shares.values()):g}"
            )
        object.__setattr__(self, "class_shares", shares)


def _label_key(key: object) -> int:
    try:
        label = int(key)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        label = None
    if label is None or str(label) != str(key).strip():
        raise ValueError(f"class_shares keys must be integer label values, not {key!r}")
    return label


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        bounds = f"in [{low:g}, {high:g}]" if high < math.inf else f">= {low:g}"
        raise ValueError(f"{name} must be {bounds}, not {value!r}")
