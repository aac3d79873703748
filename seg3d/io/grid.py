"""The one place that decides whether two volumes share a voxel grid."""

from __future__ import annotations

import numpy as np

from seg3d.errors import GeometryMismatchError
from seg3d.io.volume import Volume

# Scanner software and converters round affines differently; a thousandth of a
# millimetre (or of a direction cosine) is far below any voxel size in use.
AFFINE_TOLERANCE = 1e-3


def grid_mismatch(first: Volume, second: Volume) -> str | None:
    """Why two volumes do not share a grid, or ``None`` where they do."""
    if first.spatial_shape != second.spatial_shape:
        return f"shape {first.spatial_shape} vs {second.spatial_shape}"
    difference = np.abs(first.affine - second.affine).max()
    if difference > AFFINE_TOLERANCE:
        spacing = _fmt(first.spacing), _fmt(second.spacing)
        origin = _fmt(first.affine[:3, 3]), _fmt(second.affine[:3, 3])
        return (
            f"affines differ by up to {difference:.3g} "
            f"(spacing {spacing[0]} vs {spacing[1]} mm, "
            f"origin {origin[0]} vs {origin[1]} mm, "
            f"orientation {first.orientation} vs {second.orientation})"
        )
    return None


def check_same_grid(first: Volume, second: Volume, remedy: str = "") -> None:
    """Raise :class:`GeometryMismatchError` naming both files unless grids match."""
    mismatch = grid_mismatch(first, second)
    if mismatch is not None:
        fix = remedy or "resample one onto the other's grid"
        raise GeometryMismatchError(
            f"{first.name} and {second.name} are not on the same voxel grid: "
            f"{mismatch}; {fix}"
        )


def _fmt(values) -> str:
    return "(" + ", ".join(f"{float(v):.4g}" for v in values) + ")"
