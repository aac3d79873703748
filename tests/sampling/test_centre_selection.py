"""Centres lie in the ROI, on foreground and background in the shares asked for."""

import logging

import numpy as np
import pytest
from sampling_builders import make_case, tiny_geometry

from seg3d.errors import ConfigError, DatasetError
from seg3d.sampling import (
    AugmentationConfig,
    SamplingConfig,
    SegmentSampler,
    class_index_map,
)

SHAPE = (20, 18, 16)


def _labelled_case(case_id="a", labels=(1, 2), seed=0, roi=True):
    """A noise image with two small label blocks (one partly outside the ROI)."""
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(2, *SHAPE)).astype(np.float32)
    label_map = np.zeros(SHAPE, dtype=np.uint8)
    label_map[3:6, 4:7, 5:8] = labels[0]  # 27 voxels, inside the ROI
    label_map[12:18, 10:13, 2:5] = labels[1]  # 54 voxels, some outside it
    roi_mask = None
    if roi:
        i, j, k = np.indices(SHAPE)
        roi_mask = (i - 9) ** 2 + (j - 9) ** 2 + (k - 8) ** 2 <= 8**2
    return make_case(case_id, image, label_map, roi_mask)


def _sampler(cases, label_values=(0, 1, 2), batch_size=10, batches=200, **balance):
    config = SamplingConfig(**balance, augmentation=AugmentationConfig.none())
    return SegmentSampler(
        cases,
        tiny_geometry(factors=(1, 3)),
        label_values,
        batch_size=batch_size,
        batches_per_epoch=batches,
        config=config,
        seed=11,
    )


def _centres(sampler, batches):
    """Centre label values, case indices and centres of ``batches`` batches."""
    found = [sampler.batch(0, b) for b in range(batches)]
    cases = np.concatenate([b["case_index"].numpy() for b in found])
    centres = np.concatenate([b["centre"].numpy() for b in found])
    targets = np.concatenate([b["target"].numpy() for b in found])
    return cases, centres, targets


def test_all_centres_lie_inside_the_roi():
    case = _labelled_case()
    _, centres, _ = _centres(_sampler([case]), 100)
    assert np.all(case.roi_mask[tuple(centres.T)])
    # Some label-2 voxels lie outside the ROI; none of them is ever a centre.
    outside = (case.label_map == 2) & ~case.roi_mask
    assert outside.any()
    assert not outside[tuple(centres.T)].any()


def test_foreground_share_is_one_half_over_2000_samples():
    # An odd batch size, so that the split of each batch is partly random.
    case = _labelled_case()
    sampler = _sampler([case], batch_size=7, batches=286)
    _, centres, targets = _centres(sampler, 286)
    assert len(centres) == 2002
    on_foreground = case.label_map[tuple(centres.T)] != 0
    assert abs(on_foreground.mean() - 0.5) <= 0.05
    # Only the odd seventh centre of each batch is random: 3 + Bernoulli(1/2)
    # foreground centres per batch, so the share's standard deviation is 0.004.
    assert abs(on_foreground.mean() - 0.5) <= 0.02
    # The target's centre voxel is the centre's label (class index = value here).
    np.testing.assert_array_equal(targets[:, 4, 4, 4], case.label_map[tuple(centres.T)])


def test_even_batches_are_split_exactly():
    sampler = _sampler([_labelled_case()], batch_size=10, batches=20)
    for index in range(20):
        batch = sampler.batch(3, index)
        assert int((batch["target"][:, 4, 4, 4] != 0).sum()) == 5


def test_per_class_shares_with_sparse_label_values():
    # Label values 0, 2, 5 are class indices 0, 1, 2; shares name label values.
    case = _labelled_case(labels=(2, 5))
    sampler = _sampler(
        [case], label_values=(0, 2, 5), batches=200, class_shares={5: 0.3, "2": 0.1}
    )
    _, centres, targets = _centres(sampler, 200)
    values = case.label_map[tuple(centres.T)]
    assert abs(np.mean(values == 5) - 0.3) <= 0.05
    assert abs(np.mean(values == 2) - 0.1) <= 0.05
    assert abs(np.mean(values == 0) - 0.6) <= 0.05
    np.testing.assert_array_equal(
        targets[:, 4, 4, 4], np.searchsorted([0, 2, 5], values)
    )


