"""Running the CRF for a case held on its own grid, in canonical orientation.

The CRF's per-axis sigmas (e.g. DeepMedic's appearance sigmas 17, 12, 10 mm)
name anatomical directions, so the CRF always runs with the case reoriented to
the closest RAS axes, whatever the axis order of its files; the result is
reoriented back exactly (axis flips and permutations only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from seg3d.data.case import Case
from seg3d.io import Reorientation, Spacing
from seg3d.postprocessing.crf import apply_crf
from seg3d.postprocessing.crf_params import CrfParams
from seg3d.preprocessing.normalization import normalize
from seg3d.preprocessing.record import ChannelStatistics


@dataclass(eq=False)
class CanonicalCrfInputs:
    """A case's CRF inputs on its canonical (closest RAS) grid.

    Attributes:
        reorientation: from the case's grid to the canonical one.
        image: ``(C, I, J, K)`` float32 normalised intensities, canonical axes.
        spacing: voxel size in mm along the canonical axes.
        roi_mask: ``(I, J, K)`` bool on canonical axes, or ``None``.
    """

    reorientation: Reorientation
    image: np.ndarray
    spacing: Spacing
    roi_mask: np.ndarray | None

    def to_canonical(self, array: np.ndarray) -> np.ndarray:
        """``(N, I, J, K)`` on the case's grid to canonical axes."""
        return self.reorientation.to_canonical(array, channels_first=True)

    def from_canonical(self, array: np.ndarray) -> np.ndarray:
        return self.reorientation.from_canonical(array, channels_first=True)


def canonical_crf_inputs(
    case: Case, statistics: Sequence[ChannelStatistics]
) -> CanonicalCrfInputs:
    """The case's intensities normalised with ``statistics``, reoriented to RAS.

    Args:
        case: the case on its own grid.
        statistics: per channel, the normalisation a model applied to this
            case; the CRF's intensity sigmas are in those units (z-scores).
    """
    reorientation = Reorientation.for_grid(case.affine, case.spatial_shape)
    image = normalize(case.image, statistics, case.roi_mask)
    linear = reorientation.canonical_affine(case.affine)[:3, :3]
    spacing = tuple(float(s) for s in np.sqrt((linear**2).sum(axis=0)))
    roi = None
    if case.roi_mask is not None:
        roi = reorientation.to_canonical(case.roi_mask)
    return CanonicalCrfInputs(
        reorientation,
        reorientation.to_canonical(image, channels_first=True),
        spacing,  # type: ignore[arg-type]
        roi,
    )


def refine_case_probabilities(
    probabilities: np.ndarray,
    case: Case,
    statistics: Sequence[ChannelStatistics],
    params: CrfParams,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """The CRF applied to ``(N, I, J, K)`` probabilities on the case's own grid."""
    inputs = canonical_crf_inputs(case, statistics)
    refined = apply_crf(
        inputs.to_canonical(probabilities),
        inputs.image,
        inputs.spacing,
        params,
        inputs.roi_mask,
        device,
    )
    return inputs.from_canonical(refined)
