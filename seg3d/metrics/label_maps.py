"""Every metric of every structure, for one pair of label maps on one grid."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from seg3d.errors import DatasetError
from seg3d.io.volume import Spacing, Volume
from seg3d.metrics.overlap import OverlapCounts, overlap_metrics
from seg3d.metrics.structures import Structure
from seg3d.metrics.surface import bounding_box, surface_metrics

Box = tuple[slice, ...]


@dataclass(frozen=True)
class StructureMetrics:
    """All metrics of one structure in one case; NaN where undefined.

    See :class:`~seg3d.metrics.overlap.OverlapMetrics` and
    :class:`~seg3d.metrics.surface.SurfaceMetrics` for each field.
    """

    dice: float
    iou: float
    sensitivity: float
    precision: float
    volume_prediction_ml: float
    volume_truth_ml: float
    relative_volume_difference: float
    hd95_mm: float
    assd_mm: float

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


METRIC_NAMES: tuple[str, ...] = tuple(
    field.name for field in dataclasses.fields(StructureMetrics)
)

# Both masks empty: what overlap_metrics and surface_metrics return for it.
BOTH_EMPTY = StructureMetrics(1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def as_label_map(volume: Volume) -> np.ndarray:
    """The ``(I, J, K)`` integer array of a label-map volume.

    Float files holding whole numbers (common after some converters) are
    accepted and cast to the smallest integer type that holds them.

    Raises:
        DatasetError: the volume is 4D, or holds negative, fractional or
            non-finite values.
    """
    array = volume.array
    if array.ndim != 3:
        raise DatasetError(
            f"{volume.name}: a label map must be 3D, not shape {array.shape}; "
            "pass the label map, not the image or the probabilities"
        )
    if np.issubdtype(array.dtype, np.floating):
        whole = np.isfinite(array) & (array == np.rint(array))
        if not whole.all():
            example = array[~whole].flat[0]
            raise DatasetError(
                f"{volume.name}: not a label map: it holds non-integer values "
                f"such as {example:g}; pass integer label maps (not probabilities)"
            )
    if array.size and array.min() < 0:
        raise DatasetError(
            f"{volume.name}: not a label map: it holds the negative value "
            f"{array.min():g}; label values must be 0 (background) or positive"
        )
    maximum = int(array.max()) if array.size else 0
    dtype = np.min_scalar_type(maximum)
    return array if array.dtype == dtype else array.astype(dtype)


class LabelMapPair:
    """A predicted and a true label map, cropped once to their foreground.

    Each structure is then measured only inside the bounding box of its own
    voxels in either map (plus one voxel), so the cost follows the size of the
    structures rather than of the image.

    Args:
        prediction: ``(I, J, K)`` non-negative integer predicted label map.
        truth: ``(I, J, K)`` non-negative integer true label map, same grid.
    """

    def __init__(self, prediction: np.ndarray, truth: np.ndarray) -> None:
        if prediction.shape != truth.shape:
            raise ValueError(
                f"label map shapes differ: {prediction.shape} vs {truth.shape}"
            )
        box = bounding_box((prediction > 0) | (truth > 0), margin=1)
        if box is None:  # both all background: nothing to find
            box = tuple(slice(0, 0) for _ in truth.shape)
        self._prediction, self._truth = prediction[box], truth[box]
        self._prediction_boxes: list[Box | None] = []
        self._truth_boxes: list[Box | None] = []
        if self._truth.size:
            self._prediction_boxes = ndimage.find_objects(self._prediction)
            self._truth_boxes = ndimage.find_objects(self._truth)

    @property
    def prediction_values(self) -> set[int]:
        """Non-zero label values present in the prediction."""
        return _present(self._prediction_boxes)

    @property
    def truth_values(self) -> set[int]:
        """Non-zero label values present in the truth."""
        return _present(self._truth_boxes)

    def metrics(
        self,
        structures: Sequence[Structure],
        spacing: Spacing,
        voxel_volume_mm3: float,
    ) -> dict[str, StructureMetrics]:
        """Metrics of each structure, keyed by name in the order given.

        Args:
            structures: the classes and regions to measure.
            spacing: voxel size in mm along i, j, k.
            voxel_volume_mm3: the volume of one voxel in mm³.
        """
        results = {}
        for structure in structures:
            boxes = [
                found[value - 1]
                for found in (self._prediction_boxes, self._truth_boxes)
                for value in structure.label_values
                if value <= len(found) and found[value - 1] is not None
            ]
            if not boxes:
                results[structure.name] = BOTH_EMPTY
                continue
            region = _union(boxes, self._truth.shape, margin=1)
            results[structure.name] = _structure_metrics(
                _mask(self._prediction[region], structure.label_values),
                _mask(self._truth[region], structure.label_values),
                spacing,
                voxel_volume_mm3,
            )
        return results


def evaluate_label_maps(
    prediction: np.ndarray,
    truth: np.ndarray,
    structures: Sequence[Structure],
    spacing: Spacing,
    voxel_volume_mm3: float,
) -> dict[str, StructureMetrics]:
    """Metrics of each structure for a predicted and a true label map.

    Args:
        prediction: ``(I, J, K)`` non-negative integer predicted label map.
        truth: ``(I, J, K)`` non-negative integer true label map, same grid.
        structures: the classes and regions to measure.
        spacing: voxel size in mm along i, j, k.
        voxel_volume_mm3: the volume of one voxel in mm³.

    Returns:
        Structure name to its metrics, in the order of ``structures``.
    """
    pair = LabelMapPair(prediction, truth)
    return pair.metrics(structures, spacing, voxel_volume_mm3)


def _structure_metrics(
    prediction: np.ndarray, truth: np.ndarray, spacing: Spacing, voxel_volume: float
) -> StructureMetrics:
    overlap = overlap_metrics(OverlapCounts.of_masks(prediction, truth), voxel_volume)
    surface = surface_metrics(prediction, truth, spacing)
    return StructureMetrics(
        **dataclasses.asdict(overlap), **dataclasses.asdict(surface)
    )


def _present(boxes: list[Box | None]) -> set[int]:
    """Label values whose ``ndimage.find_objects`` box exists (index + 1)."""
    return {index + 1 for index, box in enumerate(boxes) if box is not None}


def _mask(label_map: np.ndarray, values: tuple[int, ...]) -> np.ndarray:
    if len(values) == 1:
        return label_map == values[0]
    return np.isin(label_map, values)


def _union(boxes: list[Box], shape: tuple[int, ...], margin: int) -> Box:
    return tuple(
        slice(
            max(min(box[axis].start for box in boxes) - margin, 0),
            min(max(box[axis].stop for box in boxes) + margin, shape[axis]),
        )
        for axis in range(len(shape))
    )


def voxel_volume_mm3(volume: Volume) -> float:
    """The volume of one voxel in mm³: ``|det|`` of the affine's 3x3 part."""
    return float(abs(np.linalg.det(volume.affine[:3, :3])))


def nan_to_none(value: float) -> float | None:
    """JSON has no NaN: undefined metrics are written as ``null``."""
    return None if math.isnan(value) else value
