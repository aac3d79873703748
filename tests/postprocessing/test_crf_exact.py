"""The fast CRF against an exact O(N^2) mean field written out plainly.

The exact version builds both N x N kernel matrices, normalises them as
``D^-1/2 K D^-1/2`` (self term included, D the row sums) and runs the textbook
update ``Q <- softmax(log p - mu (w_s K_s + w_a K_a) Q)``.

Tolerances. The smoothness kernel is separable and exact up to its 4-sigma cut
(beyond the 12-voxel volume here), so it must agree to float32 rounding: 1e-4.
The appearance kernel goes through the permutohedral lattice, which replaces
the Gaussian by a piecewise-linear interpolation over lattice cells about one
sigma wide; its normalised messages are off by 2-3 % of their size on average
and by up to ~0.4 at a rare voxel whose intensity matches few others (measured
over the parameter sets below). Krähenbühl's reference has exactly the same
error (``test_crf_reference`` matches it to 1e-5). Through five iterations that
leaves the probabilities within 2e-3 on average and the label maps equal at
99 % of voxels or more, which is what is asserted.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from crf_builders import small_case

from seg3d.postprocessing.crf import PROBABILITY_FLOOR, apply_crf
from seg3d.postprocessing.crf_params import CrfParams
from seg3d.postprocessing.lattice import PermutohedralLattice

SPACING = (1.0, 1.2, 2.0)

LATTICE_PARAMS = {
    "defaults": CrfParams(),
    "appearance-only": CrfParams(
        smoothness_weight=0.0, appearance_sigma_mm=5.0, intensity_sigmas=0.5
    ),
    "per-channel-sigmas-10-iterations": CrfParams(
        smoothness_sigma_mm=(1.0, 1.5, 2.0),
        appearance_sigma_mm=(4.0, 3.0, 6.0),
        intensity_sigmas=(0.3, 0.8),
        appearance_weight=8.0,
        iterations=10,
    ),
    "matrix-compatibility": CrfParams(
        appearance_sigma_mm=6.0,
        intensity_sigmas=0.4,
        compatibility=((0.0, 1.0, 2.0), (1.0, 0.0, 0.5), (2.0, 0.5, 0.0)),
    ),
}


def positions_mm(shape, spacing) -> np.ndarray:
    axes = [np.arange(n) * step for n, step in zip(shape, spacing, strict=True)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)


def normalised_gaussian(features: np.ndarray) -> np.ndarray:
    """``D^-1/2 K D^-1/2`` for ``K_ij = exp(-|f_i - f_j|^2 / 2)``, (N, N)."""
    squared = sum(
        (features[:, k, None] - features[None, :, k]) ** 2
        for k in range(features.shape[1])
    )
    kernel = np.exp(-0.5 * squared)
    row_sums = kernel.sum(1)
    return kernel / np.sqrt(row_sums[:, None] * row_sums[None, :])


def exact_mean_field(probabilities, image, spacing, params) -> np.ndarray:
    num_classes, *shape = probabilities.shape
    positions = positions_mm(shape, spacing)
    intensities = image.reshape(image.shape[0], -1).T.astype(np.float64)
    smoothness = normalised_gaussian(positions / np.array(params.smoothness_sigma_mm))
    appearance = normalised_gaussian(
        np.concatenate(
            [
                positions / np.array(params.appearance_sigma_mm),
                intensities / np.array(params.intensity_sigmas_for(image.shape[0])),
            ],
            axis=1,
        )
    )
    kernel = (
        params.smoothness_weight * smoothness + params.appearance_weight * appearance
    )
    if params.compatibility is None:
        compatibility = 1.0 - np.eye(num_classes)
    else:
        compatibility = np.array(params.compatibility)
    flat = probabilities.reshape(num_classes, -1).astype(np.float64)
    log_p = np.log(np.maximum(flat, PROBABILITY_FLOOR))
    q = softmax(log_p)
    for _ in range(params.iterations):
        q = softmax(log_p - compatibility @ (q @ kernel))
    return q.reshape(probabilities.shape)


def softmax(x: np.ndarray) -> np.ndarray:
    exponentials = np.exp(x - x.max(0))
    return exponentials / exponentials.sum(0)


@pytest.fixture(scope="module")
def case():
    return small_case(seed=0)


@pytest.mark.parametrize(
    "params",
    [
        CrfParams(appearance_weight=0.0),
        CrfParams(appearance_weight=0.0, smoothness_sigma_mm=(1.5, 0.8, 3.0)),
    ],
    ids=["isotropic-3mm", "anisotropic-sigmas"],
)
def test_separable_smoothness_matches_exact_mean_field(case, params):
    probabilities, image, _ = case
    fast = apply_crf(probabilities, image, SPACING, params)
    exact = exact_mean_field(probabilities, image, SPACING, params)
    np.testing.assert_allclose(fast, exact, atol=1e-4)


@pytest.mark.parametrize("params", LATTICE_PARAMS.values(), ids=LATTICE_PARAMS.keys())
def test_lattice_mean_field_matches_exact_within_lattice_error(case, params):
    probabilities, image, _ = case
    fast = apply_crf(probabilities, image, SPACING, params)
    exact = exact_mean_field(probabilities, image, SPACING, params)

    assert np.abs(fast - exact).mean() < 2e-3
    assert (fast.argmax(0) == exact.argmax(0)).mean() >= 0.99
    # The comparison means something only if the CRF changed the labels.
    assert (exact.argmax(0) != probabilities.argmax(0)).mean() > 0.1


@pytest.mark.parametrize(
    ("appearance_sigma_mm", "intensity_sigmas"),
    [(5.0, 0.5), ((17.0, 12.0, 10.0), 0.1), ((4.0, 3.0, 6.0), (0.3, 0.8))],
    ids=["moderate", "defaults", "per-channel"],
)
def test_normalised_lattice_messages_are_within_a_few_percent(
    case, appearance_sigma_mm, intensity_sigmas
):
    probabilities, image, _ = case
    params = CrfParams(
        appearance_sigma_mm=appearance_sigma_mm, intensity_sigmas=intensity_sigmas
    )
    features = np.concatenate(
        [
            positions_mm(image.shape[1:], SPACING)
            / np.array(params.appearance_sigma_mm),
            image.reshape(2, -1).T / np.array(params.intensity_sigmas_for(2)),
        ],
        axis=1,
    )
    q = probabilities.reshape(3, -1).astype(np.float64)
    exact = q @ normalised_gaussian(features)

    lattice = PermutohedralLattice(torch.from_numpy(features.T.astype(np.float32)))
    norm = 1.0 / np.sqrt(lattice.filter(torch.ones(1, features.shape[0])).numpy())
    normalised = torch.from_numpy((q * norm).astype(np.float32))
    fast = norm * lattice.filter(normalised).numpy()

    # Messages average about 1/3 (a distribution over 3 classes).
    assert np.abs(fast - exact).mean() < 0.012
    assert np.abs(fast - exact).max() < 0.45
