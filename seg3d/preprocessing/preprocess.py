"""Preprocessing one case: reorient, resample, crop, normalise.

The steps run in that order. Statistics for normalisation are measured after
cropping, over the ROI mask where the case has one, else over each channel's
non-zero voxels, else over all voxels; outside the ROI every normalised channel
is set to 0 (see :mod:`seg3d.preprocessing.normalization`). Images are resampled
linearly or by B-spline, label maps by nearest neighbour or per label, ROI masks
and non-zero masks by nearest neighbour. :func:`preprocess_case`
measures everything a case needs and records it; :func:`apply_record` repeats
a recorded preprocessing without measuring anything, and
:mod:`seg3d.preprocessing.inverse` undoes it for predictions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

from seg3d.data.case import Case
from seg3d.errors import DatasetError, GeometryMismatchError
from seg3d.io.grid import grid_mismatch
from seg3d.io.orientation import Reorientation
from seg3d.io.volume import Affine, Spacing, SpatialShape, Volume
from seg3d.preprocessing.config import ChannelNormalization, PreprocessingConfig
from seg3d.preprocessing.cropping import Box, bounding_box, crop
from seg3d.preprocessing.normalization import measure, normalize
from seg3d.preprocessing.record import ChannelStatistics, PreprocessingRecord
from seg3d.preprocessing.resampling import (
    resample,
    resample_channels,
    resample_label_map,
    resampled_grid,
)

logger = logging.getLogger(__name__)

# Spacings closer than this (relative) to the target are kept as they are:
# resampling onto an identical grid would only cost time and sharpness.
_SPACING_RTOL = 1e-5


@dataclass(eq=False)
class PreprocessedCase:
    """A case on its processed grid: canonical, resampled, cropped, normalised.

    Attributes:
        case_id: the case's identifier.
        image: ``(C, I, J, K)`` float32 normalised intensities.
        label_map: ``(I, J, K)`` integer label values (the input's dtype), or
            ``None`` for unlabelled cases.
        roi_mask: ``(I, J, K)`` bool, or ``None`` without a ROI mask.
        affine: 4x4 voxel-to-RAS+ mm affine of the processed grid.
        record: how to repeat and undo the preprocessing.
    """

    case_id: str
    image: np.ndarray
    label_map: np.ndarray | None
    roi_mask: np.ndarray | None
    affine: Affine
    record: PreprocessingRecord

    @property
    def spacing(self) -> Spacing:
        """Voxel size in mm along i, j, k of the processed grid."""
        return self.record.resampled_spacing

    @property
    def spatial_shape(self) -> SpatialShape:
        i, j, k = self.image.shape[1:]
        return int(i), int(j), int(k)


@dataclass(eq=False)
class _Arrays:
    """A case's arrays on one grid, between two steps."""

    image: np.ndarray  # (C, I, J, K) float32
    label_map: np.ndarray | None  # (I, J, K)
    roi_mask: np.ndarray | None  # (I, J, K) bool
    nonzero: np.ndarray | None  # (C, I, J, K) bool, only where it is needed
    affine: Affine


def preprocess_case(case: Case, config: PreprocessingConfig) -> PreprocessedCase:
    """Reorient, resample, crop and normalise a case; record every step.

    Args:
        case: the case in its files' axis order.
        config: what to do.

    Returns:
        The processed case; its ``record`` repeats or undoes the processing.

    Raises:
        ConfigError: ``config.normalization`` lists a different number of
            normalisations than the case has channels.
        DatasetError: the case's ROI mask is empty (before or after
            resampling).
    """
    normalizations = config.normalization_for(case.num_channels)
    reorientation = Reorientation.for_grid(case.affine, case.spatial_shape)
    needs_nonzero = case.roi_mask is None and (
        config.crop != "none"
        or any(n.scheme in ("zscore", "percentile") for n in normalizations)
    )
    canonical = _canonical(case, reorientation, case.affine, needs_nonzero)

    shape, affine = _target_grid(canonical, config)
    resampled = _resample(canonical, shape, affine, config)
    _check_roi(case.case_id, resampled.roi_mask, resampled is not canonical)

    start, stop = _crop_box(case.case_id, resampled, config)
    cropped = _crop(resampled, start, stop)
    statistics = tuple(
        _measure(cropped, index, normalization)
        for index, normalization in enumerate(normalizations)
    )

    record = PreprocessingRecord(
        case_id=case.case_id,
        config=config,
        reorientation=reorientation,
        original_affine=case.affine,
        resampled_shape=shape,
        resampled_affine=affine,
        crop_start=start,
        crop_stop=stop,
        statistics=statistics,
    )
    logger.debug(
        "%s: %s %s -> %s at %s mm, crop %s..%s",
        case.case_id,
        reorientation.source_codes,
        case.spatial_shape,
        shape,
        record.resampled_spacing,
        start,
        stop,
    )
    return _finish(case.case_id, cropped, record)


def apply_record(case: Case, record: PreprocessingRecord) -> PreprocessedCase:
    """Repeat a recorded preprocessing on a case, measuring nothing again.

    The same grids, crop box and normalisation statistics are used, so applying
    a case's own record reproduces :func:`preprocess_case`'s arrays exactly.

    Raises:
        GeometryMismatchError: the case is not on the grid the record was made
            for, or has another number of channels.
    """
    _check_matches(case, record)
    # The case's affine may differ from the recorded one by rounding; taking the
    # recorded one keeps "no resampling" exact.
    canonical = _canonical(case, record.reorientation, record.original_affine, False)
    resampled = _resample(
        canonical, record.resampled_shape, record.resampled_affine, record.config
    )
    cropped = _crop(resampled, record.crop_start, record.crop_stop)
    return _finish(case.case_id, cropped, replace(record, case_id=case.case_id))


def _canonical(
    case: Case, reorientation: Reorientation, affine: Affine, with_nonzero: bool
) -> _Arrays:
    def reorient(array: np.ndarray | None) -> np.ndarray | None:
        return None if array is None else reorientation.to_canonical(array)

    image = reorientation.to_canonical(
        case.image.astype(np.float32, copy=False), channels_first=True
    )
    return _Arrays(
        image=image,
        label_map=reorient(case.label_map),
        roi_mask=reorient(
            None if case.roi_mask is None else case.roi_mask.astype(bool)
        ),
        nonzero=image != 0 if with_nonzero else None,
        affine=reorientation.canonical_affine(affine),
    )


def _target_grid(
    canonical: _Arrays, config: PreprocessingConfig
) -> tuple[SpatialShape, Affine]:
    shape = tuple(int(n) for n in canonical.image.shape[1:])
    spacing = np.sqrt((canonical.affine[:3, :3] ** 2).sum(axis=0))
    target = config.target_spacing
    if target is None or np.allclose(spacing, target, rtol=_SPACING_RTOL, atol=0):
        return shape, canonical.affine  # type: ignore[return-value]
    return resampled_grid(shape, canonical.affine, target)  # type: ignore[arg-type]


def _resample(
    arrays: _Arrays, shape: SpatialShape, affine: Affine, config: PreprocessingConfig
) -> _Arrays:
    same_grid = tuple(arrays.image.shape[1:]) == tuple(shape) and np.array_equal(
        affine, arrays.affine
    )
    if same_grid:
        return arrays
    grid = (arrays.affine, shape, affine)
    label_map = roi_mask = nonzero = None
    if arrays.label_map is not None:
        label_map = resample_label_map(
            arrays.label_map, *grid, config.label_interpolation
        )
    if arrays.roi_mask is not None:
        roi_mask = resample(arrays.roi_mask, *grid, "nearest")
    if arrays.nonzero is not None:
        nonzero = np.stack(
            [resample(mask, *grid, "nearest") for mask in arrays.nonzero]
        )
    image = resample_channels(arrays.image, *grid, config.image_interpolation)
    return _Arrays(image, label_map, roi_mask, nonzero, affine)


def _check_roi(case_id: str, roi_mask: np.ndarray | None, resampled: bool) -> None:
    if roi_mask is not None and not roi_mask.any():
        when = " after resampling" if resampled else ""
        raise DatasetError(
            f"case {case_id}: the ROI mask is empty{when}; give a mask that covers "
            "the region to segment"
        )


def _crop_box(case_id: str, arrays: _Arrays, config: PreprocessingConfig) -> Box:
    shape = arrays.image.shape[1:]
    whole: Box = ((0, 0, 0), (int(shape[0]), int(shape[1]), int(shape[2])))
    if config.crop == "none":
        return whole
    if config.crop == "roi" and arrays.roi_mask is not None:
        mask = arrays.roi_mask
    elif arrays.nonzero is not None:
        mask = arrays.nonzero.any(axis=0)  # (I, J, K)
    else:
        mask = (arrays.image != 0).any(axis=0)  # (I, J, K)
    box = bounding_box(mask, config.crop_margin)
    if box is None:
        logger.warning("case %s: every voxel is zero; keeping the whole grid", case_id)
        return whole
    return box


def _crop(arrays: _Arrays, start: SpatialShape, stop: SpatialShape) -> _Arrays:
    def cut(array: np.ndarray | None) -> np.ndarray | None:
        return None if array is None else crop(array, start, stop)

    shift = np.eye(4)
    shift[:3, 3] = start
    return _Arrays(
        image=crop(arrays.image, start, stop),
        label_map=cut(arrays.label_map),
        roi_mask=cut(arrays.roi_mask),
        nonzero=cut(arrays.nonzero),
        affine=arrays.affine @ shift,
    )


def _measure(
    arrays: _Arrays, index: int, normalization: ChannelNormalization
) -> ChannelStatistics:
    # The ROI where there is one, else the channel's non-zero voxels, else all.
    if arrays.roi_mask is not None:
        region, mask = "roi", arrays.roi_mask
    elif arrays.nonzero is not None and arrays.nonzero[index].any():
        region, mask = "nonzero", arrays.nonzero[index]
    else:
        region, mask = "all", None
    return measure(arrays.image[index], normalization, mask, region)


def _finish(
    case_id: str, arrays: _Arrays, record: PreprocessingRecord
) -> PreprocessedCase:
    return PreprocessedCase(
        case_id=case_id,
        image=normalize(arrays.image, record.statistics, arrays.roi_mask),
        label_map=arrays.label_map,
        roi_mask=arrays.roi_mask,
        affine=record.processed_affine,
        record=record,
    )


def _check_matches(case: Case, record: PreprocessingRecord) -> None:
    recorded = Volume(
        np.broadcast_to(np.zeros((), dtype=np.uint8), record.original_shape),
        record.original_affine,
    )
    mismatch = grid_mismatch(case.reference, recorded)
    if mismatch is None and case.spatial_shape != record.original_shape:
        mismatch = f"shape {case.spatial_shape} vs {record.original_shape}"
    if mismatch is not None:
        raise GeometryMismatchError(
            f"case {case.case_id} is not on the grid its preprocessing record was "
            f"made for ({record.case_id}): {mismatch}; preprocess the case afresh"
        )
    if case.num_channels != len(record.statistics):
        raise GeometryMismatchError(
            f"case {case.case_id} has {case.num_channels} channels but the "
            f"preprocessing record has {len(record.statistics)}; give the same "
            "channels in the same order"
        )
