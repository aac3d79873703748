"""seg3d's CRF against Krähenbühl's reference implementation (pydensecrf2).

The reference is a benchmark-and-test dependency (``pip install -e
".[crf-reference]"``); it compiles from source for a minute or two, so it is
not in the ``test`` extra and these tests skip without it.

The reference is given the features it needs for 3D: positions in mm divided
by the spatial sigmas, intensities divided by the intensity sigmas, one
pairwise term per kernel, Potts weights as compatibilities, symmetric
normalisation (its default). seg3d's lattice follows the reference's, so with
the appearance kernel alone the two agree to float32 rounding; with both
kernels seg3d's exact separable smoothness filter replaces the reference's
second lattice, and the two agree as closely as each agrees with the exact
mean field (see ``test_crf_exact``).
"""

from __future__ import annotations

import numpy as np
import pytest
from crf_builders import small_case

from seg3d.postprocessing.crf import PROBABILITY_FLOOR, apply_crf
from seg3d.postprocessing.crf_params import CrfParams

densecrf = pytest.importorskip("pydensecrf.densecrf")

SPACING = (1.0, 1.2, 2.0)


def reference_crf(probabilities, image, spacing, params) -> np.ndarray:
    num_classes, *shape = probabilities.shape
    crf = densecrf.DenseCRF(int(np.prod(shape)), num_classes)
    floored = np.clip(probabilities.reshape(num_classes, -1), PROBABILITY_FLOOR, 1.0)
    crf.setUnaryEnergy(np.ascontiguousarray(-np.log(floored), dtype=np.float32))
    # float32 throughout, rounded as seg3d rounds, so that points that tie
    # between two lattice simplices (common on a regular grid) tie alike.
    axes = [
        np.arange(n, dtype=np.float32) * np.float32(s)
        for n, s in zip(shape, spacing, strict=True)
    ]
    positions = np.stack(np.meshgrid(*axes, indexing="ij")).reshape(3, -1)
    if params.smoothness_weight > 0:
        features = positions / np.float32(params.smoothness_sigma_mm)[:, None]
        crf.addPairwiseEnergy(
            np.ascontiguousarray(features, dtype=np.float32),
            compat=params.smoothness_weight,
        )
    if params.appearance_weight > 0:
        intensity_sigmas = np.float32(params.intensity_sigmas_for(image.shape[0]))
        features = np.concatenate(
            [
                positions / np.float32(params.appearance_sigma_mm)[:, None],
                image.reshape(image.shape[0], -1) / intensity_sigmas[:, None],
            ]
        )
        crf.addPairwiseEnergy(
            np.ascontiguousarray(features, dtype=np.float32),
            compat=params.appearance_weight,
        )
    q = np.array(crf.inference(params.iterations))
    return q.reshape(probabilities.shape)


@pytest.fixture(scope="module")
def case():
    return small_case(seed=1, shape=(16, 14, 12))


@pytest.mark.parametrize(
    "params",
    [
        CrfParams(smoothness_weight=0.0),
        CrfParams(smoothness_weight=0.0, appearance_sigma_mm=4.0, intensity_sigmas=0.5),
        CrfParams(
            smoothness_weight=0.0,
            appearance_sigma_mm=(3.0, 5.0, 4.0),
            intensity_sigmas=(0.3, 1.0),
            appearance_weight=10.0,
            iterations=8,
        ),
    ],
    ids=["defaults", "moderate", "per-channel-8-iterations"],
)
def test_appearance_kernel_equals_the_reference(case, params):
    probabilities, image, _ = case
    ours = apply_crf(probabilities, image, SPACING, params)
    reference = reference_crf(probabilities, image, SPACING, params)
    np.testing.assert_allclose(ours, reference, atol=1e-5)


@pytest.mark.parametrize(
    "params",
    [CrfParams(), CrfParams(intensity_sigmas=0.5), CrfParams(smoothness_weight=6.0)],
    ids=["defaults", "moderate-intensity-sigma", "strong-smoothness"],
)
def test_full_crf_agrees_with_the_reference(case, params):
    probabilities, image, _ = case
    ours = apply_crf(probabilities, image, SPACING, params)
    reference = reference_crf(probabilities, image, SPACING, params)

    assert np.abs(ours - reference).mean() < 6e-3
    assert (ours.argmax(0) == reference.argmax(0)).mean() >= 0.99
    assert (reference.argmax(0) != probabilities.argmax(0)).mean() > 0.1
