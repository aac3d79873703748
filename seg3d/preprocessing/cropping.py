"""Bounding boxes, cropping to them and putting crops back in place."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from seg3d.io.volume import SpatialShape

Box = tuple[SpatialShape, SpatialShape]
"""``(start, stop)`` voxel indices along i, j, k; ``stop`` is past the end."""


def bounding_box(mask: np.ndarray, margin: Sequence[int] = (0, 0, 0)) -> Box | None:
    """The smallest box holding every true voxel, grown by ``margin``.

    Args:
        mask: ``(I, J, K)`` bool.
        margin: voxels added on both sides along i, j, k; the box is clipped to
            the grid.

    Returns:
        ``(start, stop)``, or ``None`` when ``mask`` has no true voxel.
    """
    if not mask.any():
        return None
    start, stop = [], []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        occupied = np.flatnonzero(mask.any(axis=others))
        start.append(max(0, int(occupied[0]) - int(margin[axis])))
        stop.append(min(mask.shape[axis], int(occupied[-1]) + 1 + int(margin[axis])))
    return (start[0], start[1], start[2]), (stop[0], stop[1], stop[2])


def crop(array: np.ndarray, start: Sequence[int], stop: Sequence[int]) -> np.ndarray:
    """The box ``[start, stop)`` of the last three axes of ``(..., I, J, K)``."""
    box = tuple(slice(int(a), int(b)) for a, b in zip(start, stop, strict=True))
    return np.ascontiguousarray(array[(..., *box)])


def uncrop(
    array: np.ndarray,
    start: Sequence[int],
    spatial_shape: SpatialShape,
    fill: float | Sequence[float] = 0,
) -> np.ndarray:
    """Put a crop ``(..., i, j, k)`` back into a grid of ``spatial_shape``.

    Args:
        array: the cropped voxels, leading axes (such as channels) first.
        start: where the crop starts in the full grid along i, j, k.
        spatial_shape: ``(I, J, K)`` of the full grid.
        fill: value outside the crop: one number, or one per entry of the
            leading axis (e.g. probability 1 for class 0, 0 for the others).

    Returns:
        ``(..., I, J, K)`` of ``array``'s dtype.
    """
    leading = array.shape[:-3]
    result = np.empty((*leading, *spatial_shape), dtype=array.dtype)
    fill_values = np.asarray(fill, dtype=array.dtype)
    result[...] = fill_values.reshape((*fill_values.shape, 1, 1, 1))
    box = tuple(
        slice(int(a), int(a) + n) for a, n in zip(start, array.shape[-3:], strict=True)
    )
    result[(..., *box)] = array
    return result
