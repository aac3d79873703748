"""Resampling puts values where the affines say, checked against SimpleITK itself."""

import numpy as np
import pytest

from seg3d.preprocessing.resampling import (
    resample,
    resample_label_map,
    resampled_grid,
    sitk_image,
)

GRID_NAMES = ["RAS", "LPS_anisotropic", "SLP_oblique"]


@pytest.mark.parametrize("name", GRID_NAMES, ids=GRID_NAMES)
def test_sitk_image_has_the_affines_physical_points(name, grids):
    affines, shapes = grids
    affine, spatial_shape = affines[name], shapes[name]
    image = sitk_image(np.zeros(spatial_shape, np.float32), affine)

    assert image.GetSize() == spatial_shape
    for index in [(0, 0, 0), (3, 1, 2), tuple(n - 1 for n in spatial_shape)]:
        ras = affine[:3, :3] @ index + affine[:3, 3]
        lps = ras * [-1, -1, 1]
        np.testing.assert_allclose(
            image.TransformIndexToPhysicalPoint(index), lps, atol=1e-9
        )


@pytest.mark.parametrize("name", GRID_NAMES, ids=GRID_NAMES)
def test_linear_resampling_reproduces_a_world_ramp(name, grids, world_points):
    # Linear interpolation of a function linear in world mm is exact, so any
    # slip in axis order, flips or origin shows up as a wrong value.
    affines, shapes = grids
    affine, spatial_shape = affines[name], shapes[name]
    slope = np.array([0.7, -1.3, 2.1])
    ramp = (world_points(affine, spatial_shape) @ slope).astype(np.float64)
    target_shape, target_affine = resampled_grid(spatial_shape, affine, (1.3, 0.8, 1.7))

    resampled = resample(ramp, affine, target_shape, target_affine, "linear")

    expected = world_points(target_affine, target_shape) @ slope
    interior = _inside_source(target_affine, target_shape, affine, spatial_shape)
    assert interior.mean() > 0.5
    np.testing.assert_allclose(resampled[interior], expected[interior], atol=1e-6)


def test_resampled_grid_agrees_with_simpleitk_physical_points(grids):
    affines, shapes = grids
    affine, spatial_shape = affines["SLP_oblique"], shapes["SLP_oblique"]
    target_shape, target_affine = resampled_grid(spatial_shape, affine, (2.0, 2.0, 2.0))
    source = sitk_image(np.zeros(spatial_shape, np.float32), affine)
    target = sitk_image(np.zeros(target_shape, np.float32), target_affine)

    # The outer corner of voxel 0, half a voxel before its centre, is shared.
    corner = (-0.5, -0.5, -0.5)
    np.testing.assert_allclose(
        target.TransformContinuousIndexToPhysicalPoint(corner),
        source.TransformContinuousIndexToPhysicalPoint(corner),
        atol=1e-9,
    )
    np.testing.assert_allclose(target.GetSpacing(), (2.0, 2.0, 2.0), rtol=1e-12)
    np.testing.assert_allclose(target.GetDirection(), source.GetDirection(), atol=1e-12)


def test_bspline_follows_a_curved_profile_closer_than_linear(grids, world_points):
    affines, shapes = grids
    affine, spatial_shape = affines["LPS_anisotropic"], shapes["LPS_anisotropic"]
    curve = np.sin(world_points(affine, spatial_shape)[..., 2] / 4.0)
    target_shape, target_affine = resampled_grid(spatial_shape, affine, (0.9, 1.1, 0.5))

    expected = np.sin(world_points(target_affine, target_shape)[..., 2] / 4.0)
    interior = _inside_source(target_affine, target_shape, affine, spatial_shape, 2)
    errors = {
        kind: np.abs(
            resample(curve, affine, target_shape, target_affine, kind) - expected
        )[interior].max()
        for kind in ("linear", "bspline")
    }

    assert errors["bspline"] < errors["linear"] / 5


def test_per_label_keeps_label_values_and_smooths_staircases(world_points):
    # A sphere sampled on a coarse grid and upsampled to 1 mm on every axis:
    # per-label interpolation follows the true surface better than nearest
    # neighbour. (Along a single axis the two agree for a binary object.)
    coarse_affine = np.diag([2.0, 2.5, 3.0, 1.0])
    coarse_shape = (15, 12, 10)
    centre = np.array([14.2, 13.7, 15.1])

    def sphere(affine, shape):
        distance = np.linalg.norm(world_points(affine, shape) - centre, axis=-1)
        return np.where(distance <= 9.0, 5, 0).astype(np.int16)

    label_map = sphere(coarse_affine, coarse_shape)
    label_map[:, :, 0] = 2
    fine_shape, fine_affine = resampled_grid(
        coarse_shape, coarse_affine, (1.0, 1.0, 1.0)
    )
    truth = sphere(fine_affine, fine_shape) == 5

    results = {
        kind: resample_label_map(
            label_map, coarse_affine, fine_shape, fine_affine, kind
        )
        for kind in ("nearest", "per_label")
    }

    def dice(first, second):
        return 2 * (first & second).sum() / (first.sum() + second.sum())

    for result in results.values():
        assert result.dtype == np.int16
        assert set(np.unique(result)) == {0, 2, 5}
    assert (
        dice(results["per_label"] == 5, truth)
        > dice(results["nearest"] == 5, truth) + 0.02
    )


def test_masks_stay_boolean():
    mask = np.zeros((6, 6, 6), dtype=bool)
    mask[2:4, 2:4, 2:4] = True
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    shape, target_affine = resampled_grid(mask.shape, affine, (1.0, 1.0, 1.0))

    resampled = resample(mask, affine, shape, target_affine, "nearest")

    assert resampled.dtype == np.bool_
    assert resampled.sum() == 8 * mask.sum()


def _inside_source(target_affine, target_shape, affine, spatial_shape, border=0):
    """Target voxels whose centre lies between source voxel centres."""
    to_source = np.linalg.inv(affine) @ target_affine
    indices = np.stack(np.indices(target_shape), axis=-1).astype(np.float64)
    source = indices @ to_source[:3, :3].T + to_source[:3, 3]
    upper = np.array(spatial_shape) - 1 - border
    return np.all((source >= border) & (source <= upper), axis=-1)
