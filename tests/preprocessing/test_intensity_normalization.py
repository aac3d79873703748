"""Normalisation statistics and values, known by construction."""

import logging

import numpy as np
import pytest

from seg3d.data.case import Case
from seg3d.io import Volume
from seg3d.preprocessing import (
    ChannelNormalization,
    PreprocessingConfig,
    preprocess_case,
)

LPS = np.diag([-1.0, -1.0, 2.0, 1.0])


def _case(image: np.ndarray, roi_mask: np.ndarray | None = None) -> Case:
    image = image.astype(np.float32)
    return Case("known", image, Volume(image[0], LPS), None, roi_mask)


def _ramp_in_box() -> tuple[np.ndarray, np.ndarray]:
    """A ``(1, 12, 12, 12)`` image whose 10**3 ROI voxels hold 0..999 once each."""
    roi_mask = np.zeros((12, 12, 12), dtype=bool)
    roi_mask[1:11, 1:11, 1:11] = True
    image = np.full((1, 12, 12, 12), 5000.0)
    image[0][roi_mask] = np.random.default_rng(3).permutation(1000)
    return image, roi_mask


def test_zscore_uses_roi_voxels_and_zeroes_the_rest(blob_case):
    case = blob_case("SLP_oblique")
    processed = preprocess_case(case, PreprocessingConfig(crop_margin=2))

    for channel in range(case.num_channels):
        inside = processed.image[channel][processed.roi_mask]
        expected = case.image[channel][case.roi_mask].astype(np.float64)
        statistics = processed.record.statistics[channel]
        assert statistics.region == "roi"
        assert statistics.offset == pytest.approx(expected.mean(), rel=1e-12)
        assert statistics.scale == pytest.approx(expected.std(), rel=1e-12)
        assert inside.mean() == pytest.approx(0.0, abs=1e-5)
        assert inside.std() == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_array_equal(processed.image[channel][~processed.roi_mask], 0)


def test_zscore_without_roi_uses_each_channels_nonzero_voxels():
    image = np.zeros((2, 8, 8, 8))
    image[0, 2:6, 2:6, 2:6] = np.tile([10.0, 14.0], 32).reshape(4, 4, 4)
    image[1, 1:7, 1:7, 1:7] = 3.0
    image[1, 1:7, 1:7, 1:4] = 7.0

    processed = preprocess_case(_case(image), PreprocessingConfig(crop="none"))

    first, second = processed.record.statistics
    assert (first.region, first.offset, first.scale) == ("nonzero", 12.0, 2.0)
    assert (second.region, second.offset, second.scale) == ("nonzero", 5.0, 2.0)
    # Zeros outside the non-zero region are normalised like any other value.
    assert processed.image[0, 0, 0, 0] == pytest.approx(-6.0)


def test_all_zero_channel_falls_back_to_all_voxels_and_warns(caplog):
    image = np.zeros((1, 4, 4, 4))

    with caplog.at_level(logging.WARNING, logger="seg3d.preprocessing"):
        processed = preprocess_case(_case(image), PreprocessingConfig())

    statistics = processed.record.statistics[0]
    assert (statistics.region, statistics.offset, statistics.scale) == ("all", 0.0, 1.0)
    assert "constant" in caplog.text
    np.testing.assert_array_equal(processed.image, 0.0)


def test_percentile_clips_to_known_values_then_zscores():
    image, roi_mask = _ramp_in_box()
    config = PreprocessingConfig(
        normalization=(ChannelNormalization("percentile", percentiles=(1.0, 99.0)),)
    )

    processed = preprocess_case(_case(image, roi_mask), config)

    statistics = processed.record.statistics[0]
    # numpy's linear percentile of 0..999: 1 % lies at 9.99, 99 % at 989.01.
    assert statistics.clip_low == pytest.approx(9.99, abs=1e-9)
    assert statistics.clip_high == pytest.approx(989.01, abs=1e-9)
    # Clipping 0..999 symmetrically keeps the mean at 499.5.
    assert statistics.offset == pytest.approx(499.5, abs=1e-9)
    clipped = np.clip(np.arange(1000.0), 9.99, 989.01)
    assert statistics.scale == pytest.approx(clipped.std(), rel=1e-12)
    values = processed.image[0][processed.roi_mask]
    assert values.min() == pytest.approx((9.99 - 499.5) / clipped.std(), rel=1e-6)
    assert values.max() == pytest.approx((989.01 - 499.5) / clipped.std(), rel=1e-6)


def test_ct_window_maps_onto_minus_one_to_one():
    hounsfield = np.array([-1000.0, -100.0, 100.0, 300.0, 2000.0, 200.0])
    image = np.broadcast_to(hounsfield[:, None, None], (6, 3, 3))[None]
    config = PreprocessingConfig(
        normalization=(ChannelNormalization("ct_window", window=(-100, 300)),),
        crop="none",
    )

    processed = preprocess_case(_case(image), config)

    # LPS: the file's i axis runs right to left, so the canonical i is reversed.
    values = processed.image[0, ::-1, 0, 0]
    np.testing.assert_array_equal(values, [-1.0, -1.0, 0.0, 1.0, 1.0, 0.5])
    statistics = processed.record.statistics[0]
    assert (statistics.clip_low, statistics.clip_high) == (-100.0, 300.0)


def test_none_leaves_intensities_alone_even_outside_roi():
    image, roi_mask = _ramp_in_box()
    config = PreprocessingConfig(
        normalization=(ChannelNormalization("none"),), crop="none"
    )

    processed = preprocess_case(_case(image, roi_mask), config)

    np.testing.assert_array_equal(processed.image[0, ::-1, ::-1], image[0])


def test_one_normalisation_per_channel():
    image = np.stack([np.full((4, 4, 4), 40.0), np.full((4, 4, 4), 40.0)])
    image[:, 0] = 20.0
    config = PreprocessingConfig(
        normalization=(
            ChannelNormalization("ct_window", window=(0, 40)),
            ChannelNormalization("none"),
        ),
        crop="none",
    )

    processed = preprocess_case(_case(image), config)

    assert processed.image[0].max() == 1.0
    assert processed.image[0].min() == 0.0
    assert processed.image[1].max() == 40.0
