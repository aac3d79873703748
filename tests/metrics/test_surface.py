"""Surface distances with answers known by construction, under anisotropic spacing."""

import math

import numpy as np
import pytest
from scipy import ndimage

from seg3d.metrics.surface import (
    bounding_box,
    surface,
    surface_distances,
    surface_metrics,
)

SPACING = (2.0, 1.5, 0.5)


def _box(shape, start, stop):
    mask = np.zeros(shape, bool)
    mask[tuple(slice(a, b) for a, b in zip(start, stop, strict=True))] = True
    return mask


def test_identical_masks_are_zero_apart():
    mask = _box((20, 20, 20), (3, 4, 5), (12, 10, 15))

    result = surface_metrics(mask, mask, SPACING)

    assert result.hd95_mm == 0.0
    assert result.assd_mm == 0.0


@pytest.mark.parametrize(
    ("first", "second"),
    [((2, 3, 4), (9, 1, 17)), ((0, 0, 0), (19, 19, 19)), ((5, 5, 5), (5, 6, 5))],
    ids=["apart", "corners", "neighbours"],
)
def test_two_single_voxels_are_their_physical_distance_apart(first, second):
    prediction = _box((20, 20, 20), first, np.add(first, 1))
    truth = _box((20, 20, 20), second, np.add(second, 1))
    expected = math.dist(np.multiply(first, SPACING), np.multiply(second, SPACING))

    result = surface_metrics(prediction, truth, SPACING)

    assert result.hd95_mm == pytest.approx(expected, rel=1e-12)
    assert result.assd_mm == pytest.approx(expected, rel=1e-12)


def test_one_voxel_shift_along_the_fine_axis_costs_that_axis_spacing():
    truth = _box((16, 16, 30), (4, 4, 8), (12, 12, 20))
    prediction = np.roll(truth, 1, axis=2)

    to_truth, to_prediction = surface_distances(prediction, truth, SPACING)

    # Every surface voxel is either on the other surface or one k step away;
    # the coarse i and j steps (2.0 and 1.5 mm) are never nearer.
    distances = np.concatenate([to_truth, to_prediction])
    assert set(np.round(distances, 12)) == {0.0, SPACING[2]}
    assert surface_metrics(prediction, truth, SPACING).hd95_mm == SPACING[2]


def test_distances_scale_with_the_spacing():
    truth = _box((16, 16, 16), (3, 3, 3), (10, 12, 9))
    prediction = _box((16, 16, 16), (5, 2, 4), (14, 11, 13))

    base = surface_metrics(prediction, truth, SPACING)
    doubled = surface_metrics(prediction, truth, tuple(2 * s for s in SPACING))

    assert doubled.hd95_mm == pytest.approx(2 * base.hd95_mm)
    assert doubled.assd_mm == pytest.approx(2 * base.assd_mm)


def test_cropping_to_the_masks_gives_the_whole_image_answer():
    rng = np.random.default_rng(3)
    smooth = ndimage.gaussian_filter(rng.random((40, 30, 20)), 2)
    truth = smooth > np.quantile(smooth, 0.93)
    prediction = np.roll(truth, (2, -1, 1), axis=(0, 1, 2))

    to_truth, to_prediction = surface_distances(prediction, truth, SPACING)

    # The same computation on the whole image, without any bounding box.
    truth_surface, prediction_surface = surface(truth), surface(prediction)
    whole_to_truth = ndimage.distance_transform_edt(~truth_surface, sampling=SPACING)
    whole_to_prediction = ndimage.distance_transform_edt(
        ~prediction_surface, sampling=SPACING
    )
    np.testing.assert_array_equal(to_truth, whole_to_truth[prediction_surface])
    np.testing.assert_array_equal(to_prediction, whole_to_prediction[truth_surface])


def test_a_mask_filling_the_image_has_its_surface_at_the_image_edge():
    mask = np.ones((5, 6, 7), bool)

    edge = surface(mask)

    assert edge.sum() == mask.size - 3 * 4 * 5
    assert not edge[1:-1, 1:-1, 1:-1].any()


def test_surface_is_face_connected():
    # A 3x3x3 cube: only its centre has all six face neighbours inside.
    mask = _box((5, 5, 5), (1, 1, 1), (4, 4, 4))

    assert surface(mask).sum() == 26


@pytest.mark.parametrize(
    ("margin", "expected"),
    [
        (0, (slice(2, 5), slice(0, 1), slice(6, 7))),
        (2, (slice(0, 7), slice(0, 3), slice(4, 8))),
    ],
    ids=["tight", "clipped-margin"],
)
def test_bounding_box(margin, expected):
    mask = np.zeros((8, 8, 8), bool)
    mask[2, 0, 6] = mask[4, 0, 6] = True

    assert bounding_box(mask, margin) == expected


def test_empty_masks_follow_the_conventions():
    empty = np.zeros((6, 6, 6), bool)
    full = _box((6, 6, 6), (1, 1, 1), (4, 4, 4))

    assert surface_metrics(empty, empty, SPACING).hd95_mm == 0.0
    assert surface_metrics(empty, empty, SPACING).assd_mm == 0.0
    for prediction, truth in ((empty, full), (full, empty)):
        result = surface_metrics(prediction, truth, SPACING)
        assert math.isnan(result.hd95_mm)
        assert math.isnan(result.assd_mm)
    with pytest.raises(ValueError, match="two non-empty masks"):
        surface_distances(empty, full, SPACING)
