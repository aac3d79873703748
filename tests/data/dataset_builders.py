"""Small helpers the dataset tests share, in a module importable by name."""

from pathlib import Path

import nibabel as nib
import numpy as np


def save_volume(
    path: Path, array: np.ndarray, affine: np.ndarray | None = None
) -> Path:
    """Write ``array`` as NIfTI with nibabel (not seg3d), on ``affine`` or identity."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.eye(4) if affine is None else affine), path)
    return path
