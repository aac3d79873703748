"""Writing arrays onto the exact grid of a reference volume."""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np

from seg3d.errors import Seg3dError
from seg3d.io.atomic import atomic_path
from seg3d.io.formats import is_nifti, volume_suffix
from seg3d.io.volume import Affine, Volume

logger = logging.getLogger(__name__)

_WRITABLE_SIMPLEITK = (".nrrd", ".mha")
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def label_dtype(max_label: int) -> np.dtype:
    """uint8 where the labels fit, uint16 otherwise."""
    if max_label < 0 or max_label > np.iinfo(np.uint16).max:
        raise ValueError(f"label values must lie in 0..65535, not {max_label}")
    return np.dtype(np.uint8 if max_label <= np.iinfo(np.uint8).max else np.uint16)


def write_volume(
    path: Path | str,
    array: np.ndarray,
    reference: Volume,
    overwrite: bool = False,
) -> Path:
    """Write ``array`` on ``reference``'s grid, atomically.

    Args:
        path: the output; its suffix picks the format (NIfTI, ``.nrrd``, ``.mha``).
        array: ``(I, J, K)`` or ``(I, J, K, C)`` in the reference's own axis
            order, already of the dtype to store (uint8/uint16 labels, float32
            probabilities).
        reference: the volume whose shape, affine and NIfTI qform/sform codes
            the output takes.
        overwrite: replace an existing file; otherwise an existing ``path`` is
            an error and nothing is written.

    Returns:
        The path written.
    """
    path = Path(path)
    if tuple(array.shape[:3]) != reference.spatial_shape:
        raise ValueError(
            f"array shape {array.shape} does not match the reference grid "
            f"{reference.spatial_shape} of {reference.name}"
        )
    suffix = volume_suffix(path)
    if not is_nifti(path) and suffix not in _WRITABLE_SIMPLEITK:
        raise Seg3dError(
            f"{path}: cannot write '{suffix or path.suffix}' files; "
            "use .nii.gz, .nii, .nrrd or .mha"
        )
    with atomic_path(path, overwrite) as temporary:
        if is_nifti(path):
            _write_nifti(temporary, array, reference)
        else:
            _write_simpleitk(temporary, array, reference.affine)
    logger.debug("wrote %s %s %s", path, array.shape, array.dtype)
    return path


def _write_nifti(path: Path, array: np.ndarray, reference: Volume) -> None:
    header = reference.header
    if isinstance(header, nib.Nifti1Header | nib.Nifti2Header):
        image_class = (
            nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
        )
        image = image_class(array, None, header.copy())
        # Copy both transforms with their codes, so viewers that prefer one over
        # the other place the output exactly where they place the input.
        qform, qform_code = header.get_qform(coded=True)
        sform, sform_code = header.get_sform(coded=True)
        image.set_qform(
            qform if qform is not None else reference.affine, int(qform_code)
        )
        image.set_sform(
            sform if sform is not None else reference.affine, int(sform_code)
        )
    else:
        image = nib.Nifti1Image(array, reference.affine)
        image.set_qform(reference.affine, 1)
        image.set_sform(reference.affine, 1)
    image.set_data_dtype(array.dtype)
    # Outputs are stored as given: never rescale labels or probabilities.
    image.header.set_slope_inter(1.0, 0.0)
    image.header["cal_min"] = 0
    image.header["cal_max"] = 0
    image.header["intent_code"] = 0
    nib.save(image, path)


def _write_simpleitk(path: Path, array: np.ndarray, affine: Affine) -> None:
    import SimpleITK as sitk

    is_vector = array.ndim == 4
    # (I, J, K[, C]) -> SimpleITK's (K, J, I[, C]).
    sitk_array = np.moveaxis(array, (0, 1, 2), (2, 1, 0))
    image = sitk.GetImageFromArray(np.ascontiguousarray(sitk_array), isVector=is_vector)
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    direction = _LPS_TO_RAS @ affine[:3, :3] @ np.diag(1.0 / spacing)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(float(d) for d in direction.ravel()))
    image.SetOrigin(tuple(float(o) for o in _LPS_TO_RAS @ affine[:3, 3]))
    sitk.WriteImage(image, str(path), useCompression=True)
