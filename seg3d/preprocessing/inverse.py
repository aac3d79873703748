"""Mapping predictions on the processed grid back onto the input's grid.

The forward steps are undone in reverse: uncrop into the resampled grid, resample
onto the canonical grid (only where preprocessing resampled), reorient to the
input's axis order. Without resampling every step moves voxels without touching
their values, so the round trip is exact. With resampling, SimpleITK samples the
canonical grid rebuilt from the record, so the result has exactly the input's
shape and lies on exactly its affine.

Labels: :func:`restore_label_map` resamples a label map with the record's
``label_interpolation`` (``"per_label"``: each label's indicator linearly, then
the largest wins). Where class probabilities exist, restoring them with
:func:`restore_probabilities` and taking the argmax on the input grid is better:
it keeps the network's soft boundaries instead of re-smoothing hard ones.
"""

from __future__ import annotations

import numpy as np

from seg3d.errors import GeometryMismatchError
from seg3d.preprocessing.cropping import uncrop
from seg3d.preprocessing.record import PreprocessingRecord
from seg3d.preprocessing.resampling import resample_channels, resample_label_map


def restore_label_map(label_map: np.ndarray, record: PreprocessingRecord) -> np.ndarray:
    """Put a label map on the processed grid back onto the input's grid.

    Args:
        label_map: ``(i, j, k)`` integer label values on the processed grid
            (``record.processed_shape``); 0 is background.
        record: the record of the case's preprocessing.

    Returns:
        ``(I, J, K)`` of ``label_map``'s dtype, in the input's axis order and
        on its grid; voxels outside the crop box are 0.

    Raises:
        GeometryMismatchError: ``label_map`` is not of the processed shape.
    """
    _check_shape(label_map.shape, record, "label_map", "(i, j, k)")
    full = uncrop(label_map, record.crop_start, record.resampled_shape, fill=0)
    if record.is_resampled:
        full = resample_label_map(
            full,
            record.resampled_affine,
            record.canonical_shape,
            record.canonical_affine,
            record.config.label_interpolation,
        )
    return record.reorientation.from_canonical(full)


def restore_probabilities(
    probabilities: np.ndarray, record: PreprocessingRecord
) -> np.ndarray:
    """Put class probabilities on the processed grid back onto the input's grid.

    Outside the crop box class 0 (background) has probability 1. Resampling is
    linear, so every voxel's probabilities remain a convex combination of
    distributions and still sum to 1.

    Args:
        probabilities: ``(N, i, j, k)`` float32, one map per class, class 0 the
            background, on the processed grid.
        record: the record of the case's preprocessing.

    Returns:
        ``(N, I, J, K)`` float32 in the input's axis order and on its grid.

    Raises:
        GeometryMismatchError: ``probabilities`` is not ``(N, i, j, k)`` of the
            processed shape.
    """
    if probabilities.ndim != 4:
        raise GeometryMismatchError(
            f"probabilities must be (N, i, j, k), not of shape {probabilities.shape}"
        )
    _check_shape(probabilities.shape[1:], record, "probabilities", "(N, i, j, k)")
    background = np.zeros(probabilities.shape[0], dtype=np.float32)
    background[0] = 1.0
    full = uncrop(
        probabilities.astype(np.float32, copy=False),
        record.crop_start,
        record.resampled_shape,
        fill=background,
    )
    if record.is_resampled:
        full = resample_channels(
            full,
            record.resampled_affine,
            record.canonical_shape,
            record.canonical_affine,
            "linear",
        )
    return record.reorientation.from_canonical(full, channels_first=True)


def _check_shape(
    shape: tuple[int, ...], record: PreprocessingRecord, name: str, layout: str
) -> None:
    if tuple(shape) != record.processed_shape:
        raise GeometryMismatchError(
            f"{name} has spatial shape {tuple(shape)} but case {record.case_id} was "
            f"preprocessed to {record.processed_shape} {layout}; pass the "
            "prediction together with its own case's record"
        )
