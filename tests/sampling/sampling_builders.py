"""Builders for the sampler tests: tiny geometries and volumes known by construction.

A module of its own (not conftest.py) so that test files can import it by a
name no other test folder uses.
"""

from __future__ import annotations

import numpy as np

from seg3d.data.case import Case
from seg3d.io import Volume
from seg3d.model.geometry import SegmentGeometry, geometry_for_input

NUM_CLASSES = 4


def tiny_geometry(
    input_shape: int | tuple[int, int, int] = 17, factors: tuple[int, ...] = (1, 3, 5)
) -> SegmentGeometry:
    """Four 3x3x3 layers per pathway: output = input - 8 (9^3 for 17^3)."""
    return geometry_for_input(input_shape, [[3] * 4] * len(factors), factors)


def coordinate_image(spatial_shape: tuple[int, int, int]) -> np.ndarray:
    """``(3, I, J, K)`` float32 whose channels are i + 1, j + 1, k + 1.

    The + 1 keeps voxel 0 apart from padding, which reads 0.
    """
    grids = np.indices(spatial_shape, dtype=np.float32)  # (3, I, J, K)
    return grids + 1.0


def position_label(i, j, k):
    """A label known at every position, so that alignment can be checked."""
    return (np.asarray(i) + 2 * np.asarray(j) + 3 * np.asarray(k)) % NUM_CLASSES


def make_case(
    case_id: str,
    image: np.ndarray,
    label_map: np.ndarray,
    roi_mask: np.ndarray | None = None,
) -> Case:
    return Case(case_id, image, Volume(image[0], np.eye(4)), label_map, roi_mask)
