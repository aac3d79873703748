"""Cases built in memory on awkward grids, with contents known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from seg3d.data.case import Case
from seg3d.io import Volume


def _rotation(angle: float) -> np.ndarray:
    """Rotation about an axis tilted off x, y and z, so every axis is oblique."""
    axis = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    cross = np.array(
        [[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]]
    )
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def _affine(linear: np.ndarray, origin=(-14.0, 22.5, 8.0)) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = origin
    return affine


# Column n is where a step along voxel axis n goes, in RAS+ mm.
GRIDS = {
    "RAS": _affine(np.diag([1.0, 1.0, 1.0])),
    "LPS_anisotropic": _affine(np.diag([-0.9, -1.1, 2.6])),
    # i -> S, j -> L, k -> P: permuted and flipped, 0.9 x 1.1 x 2.6 mm.
    "SLP_oblique": _affine(
        _rotation(0.2) @ np.array([[0, -1.1, 0], [0, 0, -2.6], [0.9, 0, 0]])
    ),
}
SHAPES = {
    "RAS": (30, 30, 30),
    "LPS_anisotropic": (36, 30, 14),
    "SLP_oblique": (36, 30, 14),
}


def _world_points(affine: np.ndarray, spatial_shape) -> np.ndarray:
    """``(I, J, K, 3)`` RAS+ mm coordinates of every voxel centre."""
    indices = np.stack(np.indices(spatial_shape), axis=-1).astype(np.float64)
    return indices @ affine[:3, :3].T + affine[:3, 3]


def _blob_case(grid: str, case_id: str = "blobs", with_roi: bool = True) -> Case:
    """Two ellipsoidal lesions (labels 1 and 3) inside an ellipsoidal ROI.

    Shapes are defined in world millimetres, so they are the same objects
    whatever the grid; the ROI stays clear of the grid's faces, so cropping
    removes voxels. Channel 0 is smooth tissue contrast; channel 1 is noisy.
    """
    affine, spatial_shape = GRIDS[grid], SHAPES[grid]
    points = _world_points(affine, spatial_shape)
    centre = affine[:3, :3] @ ((np.array(spatial_shape) - 1) / 2) + affine[:3, 3]
    offsets = points - centre

    def inside(shift, radii):
        return (((offsets - np.array(shift)) / np.array(radii)) ** 2).sum(-1) <= 1

    roi_mask = inside((0, 0, 0), (13.5, 12.0, 12.5))
    label_map = np.zeros(spatial_shape, dtype=np.uint8)
    label_map[inside((-4.5, 0, 0), (6.5, 7.5, 7.0))] = 1
    label_map[inside((6.0, 2.0, 1.0), (4.5, 5.5, 6.0))] = 3

    rng = np.random.default_rng(7)
    tissue = (
        400 + 3.0 * offsets[..., 0] + 150.0 * (label_map == 1) - 90.0 * (label_map == 3)
    )
    noise = rng.normal(50.0, 12.0, size=spatial_shape)
    image = np.stack([tissue, noise]).astype(np.float32)  # (C, I, J, K)
    reference = Volume(image[0], affine)
    return Case(case_id, image, reference, label_map, roi_mask if with_roi else None)


def _dice(first: np.ndarray, second: np.ndarray) -> float:
    overlap = np.logical_and(first, second).sum()
    return float(2 * overlap / (first.sum() + second.sum()))


@pytest.fixture
def blob_case():
    """Factory: ``blob_case(grid, case_id="blobs", with_roi=True) -> Case``."""
    return _blob_case


@pytest.fixture
def grids():
    """``(affines, shapes)``: dicts of the awkward grids by name."""
    return GRIDS, SHAPES


@pytest.fixture
def world_points():
    """``world_points(affine, spatial_shape)`` -> ``(I, J, K, 3)`` RAS+ mm."""
    return _world_points


@pytest.fixture
def dice():
    """``dice(first, second)`` of two bool arrays."""
    return _dice
