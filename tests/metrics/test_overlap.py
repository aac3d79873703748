"""Overlap metrics from voxel counts, with the empty-mask conventions."""

import math

import numpy as np
import pytest

from seg3d.metrics.overlap import OverlapCounts, overlap_metrics


def test_metrics_from_counts_known_by_construction():
    counts = OverlapCounts(true_positives=5, prediction_voxels=10, truth_voxels=20)

    result = overlap_metrics(counts, voxel_volume_mm3=2.0)

    assert result.dice == pytest.approx(10 / 30)
    assert result.iou == pytest.approx(5 / 25)
    assert result.sensitivity == pytest.approx(5 / 20)
    assert result.precision == pytest.approx(5 / 10)
    assert result.volume_prediction_ml == pytest.approx(0.020)
    assert result.volume_truth_ml == pytest.approx(0.040)
    assert result.relative_volume_difference == pytest.approx(-0.5)


def test_counts_of_masks():
    prediction = np.zeros((4, 4, 4), bool)
    truth = np.zeros((4, 4, 4), bool)
    prediction[:2] = True  # 32 voxels
    truth[1:3] = True  # 32 voxels, 16 shared

    assert OverlapCounts.of_masks(prediction, truth) == OverlapCounts(16, 32, 32)


def test_both_empty_is_perfect():
    result = overlap_metrics(OverlapCounts(0, 0, 0), 1.0)

    assert (result.dice, result.iou, result.sensitivity, result.precision) == (
        1.0,
        1.0,
        1.0,
        1.0,
    )
    assert result.relative_volume_difference == 0.0


def test_missed_structure_scores_zero_and_has_no_precision():
    result = overlap_metrics(OverlapCounts(0, 0, 7), 1.0)

    assert result.dice == result.iou == result.sensitivity == 0.0
    assert math.isnan(result.precision)
    assert result.relative_volume_difference == -1.0


def test_invented_structure_scores_zero_and_has_no_sensitivity():
    result = overlap_metrics(OverlapCounts(0, 7, 0), 1.0)

    assert result.dice == result.iou == result.precision == 0.0
    assert math.isnan(result.sensitivity)
    assert math.isnan(result.relative_volume_difference)
