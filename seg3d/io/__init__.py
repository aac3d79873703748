"""Files to volumes and back: NIfTI through nibabel, other formats through SimpleITK."""

from seg3d.io.atomic import atomic_path, check_writable
from seg3d.io.formats import VOLUME_SUFFIXES, strip_volume_suffix, volume_suffix
from seg3d.io.grid import check_same_grid, grid_mismatch
from seg3d.io.orientation import Reorientation
from seg3d.io.reading import read_volume
from seg3d.io.volume import Affine, Spacing, SpatialShape, Volume
from seg3d.io.writing import label_dtype, write_volume

__all__ = [
    "VOLUME_SUFFIXES",
    "Affine",
    "Reorientation",
    "Spacing",
    "SpatialShape",
    "Volume",
    "atomic_path",
    "check_same_grid",
    "check_writable",
    "grid_mismatch",
    "label_dtype",
    "read_volume",
    "strip_volume_suffix",
    "volume_suffix",
    "write_volume",
]
