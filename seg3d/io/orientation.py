"""Reorientation to the closest RAS+ axes and back, voxel for voxel.

Processing runs in one canonical orientation so that flips used as augmentation
and the axes of anisotropic spacing mean the same thing for every scan. Only
axis permutations and flips are applied (nibabel's orientation codes), never
interpolation, so the round trip input -> canonical -> input is exact. An
oblique scan stays oblique: its canonical affine is the one whose axes lie
closest to R, A and S.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from nibabel import orientations as ornt_codes

from seg3d.io.volume import Affine, SpatialShape

_RAS = ornt_codes.axcodes2ornt(("R", "A", "S"))


@dataclass(frozen=True)
class Reorientation:
    """How a scan's voxel axes map onto the canonical RAS+ axes.

    Attributes:
        source_codes: the scan's closest axis codes, e.g. ``"LPS"``.
        source_shape: the scan's spatial shape ``(I, J, K)`` before reorienting.
    """

    source_codes: str
    source_shape: SpatialShape

    @classmethod
    def for_grid(cls, affine: Affine, spatial_shape: SpatialShape) -> Reorientation:
        codes = "".join(ornt_codes.ornt2axcodes(ornt_codes.io_orientation(affine)))
        shape = tuple(int(n) for n in spatial_shape)
        return cls(codes, shape)  # type: ignore[arg-type]

    @property
    def is_identity(self) -> bool:
        return self.source_codes == "RAS"

    @property
    def _forward(self) -> np.ndarray:
        source = ornt_codes.axcodes2ornt(tuple(self.source_codes))
        return ornt_codes.ornt_transform(source, _RAS)

    @property
    def _backward(self) -> np.ndarray:
        source = ornt_codes.axcodes2ornt(tuple(self.source_codes))
        return ornt_codes.ornt_transform(_RAS, source)

    @property
    def canonical_shape(self) -> SpatialShape:
        order = self._forward[:, 0].astype(int)
        shape = [0, 0, 0]
        for source_axis, target_axis in enumerate(order):
            shape[target_axis] = self.source_shape[source_axis]
        return shape[0], shape[1], shape[2]

    def canonical_affine(self, affine: Affine) -> Affine:
        """The affine of the reoriented grid (same world positions)."""
        return affine @ ornt_codes.inv_ornt_aff(self._forward, self.source_shape)

    def to_canonical(
        self, array: np.ndarray, channels_first: bool = False
    ) -> np.ndarray:
        """Reorient ``(I, J, K, ...)`` (or ``(C, I, J, K)``) to RAS+ axes."""
        return _apply(array, self._forward, channels_first)

    def from_canonical(
        self, array: np.ndarray, channels_first: bool = False
    ) -> np.ndarray:
        """Undo :meth:`to_canonical` exactly."""
        return _apply(array, self._backward, channels_first)

    def to_dict(self) -> dict:
        return {
            "source_codes": self.source_codes,
            "source_shape": list(self.source_shape),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Reorientation:
        shape = tuple(int(n) for n in data["source_shape"])
        return cls(str(data["source_codes"]), shape)  # type: ignore[arg-type]


def _apply(
    array: np.ndarray, transform: np.ndarray, channels_first: bool
) -> np.ndarray:
    if channels_first:
        moved = np.moveaxis(array, 0, -1)
        return np.ascontiguousarray(
            np.moveaxis(ornt_codes.apply_orientation(moved, transform), -1, 0)
        )
    return np.ascontiguousarray(ornt_codes.apply_orientation(array, transform))
