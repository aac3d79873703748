"""Measuring and applying per-channel intensity normalisation.

Voxels outside the ROI mask are set to 0 in every normalised channel (every
scheme but ``"none"``), as DeepMedic does: 0 is the mean of a z-scored channel
(the centre of a CT window), so the network sees a neutral value there, and
intensities the statistics never saw cannot reach it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from seg3d.preprocessing.config import ChannelNormalization
from seg3d.preprocessing.record import ChannelStatistics

logger = logging.getLogger(__name__)

# Below this standard deviation (relative to the mean's magnitude) a channel is
# taken as constant: dividing by it would blow rounding noise up to unit size.
_RELATIVE_MIN_SCALE = 1e-6


def measure(
    channel: np.ndarray,
    normalization: ChannelNormalization,
    region_mask: np.ndarray | None,
    region: str,
) -> ChannelStatistics:
    """The statistics that normalise ``channel`` by ``normalization``.

    Args:
        channel: ``(I, J, K)`` float32 intensities.
        normalization: the scheme and its settings.
        region_mask: ``(I, J, K)`` bool voxels to measure over, or ``None`` for
            all voxels; only used by ``"zscore"`` and ``"percentile"``.
        region: what ``region_mask`` is (``"roi"``, ``"nonzero"``, ``"all"``),
            kept in the statistics.
    """
    scheme = normalization.scheme
    if scheme == "none":
        return ChannelStatistics(scheme, "fixed", 0.0, 1.0)
    if scheme == "ct_window":
        low, high = normalization.window  # type: ignore[misc]
        return ChannelStatistics(
            scheme, "fixed", (low + high) / 2, (high - low) / 2, low, high
        )

    values = (channel if region_mask is None else channel[region_mask]).astype(
        np.float64
    )
    clip_low = clip_high = None
    if scheme == "percentile":
        clip_low, clip_high = (
            float(p) for p in np.percentile(values, normalization.percentiles)
        )
        values = np.clip(values, clip_low, clip_high)
    mean, std = float(values.mean()), float(values.std())
    if std <= _RELATIVE_MIN_SCALE * abs(mean) or std == 0.0:
        logger.warning(
            "channel is constant (%g) over the %s voxels; only the mean is removed",
            mean,
            region,
        )
        std = 1.0
    return ChannelStatistics(scheme, region, mean, std, clip_low, clip_high)


def normalize(
    image: np.ndarray,
    statistics: Sequence[ChannelStatistics],
    roi_mask: np.ndarray | None,
) -> np.ndarray:
    """Apply per-channel statistics; zero normalised channels outside the ROI.

    Args:
        image: ``(C, I, J, K)`` float32 intensities.
        statistics: one entry per channel.
        roi_mask: ``(I, J, K)`` bool, or ``None`` where the case has no ROI.

    Returns:
        ``(C, I, J, K)`` float32.
    """
    if len(statistics) != image.shape[0]:
        raise ValueError(
            f"{len(statistics)} channel statistics for {image.shape[0]} channels"
        )
    result = np.empty(image.shape, dtype=np.float32)
    for index, (channel, entry) in enumerate(zip(image, statistics, strict=True)):
        result[index] = _apply(channel.astype(np.float32, copy=False), entry)
        if roi_mask is not None and entry.scheme != "none":
            result[index][~roi_mask] = 0.0
    return result


def _apply(channel: np.ndarray, entry: ChannelStatistics) -> np.ndarray:
    if entry.scheme == "none":
        return channel
    if entry.clip_low is not None or entry.clip_high is not None:
        channel = np.clip(channel, entry.clip_low, entry.clip_high).astype(np.float32)
    return (channel - np.float32(entry.offset)) / np.float32(entry.scale)
