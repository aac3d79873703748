"""Label maps for the metrics tests: random smooth blobs and files on disk."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

ANISOTROPIC_SPACING = (0.7, 1.3, 2.9)


def blob(shape: tuple[int, ...], seed: int, fraction: float = 0.12) -> np.ndarray:
    """A bool mask of a few smooth random blobs covering about ``fraction``."""
    noise = np.random.default_rng(seed).random(shape)
    smooth = ndimage.gaussian_filter(noise, sigma=2.0)
    return smooth > np.quantile(smooth, 1.0 - fraction)


def nested_label_map(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """A uint8 map with labels 1, 2, 3 as random, partly nested blobs."""
    label_map = np.zeros(shape, np.uint8)
    label_map[blob(shape, seed, 0.2)] = 1
    label_map[blob(shape, seed + 1000, 0.08)] = 2
    label_map[blob(shape, seed + 2000, 0.05)] = 3
    return label_map


def affine_for(spacing=ANISOTROPIC_SPACING, origin=(-20.0, 10.0, 5.0)) -> np.ndarray:
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = origin
    return affine


def save(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> Path:
    """Write ``array`` as NIfTI with an LPS-flipped anisotropic affine by default."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(
        nib.Nifti1Image(array, affine if affine is not None else affine_for()), path
    )
    return path