def test_case_without_foreground_only_gives_background(caplog):
    with_lesion = _labelled_case("with_lesion")
    empty = _labelled_case("empty", seed=1)
    empty.label_map[...] = 0
    with caplog.at_level(logging.WARNING, logger="seg3d.sampling"):
        sampler = _sampler([with_lesion, empty], batches=40)
    assert "1 of 2 cases have no foreground voxel inside the ROI" in caplog.text
    assert "empty" in caplog.text
    cases, centres, _ = _centres(sampler, 40)
    label_maps = [with_lesion.label_map, empty.label_map]
    on_foreground = np.array(
        [label_maps[c][tuple(x)] != 0 for c, x in zip(cases, centres, strict=True)]
    )
    assert on_foreground.mean() == 0.5
    assert np.all(cases[on_foreground] == 0)
    assert set(cases[~on_foreground].tolist()) == {0, 1}


def test_no_foreground_anywhere_falls_back_to_background(caplog):
    case = _labelled_case()
    case.label_map[...] = 0
    with caplog.at_level(logging.WARNING, logger="seg3d.sampling"):
        sampler = _sampler([case], batches=5)
    assert "no case has a foreground voxel inside the ROI" in caplog.text
    assert "goes to background" in caplog.text
    _, centres, _ = _centres(sampler, 5)
    assert np.all(case.roi_mask[tuple(centres.T)])


def test_without_roi_centres_cover_the_whole_volume():
    case = _labelled_case(roi=False)
    _, centres, _ = _centres(_sampler([case], foreground_share=0.0), 100)
    assert case.label_map[tuple(centres.T)].max() == 0
    # Background centres reach the volume's corners, far outside the ROI ball.
    assert centres.min(axis=0).tolist() == [0, 0, 0]
    assert centres.max(axis=0).tolist() == [s - 1 for s in SHAPE]


def test_unknown_label_value_names_the_case():
    case = _labelled_case(labels=(1, 3))
    with pytest.raises(DatasetError, match=r"case 'a': label map holds values \[3\]"):
        _sampler([case], label_values=(0, 1, 2))


def test_class_shares_for_a_label_the_dataset_lacks():
    with pytest.raises(ConfigError, match=r"class_shares names label values \[7\]"):
        _sampler([_labelled_case()], class_shares={7: 0.2})


@pytest.mark.parametrize(
    ("shares", "message"),
    [
        ({0: 0.5}, r"remove label 0"),
        ({1: 0.7, 2: 0.4}, r"must sum to at most 1, not 1\.1"),
        ({"lesion": 0.3}, r"keys must be integer label values, not 'lesion'"),
        ({1: -0.1}, r"class_shares\[1\] must be in \[0, 1\]"),
    ],
    ids=["background", "too_much", "name_key", "negative"],
)
def test_bad_class_shares_are_rejected(shares, message):
    with pytest.raises(ValueError, match=message):
        SamplingConfig(class_shares=shares)


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.int16, np.int32, np.float32], ids=lambda d: d.__name__
)
def test_class_index_map_orders_classes_as_given(dtype):
    label_map = np.array([[[0, 4], [2, 4]]], dtype=dtype)
    classes = class_index_map(label_map, (0, 4, 2))
    np.testing.assert_array_equal(classes, [[[0, 1], [2, 1]]])
    assert classes.dtype == np.uint8
    label_map[0, 0, 0] = -3 if dtype != np.uint8 else 3
    with pytest.raises(DatasetError, match=r"case 'x': label map holds values \[-?3"):
        class_index_map(label_map, (0, 4, 2), "x")
