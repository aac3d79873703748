"""The CRF on probability maps that are already on disk (from seg3d or elsewhere)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from seg3d.data.case import Case, CaseFiles
from seg3d.data.loading import load_case
from seg3d.errors import VolumeReadError
from seg3d.io import Volume, check_same_grid, read_volume
from seg3d.postprocessing.case_grid import refine_case_probabilities
from seg3d.postprocessing.components import filter_components
from seg3d.postprocessing.settings import Postprocessing
from seg3d.preprocessing import PreprocessingConfig, preprocess_case


def refine_probability_file(
    images: Sequence[Path],
    probabilities_path: Path,
    settings: Postprocessing,
    mask: Path | None = None,
    device: torch.device | str = "cpu",
) -> tuple[np.ndarray, Volume]:
    """Run the CRF (and component clean-up) on a 4D probability file.

    Args:
        images: the case's channel files (or one 4D file); intensities are
            z-scored over the mask (or non-zero voxels), the scale of the CRF's
            intensity sigmas.
        probabilities_path: ``(I, J, K, N)`` class probabilities on the
            images' grid, background first.
        settings: the CRF parameters (and optional component filter).
        mask: an ROI mask restricting the CRF.

    Returns:
        ``(I, J, K)`` class indices (0 .. N-1) and the grid to write them on.
    """
    case = load_case(CaseFiles("crf", tuple(images), None, mask))
    probabilities = _read_probabilities(probabilities_path, case)
    record = preprocess_case(case, PreprocessingConfig(crop="none")).record
    if settings.crf is not None:
        probabilities = refine_case_probabilities(
            probabilities, case, record.statistics, settings.crf, device
        )
    classes = probabilities.argmax(axis=0).astype(np.uint16)
    if settings.components is not None:
        classes, _ = filter_components(classes, case.spacing, settings.components)
    return classes, case.reference


def _read_probabilities(path: Path, case: Case) -> np.ndarray:
    volume = read_volume(path)
    check_same_grid(case.reference, volume, "give probabilities on the image's grid")
    if volume.array.ndim != 4 or volume.array.shape[3] < 2:
        raise VolumeReadError(
            f"{path}: expected a 4D map of at least 2 class probabilities (I, J, K, "
            f"N), found shape {volume.array.shape}"
        )
    probabilities = np.moveaxis(volume.array.astype(np.float32), -1, 0)  # (N, I, J, K)
    total = probabilities.sum(axis=0)
    if not np.allclose(total, 1.0, atol=1e-3):
        raise VolumeReadError(
            f"{path}: the values do not sum to 1 over the last axis (range "
            f"{total.min():.3g} to {total.max():.3g}); give class probabilities, "
            "not logits or scores"
        )
    return probabilities
