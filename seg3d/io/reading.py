"""Reading volumes from NIfTI (nibabel) and from SimpleITK's formats."""

from __future__ import annotations

import logging
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from seg3d.errors import VolumeReadError
from seg3d.io.formats import VOLUME_SUFFIXES, is_nifti, volume_suffix
from seg3d.io.volume import Volume

logger = logging.getLogger(__name__)

# Deflate cannot compress better than about 1032:1, so a .gz file that claims
# more voxel bytes than that is truncated or its header is corrupt.
_DEFLATE_MAX_RATIO = 1100

# nibabel's converse of SimpleITK's LPS+ world frame.
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def read_volume(path: Path | str) -> Volume:
    """Read a 3D or 4D volume, applying any intensity scaling in the header.

    Args:
        path: a ``.nii``/``.nii.gz`` file, or a ``.nrrd``/``.nhdr``/``.mha``/
            ``.mhd`` file read through SimpleITK.

    Returns:
        The volume; its ``array`` is ``(I, J, K)`` or ``(I, J, K, C)``. Trailing
        singleton axes beyond the third are dropped, so a ``(I, J, K, 1)`` file
        reads as 3D and a NIfTI vector image ``(I, J, K, 1, C)`` as 4D.

    Raises:
        VolumeReadError: the file is missing, of an unknown type, corrupt,
            truncated, or not a 3D/4D image.
    """
    path = Path(path)
    if not path.is_file():
        raise VolumeReadError(f"{path}: no such file; check the path")
    if not volume_suffix(path):
        known = ", ".join(VOLUME_SUFFIXES)
        raise VolumeReadError(f"{path}: unknown volume type; use one of {known}")
    volume = _read_nifti(path) if is_nifti(path) else _read_simpleitk(path)
    array = _squeeze_trailing(volume.array, path)
    volume.array = array
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise VolumeReadError(
            f"{path}: voxels of type {array.dtype} are not real numbers; "
            "convert the image to an integer or float type"
        )
    return volume


def _read_nifti(path: Path) -> Volume:
    try:
        image = nib.load(path)
    except Exception as err:  # nibabel raises many types for bad headers
        raise VolumeReadError(
            f"{path}: not a readable NIfTI file ({err}); re-export it"
        ) from err
    if not isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
        raise VolumeReadError(f"{path}: not a NIfTI-1 or NIfTI-2 image")

    _check_declared_size(path, image)
    try:
        array = np.asanyarray(image.dataobj)
    except (EOFError, OSError, zlib.error, ValueError) as err:
        raise VolumeReadError(
            f"{path}: the voxel data is truncated or corrupt ({err}); "
            "copy or export the file again"
        ) from err
    return Volume(_at_least_3d(array, path), image.affine, image.header, path)


def _check_declared_size(path: Path, image: nib.Nifti1Image) -> None:
    shape = image.header.get_data_shape()
    if len(shape) < 3 or any(n < 1 for n in shape):
        raise VolumeReadError(
            f"{path}: the image is {len(shape)}D with shape {tuple(shape)}; "
            "seg3d needs 3D volumes (or 4D with channels last)"
        )
    itemsize = image.header.get_data_dtype().itemsize
    declared = int(np.prod(shape, dtype=np.float64)) * itemsize
    stored = path.stat().st_size
    limit = stored * _DEFLATE_MAX_RATIO if path.name.endswith(".gz") else stored
    if declared > limit:
        raise VolumeReadError(
            f"{path}: the header declares shape {tuple(shape)} "
            f"({declared / 2**20:.0f} MiB of voxels) but the file holds only "
            f"{stored / 2**20:.2f} MiB; the file is truncated or its header "
            "is corrupt"
        )


def _read_simpleitk(path: Path) -> Volume:
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        first_line = str(err).strip().splitlines()[-1] if str(err).strip() else ""
        raise VolumeReadError(
            f"{path}: SimpleITK could not read it ({first_line}); "
            "check the file or convert it to NIfTI"
        ) from err
    if image.GetDimension() != 3:
        raise VolumeReadError(
            f"{path}: the image is {image.GetDimension()}D; seg3d needs 3D volumes"
        )
    # SimpleITK arrays are (K, J, I[, C]); seg3d keeps the file's i, j, k order.
    array = sitk.GetArrayFromImage(image)
    array = np.ascontiguousarray(np.moveaxis(array, (0, 1, 2), (2, 1, 0)))
    direction = np.array(image.GetDirection()).reshape(3, 3)
    spacing = np.array(image.GetSpacing())
    affine = np.eye(4)
    affine[:3, :3] = _LPS_TO_RAS @ direction @ np.diag(spacing)
    affine[:3, 3] = _LPS_TO_RAS @ np.array(image.GetOrigin())
    return Volume(array, affine, None, path)


def _at_least_3d(array: np.ndarray, path: Path) -> np.ndarray:
    if array.ndim < 3:
        raise VolumeReadError(
            f"{path}: the image is {array.ndim}D with shape {array.shape}; "
            "seg3d needs 3D volumes"
        )
    return array


def _squeeze_trailing(array: np.ndarray, path: Path) -> np.ndarray:
    while array.ndim > 3 and array.shape[3] == 1:
        array = array[:, :, :, 0, ...] if array.ndim > 4 else array[..., 0]
    if array.ndim == 5:
        # NIfTI vector images keep components on the fifth axis.
        array = array[:, :, :, 0, :] if array.shape[3] == 1 else array
    if array.ndim > 4:
        raise VolumeReadError(
            f"{path}: the image has shape {array.shape}; seg3d reads 3D volumes "
            "and 4D volumes with channels on the last axis"
        )
    if min(array.shape[:3]) < 1:
        raise VolumeReadError(f"{path}: the image has an empty axis {array.shape}")
    return array
