"""Pairing predictions with ground truth by case id."""

import logging

import numpy as np
import pytest
from metrics_builders import save

from seg3d.errors import DatasetError
from seg3d.metrics.matching import attach_images, case_id, match_cases


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("BraTS_001.nii.gz", "BraTS_001"),
        ("BraTS_001_seg.nii.gz", "BraTS_001"),
        ("BraTS_001_0000_seg.nii.gz", "BraTS_001"),
        ("BraTS_001_0003.nii", "BraTS_001"),
        ("case_12.mha", "case_12"),
        ("case_0001_extra.nii.gz", "case_0001_extra"),
    ],
    ids=["plain", "seg", "channel-seg", "channel", "mha", "inner-digits"],
)
def test_case_id(name, expected):
    assert case_id(name) == expected


def _touch(folder, *names):
    for name in names:
        save(folder / name, np.zeros((2, 2, 2), np.uint8))


def test_folders_pair_by_case_id_and_ignore_probabilities(tmp_path):
    _touch(tmp_path / "gt", "a.nii.gz", "b.nii.gz")
    _touch(
        tmp_path / "pred",
        "a_0000_seg.nii.gz",
        "b_0000_seg.nii.gz",
        "a_0000_probabilities.nii.gz",
    )

    matching = match_cases(tmp_path / "pred", tmp_path / "gt")

    assert [(p.case_id, p.prediction.name) for p in matching.pairs] == [
        ("a", "a_0000_seg.nii.gz"),
        ("b", "b_0000_seg.nii.gz"),
    ]
    assert matching.unmatched_predictions == ()


def test_ground_truth_without_prediction_is_an_error_listing_each(tmp_path):
    _touch(tmp_path / "gt", "a.nii.gz", "b.nii.gz", "c.nii.gz")
    _touch(tmp_path / "pred", "a_seg.nii.gz")

    with pytest.raises(
        DatasetError, match=r"2 of 3 ground-truth cases have no"
    ) as info:
        match_cases(tmp_path / "pred", tmp_path / "gt")

    assert [line.split(":")[0] for line in info.value.problems] == ["b", "c"]


def test_prediction_without_ground_truth_is_reported(tmp_path, caplog):
    _touch(tmp_path / "gt", "a.nii.gz")
    _touch(tmp_path / "pred", "a_seg.nii.gz", "z_seg.nii.gz")

    with caplog.at_level(logging.WARNING):
        matching = match_cases(tmp_path / "pred", tmp_path / "gt")

    assert [p.name for p in matching.unmatched_predictions] == ["z_seg.nii.gz"]
    assert "z_seg.nii.gz" in caplog.text


def test_two_files_of_one_case_are_refused(tmp_path):
    _touch(tmp_path / "gt", "a.nii.gz", "a_seg.nii")
    _touch(tmp_path / "pred", "a_seg.nii.gz")

    with pytest.raises(DatasetError, match=r"are both case 'a'"):
        match_cases(tmp_path / "pred", tmp_path / "gt")


def test_two_single_files_pair_whatever_their_names(tmp_path):
    _touch(tmp_path, "mine.nii.gz", "truth.nii.gz")

    matching = match_cases(tmp_path / "mine.nii.gz", tmp_path / "truth.nii.gz")

    assert [p.case_id for p in matching.pairs] == ["truth"]


@pytest.mark.parametrize("which", ["pred", "gt"], ids=["pred", "gt"])
def test_missing_or_empty_folders_are_named(tmp_path, which):
    _touch(tmp_path / "gt", "a.nii.gz")
    _touch(tmp_path / "pred", "a_seg.nii.gz")
    (tmp_path / "empty").mkdir()
    paths = {
        "pred": tmp_path / "pred",
        "gt": tmp_path / "gt",
        which: tmp_path / "empty",
    }

    with pytest.raises(DatasetError, match=r"empty holds no volume files"):
        match_cases(paths["pred"], paths["gt"])


def test_images_attach_by_case_id_first_channel(tmp_path):
    _touch(tmp_path / "gt", "a.nii.gz", "b.nii.gz")
    _touch(tmp_path / "pred", "a_seg.nii.gz", "b_seg.nii.gz")
    _touch(tmp_path / "img", "a_0001.nii.gz", "a_0000.nii.gz", "b_0000.nii.gz")
    pairs = match_cases(tmp_path / "pred", tmp_path / "gt").pairs

    attached = attach_images(pairs, [tmp_path / "img"])

    assert [p.image.name for p in attached] == ["a_0000.nii.gz", "b_0000.nii.gz"]


def test_cases_without_image_are_listed(tmp_path):
    _touch(tmp_path / "gt", "a.nii.gz", "b.nii.gz")
    _touch(tmp_path / "pred", "a_seg.nii.gz", "b_seg.nii.gz")
    _touch(tmp_path / "img", "a_0000.nii.gz")
    pairs = match_cases(tmp_path / "pred", tmp_path / "gt").pairs

    with pytest.raises(DatasetError, match=r"1 of 2 cases have no image") as info:
        attach_images(pairs, [tmp_path / "img"])

    assert info.value.problems == ["b: no image"]
