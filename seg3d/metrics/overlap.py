"""Overlap and volume metrics of one structure, from voxel counts.

Ratios whose denominator is zero follow the conventions in ``docs/metrics.md``:
both masks empty is a perfect result (Dice 1, the BraTS convention); a ratio
that is undefined only because one mask is empty is NaN, never a made-up number,
except Dice and IoU, which are 0 when exactly one mask is empty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OverlapCounts:
    """Voxel counts of a predicted and a true binary mask.

    Attributes:
        true_positives: voxels in both masks.
        prediction_voxels: voxels in the predicted mask.
        truth_voxels: voxels in the true mask.
    """

    true_positives: int
    prediction_voxels: int
    truth_voxels: int

    @classmethod
    def of_masks(cls, prediction: np.ndarray, truth: np.ndarray) -> OverlapCounts:
        """Count two bool masks of the same shape (any number of dimensions)."""
        return cls(
            int(np.count_nonzero(prediction & truth)),
            int(np.count_nonzero(prediction)),
            int(np.count_nonzero(truth)),
        )


@dataclass(frozen=True)
class OverlapMetrics:
    """Overlap and volume of one structure in one case.

    Attributes:
        dice: 2|P∩T| / (|P| + |T|).
        iou: |P∩T| / |P∪T| (Jaccard index).
        sensitivity: |P∩T| / |T|; NaN where only the truth is empty.
        precision: |P∩T| / |P|; NaN where only the prediction is empty.
        volume_prediction_ml: |P| times the voxel volume, in ml.
        volume_truth_ml: |T| times the voxel volume, in ml.
        relative_volume_difference: (|P| - |T|) / |T|; NaN where only the
            truth is empty, 0 where both are.
    """

    dice: float
    iou: float
    sensitivity: float
    precision: float
    volume_prediction_ml: float
    volume_truth_ml: float
    relative_volume_difference: float


def overlap_metrics(counts: OverlapCounts, voxel_volume_mm3: float) -> OverlapMetrics:
    """Overlap metrics from voxel counts.

    Args:
        counts: voxel counts of the two masks.
        voxel_volume_mm3: the volume of one voxel in mm³ (``|det|`` of the
            affine's 3x3 part).
    """
    intersection = counts.true_positives
    predicted, true = counts.prediction_voxels, counts.truth_voxels
    union = predicted + true - intersection
    if predicted == 0 and true == 0:
        dice = iou = sensitivity = precision = 1.0
        relative_volume_difference = 0.0
    else:
        dice = 2.0 * intersection / (predicted + true)
        iou = intersection / union
        sensitivity = _ratio(intersection, true)
        precision = _ratio(intersection, predicted)
        relative_volume_difference = _ratio(predicted - true, true)
    return OverlapMetrics(
        dice=dice,
        iou=iou,
        sensitivity=sensitivity,
        precision=precision,
        volume_prediction_ml=predicted * voxel_volume_mm3 / 1000.0,
        volume_truth_ml=true * voxel_volume_mm3 / 1000.0,
        relative_volume_difference=relative_volume_difference,
    )


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else math.nan
