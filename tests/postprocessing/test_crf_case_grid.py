"""The CRF of a case does not depend on the axis order of the case's files."""

import numpy as np
from crf_builders import noisy_case

from seg3d.data.case import Case
from seg3d.io import Reorientation, Volume
from seg3d.postprocessing.case_grid import refine_case_probabilities
from seg3d.postprocessing.crf_params import CrfParams
from seg3d.preprocessing.record import ChannelStatistics

# Anisotropic appearance sigmas make the result depend on which axis is which.
PARAMS = CrfParams(iterations=3, appearance_sigma_mm=(9.0, 4.0, 2.0))
STATISTICS = [ChannelStatistics("zscore", "all", 0.0, 1.0)] * 2


def _case(image, affine):
    return Case("c", image, Volume(image[0], affine))


def test_same_result_for_ras_and_permuted_files():
    probabilities, image, _, spacing = noisy_case(seed=5, shape=(24, 20, 16))
    ras = np.diag([*spacing, 1.0])
    # Files stored as (A->P, I->S, R->L): i is anterior, j superior, k left.
    permuted = np.array(
        [
            [0, 0, -spacing[0], 30.0],
            [-spacing[1], 0, 0, 40.0],
            [0, spacing[2], 0, -10.0],
            [0, 0, 0, 1.0],
        ]
    )
    # The same voxels stored in the permuted file's axis order.
    back = Reorientation.for_grid(permuted, (20, 16, 24))
    assert back.canonical_shape == (24, 20, 16)
    stored = back.from_canonical(image, channels_first=True)
    stored_probabilities = back.from_canonical(probabilities, channels_first=True)

    plain = refine_case_probabilities(
        probabilities, _case(image, ras), STATISTICS, PARAMS
    )
    other = refine_case_probabilities(
        stored_probabilities, _case(stored, permuted), STATISTICS, PARAMS
    )

    np.testing.assert_allclose(
        back.to_canonical(other, channels_first=True), plain, atol=1e-5
    )
    assert not np.allclose(plain, probabilities)
