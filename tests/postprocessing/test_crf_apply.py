"""apply_crf: the region of interest, the compatibility, the errors."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from crf_builders import small_case

from seg3d.errors import ConfigError, GeometryMismatchError, Seg3dError
from seg3d.postprocessing.crf import apply_crf
from seg3d.postprocessing.crf_params import CrfParams

SPACING = (1.0, 1.2, 2.0)
PARAMS = CrfParams(appearance_sigma_mm=6.0, intensity_sigmas=0.4)


@pytest.fixture(scope="module")
def case():
    return small_case(seed=2)


def embedded(case, pad=((3, 4), (0, 5), (2, 0))):
    """The case inside a larger volume of other content, and its ROI there."""
    probabilities, image, _ = case
    rng = np.random.default_rng(7)
    big_probabilities = np.pad(probabilities, ((0, 0), *pad))
    outside = big_probabilities.sum(0) == 0
    big_probabilities[:, outside] = rng.dirichlet(np.ones(3), outside.sum()).T
    big_image = np.pad(image, ((0, 0), *pad))
    big_image[:, outside] = rng.normal(0.0, 1.0, (2, outside.sum()))
    return big_probabilities, big_image, ~outside


def test_roi_box_gives_the_same_result_as_the_cropped_volume(case):
    probabilities, image, _ = case
    big_probabilities, big_image, roi = embedded(case)

    cropped = apply_crf(probabilities, image, SPACING, PARAMS)
    in_place = apply_crf(big_probabilities, big_image, SPACING, PARAMS, roi)

    np.testing.assert_allclose(
        in_place[:, roi].reshape(cropped.shape), cropped, atol=1e-6
    )
    np.testing.assert_array_equal(in_place[:, ~roi], big_probabilities[:, ~roi])


def test_voxels_outside_the_roi_take_no_part(case):
    probabilities, image, _ = case
    roi = np.zeros(probabilities.shape[1:], dtype=bool)
    roi[2:10, 1:11, 3:9] = True
    roi[5, 5, 5] = False  # a hole: inside the box, outside the ROI

    changed_probabilities = probabilities.copy()
    changed_probabilities[:, ~roi] = np.roll(probabilities, 1, axis=0)[:, ~roi]
    changed_image = image.copy()
    changed_image[:, ~roi] += 5.0

    first = apply_crf(probabilities, image, SPACING, PARAMS, roi)
    second = apply_crf(changed_probabilities, changed_image, SPACING, PARAMS, roi)
    np.testing.assert_allclose(first[:, roi], second[:, roi], atol=1e-6)
    np.testing.assert_array_equal(second[:, ~roi], changed_probabilities[:, ~roi])
    assert (first[:, roi].argmax(0) != probabilities[:, roi].argmax(0)).any()


def test_empty_roi_leaves_probabilities_and_says_so(case, caplog):
    probabilities, image, _ = case
    roi = np.zeros(probabilities.shape[1:], dtype=bool)
    with caplog.at_level(logging.WARNING, logger="seg3d.postprocessing.crf"):
        result = apply_crf(probabilities, image, SPACING, PARAMS, roi)
    np.testing.assert_array_equal(result, probabilities)
    assert "ROI mask is empty" in caplog.text


def test_potts_matrix_equals_the_default_compatibility(case):
    probabilities, image, _ = case
    potts = tuple(tuple(float(i != j) for j in range(3)) for i in range(3))
    default = apply_crf(probabilities, image, SPACING, PARAMS)
    matrix = apply_crf(
        probabilities,
        image,
        SPACING,
        CrfParams(**{**vars(PARAMS), "compatibility": potts}),
    )
    np.testing.assert_allclose(matrix, default, atol=1e-5)


def test_zero_weights_leave_probabilities_as_they_are(case):
    probabilities, image, _ = case
    params = CrfParams(smoothness_weight=0.0, appearance_weight=0.0)
    result = apply_crf(probabilities, image, SPACING, params)
    np.testing.assert_allclose(result, probabilities, atol=1e-4)


def test_result_is_a_distribution_per_voxel(case):
    probabilities, image, _ = case
    result = apply_crf(probabilities.astype(np.float64), image, SPACING, PARAMS)
    assert result.dtype == np.float32
    assert result.shape == probabilities.shape
    np.testing.assert_allclose(result.sum(0), 1.0, atol=1e-5)


def test_different_grids_are_refused(case):
    probabilities, image, _ = case
    with pytest.raises(
        GeometryMismatchError,
        match=r"differ: probabilities \(12, 12, 12\), image \(12, 12, 11\)",
    ):
        apply_crf(probabilities, image[..., :11], SPACING, PARAMS)
    with pytest.raises(GeometryMismatchError, match=r"roi_mask \(12, 12, 5\)"):
        apply_crf(probabilities, image, SPACING, PARAMS, np.ones((12, 12, 5), bool))


def test_parameters_that_do_not_fit_the_case_are_refused(case):
    probabilities, image, _ = case
    with pytest.raises(
        ConfigError, match="intensity_sigmas has 3 values but the image"
    ):
        apply_crf(probabilities, image, SPACING, CrfParams(intensity_sigmas=(1, 2, 3)))
    two_classes = ((0.0, 1.0), (1.0, 0.0))
    with pytest.raises(
        ConfigError, match="compatibility is 2 x 2 but the probabilities"
    ):
        apply_crf(probabilities, image, SPACING, CrfParams(compatibility=two_classes))
    with pytest.raises(ValueError, match=r"must be \(L, I, J, K\) with L >= 2"):
        apply_crf(probabilities[:1], image, SPACING, PARAMS)


def test_nan_intensities_are_refused_with_the_channel(case):
    probabilities, image, _ = case
    broken = image.copy()
    broken[1, 3, 4, 5] = np.nan
    with pytest.raises(
        Seg3dError, match=r"image hold NaN or infinite values \(channel 1\)"
    ):
        apply_crf(probabilities, broken, SPACING, PARAMS)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_gives_the_cpu_result(case):
    probabilities, image, _ = case
    roi = np.zeros(probabilities.shape[1:], dtype=bool)
    roi[1:11, 2:12, 0:10] = True
    on_cpu = apply_crf(probabilities, image, SPACING, PARAMS, roi)
    on_gpu = apply_crf(probabilities, image, SPACING, PARAMS, roi, device="cuda")
    # Atomic additions on the GPU sum in another order than the CPU.
    np.testing.assert_allclose(on_gpu, on_cpu, atol=1e-4)
