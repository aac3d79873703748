"""The one in-memory volume type: voxels plus the grid they live on."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

Affine = np.ndarray
"""A 4x4 float64 matrix mapping voxel indices (i, j, k, 1) to RAS+ millimetres."""

Spacing = tuple[float, float, float]
"""Voxel size in millimetres, in array-axis order (i, j, k)."""

SpatialShape = tuple[int, int, int]


@dataclass(eq=False)
class Volume:
    """Voxels, their affine and the header they came with.

    Attributes:
        array: ``(I, J, K)`` for one channel or ``(I, J, K, C)`` for a 4D file,
            in the file's own axis order; intensity scaling (scl_slope/scl_inter)
            is already applied.
        affine: 4x4 voxel-to-world matrix in RAS+ mm (nibabel's convention, also
            for files read through SimpleITK).
        header: the NIfTI header of the source file, kept so that outputs
            written for this volume carry the same qform/sform codes; ``None``
            for volumes made in memory or read from non-NIfTI formats.
        source: the file the volume was read from, for messages.
    """

    array: np.ndarray
    affine: Affine
    header: Any = None
    source: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, not {self.affine.shape}")
        if self.array.ndim not in (3, 4):
            raise ValueError(f"array must be 3D or 4D, not {self.array.ndim}D")

    @property
    def spatial_shape(self) -> SpatialShape:
        i, j, k = self.array.shape[:3]
        return int(i), int(j), int(k)

    @property
    def num_channels(self) -> int:
        return 1 if self.array.ndim == 3 else int(self.array.shape[3])

    @property
    def spacing(self) -> Spacing:
        """Voxel size in mm along i, j and k (column norms of the affine)."""
        zooms = np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))
        return float(zooms[0]), float(zooms[1]), float(zooms[2])

    @property
    def orientation(self) -> str:
        """Closest axis codes, e.g. ``"RAS"`` or ``"LPS"``."""
        return "".join(nib.aff2axcodes(self.affine))

    @property
    def name(self) -> str:
        return str(self.source) if self.source is not None else "<in memory>"

    def channel(self, index: int) -> np.ndarray:
        """The ``(I, J, K)`` array of one channel."""
        if self.array.ndim == 3:
            if index != 0:
                raise IndexError(f"{self.name} has one channel, not {index + 1}")
            return self.array
        return self.array[..., index]

    def with_array(self, array: np.ndarray) -> Volume:
        """A volume on the same grid and header holding other voxels."""
        return Volume(array, self.affine.copy(), self.header, self.source)

    def __repr__(self) -> str:
        spacing = ", ".join(f"{s:.3g}" for s in self.spacing)
        channels = f", channels={self.num_channels}" if self.array.ndim == 4 else ""
        return (
            f"Volume(shape={self.spatial_shape}{channels}, spacing=({spacing}) mm, "
            f"orientation={self.orientation}, dtype={self.array.dtype}, "
            f"source={self.name})"
        )
