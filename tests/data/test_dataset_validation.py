"""Validation names every problem with its file, and reports them all at once."""

import json
import re
import shutil

import nibabel as nib
import numpy as np
import pytest
from dataset_builders import save_volume

from seg3d.data.dataset import (
    load_case,
    load_cases,
    open_dataset,
    require_valid,
    validate_dataset,
)
from seg3d.errors import DatasetError

# Each breaker spoils one file of the tiny dataset (training synth_000 and
# synth_001, test synth_002) and returns the exact problem expected, as a regex.


def _rewrite(path, change):
    """Rewrite a NIfTI file with nibabel, changing its voxels or affine."""
    image = nib.load(path)
    array, affine = change(np.asanyarray(image.dataobj).copy(), image.affine.copy())
    save_volume(path, array, affine)


def _missing_channel(root):
    path = root / "imagesTr" / "synth_000_0001.nii.gz"
    path.unlink()
    return re.escape(
        f"{path}: missing channel 1 (FLAIR) of case 'synth_000'; add the file or "
        "fix its name"
    )


def _missing_label(root):
    path = root / "labelsTr" / "synth_001.nii.gz"
    path.unlink()
    return re.escape(
        f"{path}: missing label map of case 'synth_001'; add the file or fix its name"
    )


def _undeclared_label(root):
    path = root / "labelsTr" / "synth_000.nii.gz"

    def add_seven(array, affine):
        array[0, 0, 0] = 7
        return array, affine

    _rewrite(path, add_seven)
    return re.escape(
        f"{path}: label values [7] are not declared (declared: 0, 1, 2); declare "
        "them in the dataset's labels or fix the label map"
    )


def _label_off_grid(root):
    path = root / "labelsTr" / "synth_001.nii.gz"

    def shift(array, affine):
        affine[0, 3] += 5.0
        return array, affine

    _rewrite(path, shift)
    channel = root / "imagesTr" / "synth_001_0000.nii.gz"
    return (
        re.escape(f"{channel} and {path} are not on the same voxel grid: ")
        + r"affines differ by up to 5 \(spacing .* origin .*\); "
        + re.escape("resample the label map onto the first channel's grid")
    )


def _channel_shape_mismatch(root):
    path = root / "imagesTr" / "synth_000_0001.nii.gz"
    _rewrite(path, lambda array, affine: (array[:, :, :-1], affine))
    channel = root / "imagesTr" / "synth_000_0000.nii.gz"
    return re.escape(
        f"{channel} and {path} are not on the same voxel grid: shape (12, 12, 13) "
        "vs (12, 12, 12); resample the channel onto the first channel's grid"
    )


def _image_2d(root):
    path = root / "imagesTs" / "synth_002_0000.nii.gz"
    _rewrite(path, lambda array, affine: (array[:, :, 5], affine))
    return re.escape(
        f"{path}: the image is 2D with shape (13, 14); seg3d needs 3D volumes (or 4D "
        "with channels last)"
    )


def _nan_voxels(root):
    path = root / "imagesTr" / "synth_001_0000.nii.gz"

    def spoil(array, affine):
        array = array.astype(np.float32)
        array[0, :3, 0] = np.nan
        array[1, 1, 1] = -np.inf
        return array, affine

    _rewrite(path, spoil)
    return re.escape(
        f"{path}: 3 NaN and 1 infinite voxel(s); replace them (e.g. with 0) and save "
        "the file again"
    )


def _empty_roi(root):
    path = root / "masksTs" / "synth_002.nii.gz"
    _rewrite(path, lambda array, affine: (np.zeros_like(array), affine))
    return re.escape(
        f"{path}: the ROI mask is empty (no non-zero voxel); fix the mask or leave "
        "it out"
    )


def _truncated_gz(root):
    path = root / "imagesTr" / "synth_000_0000.nii.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return (
        re.escape(f"{path}: the voxel data is truncated or corrupt (")
        + r".*\)"
        + (re.escape("; copy or export the file again"))
    )


def _not_nifti(root):
    path = root / "masksTr" / "synth_001.nii.gz"
    path.write_bytes(b"this is not a NIfTI file" * 20)
    return (
        re.escape(f"{path}: not a readable NIfTI file (")
        + r".*"
        + re.escape("); re-export it")
    )


def _4d_label(root):
    path = root / "labelsTr" / "synth_000.nii.gz"
    _rewrite(path, lambda array, affine: (np.stack([array, array], axis=-1), affine))
    return re.escape(
        f"{path}: the label map is 4D with shape (12, 12, 13, 2); it must be a 3D "
        "volume"
    )


def _orphan_label(root):
    source = root / "labelsTr" / "synth_000.nii.gz"
    path = root / "labelsTr" / "ghost.nii.gz"
    shutil.copy(source, path)
    return re.escape(
        f"{path}: no images of case 'ghost' in {root / 'imagesTr'}; add them or "
        "remove the file"
    )


def _extra_channel(root):
    source = root / "imagesTr" / "synth_001_0001.nii.gz"
    path = root / "imagesTr" / "synth_001_0002.nii.gz"
    shutil.copy(source, path)
    return re.escape(
        f"{path}: channel 2 but dataset.json declares 2 channel(s), 0 to 1; remove "
        "the file or declare the channel"
    )


BREAKERS = {
    "missing channel": _missing_channel,
    "missing label": _missing_label,
    "undeclared label": _undeclared_label,
    "label off grid": _label_off_grid,
    "channel shapes differ": _channel_shape_mismatch,
    "2D image": _image_2d,
    "NaN voxels": _nan_voxels,
    "empty ROI": _empty_roi,
    "truncated gz": _truncated_gz,
    "not NIfTI": _not_nifti,
    "4D label map": _4d_label,
    "orphan label": _orphan_label,
    "extra channel": _extra_channel,
}


@pytest.mark.parametrize("breaker", BREAKERS.values(), ids=BREAKERS.keys())
def test_each_bad_input_is_one_problem_naming_its_file(tiny_dataset, breaker):
    expected = breaker(tiny_dataset)

    report = validate_dataset(open_dataset(tiny_dataset))

    assert len(report.problems) == 1, report.problems
    assert re.fullmatch(expected, report.problems[0]), report.problems[0]
    with pytest.raises(
        DatasetError, match=r"dataset\.json: 1 problem found; fix every"
    ):
        require_valid(report)


def test_every_problem_is_reported_at_once(tiny_dataset):
    # One file spoilt per kind, across all three cases, in one dataset.
    breakers = [
        _orphan_label,  # found while listing files, so reported first
        _truncated_gz,  # synth_000: channel 0
        _missing_channel,  # synth_000: channel 1
        _undeclared_label,  # synth_000: label map
        _nan_voxels,  # synth_001: channel 0
        _label_off_grid,  # synth_001: label map
        _not_nifti,  # synth_001: ROI mask
        _image_2d,  # synth_002: channel 0
        _empty_roi,  # synth_002: ROI mask
    ]
    expected = [breaker(tiny_dataset) for breaker in breakers]

    with pytest.raises(DatasetError, match="9 problems found") as error:
        require_valid(validate_dataset(open_dataset(tiny_dataset)))

    problems = error.value.problems
    assert len(problems) == len(expected), problems
    for pattern, problem in zip(expected, problems, strict=True):
        assert re.fullmatch(pattern, problem), problem


def test_load_cases_raises_with_the_problems_of_the_whole_dataset(tiny_dataset):
    first = _missing_channel(tiny_dataset)
    second = _nan_voxels(tiny_dataset)

    with pytest.raises(DatasetError, match="2 problems found") as error:
        load_cases(open_dataset(tiny_dataset), "training")

    problems = error.value.problems
    assert len(problems) == 2
    assert re.fullmatch(first, problems[0])
    assert re.fullmatch(second, problems[1])


def test_load_case_names_the_case_and_lists_its_problems(tiny_dataset):
    expected = _empty_roi(tiny_dataset)
    files = open_dataset(tiny_dataset).test[0]

    with pytest.raises(
        DatasetError, match=r"case 'synth_002' cannot be loaded: 1 problem\(s\)"
    ) as error:
        load_case(files)

    assert re.fullmatch(expected, error.value.problems[0])


def test_no_foreground_is_a_warning_not_a_problem(tiny_dataset):
    path = tiny_dataset / "labelsTr" / "synth_000.nii.gz"
    _rewrite(path, lambda array, affine: (np.zeros_like(array), affine))

    report = validate_dataset(open_dataset(tiny_dataset))

    assert report.ok
    assert report.warnings == (f"{path}: no foreground voxels (only background)",)
    assert report.training[0].label_counts == {0: 12 * 12 * 13}


def test_lesion_outside_the_roi_is_a_warning(tiny_dataset):
    path = tiny_dataset / "masksTr" / "synth_001.nii.gz"
    label = np.asanyarray(nib.load(tiny_dataset / "labelsTr/synth_001.nii.gz").dataobj)
    _rewrite(path, lambda array, affine: ((label == 0).astype(np.uint8), affine))

    report = validate_dataset(open_dataset(tiny_dataset))

    assert report.ok
    assert report.warnings == (
        f"{tiny_dataset / 'labelsTr/synth_001.nii.gz'}: {np.count_nonzero(label)} "
        f"foreground voxel(s) lie outside the ROI mask {path}; they are never sampled",
    )


def test_report_rows_describe_each_case(tiny_dataset):
    report = validate_dataset(open_dataset(tiny_dataset))
    label = nib.load(tiny_dataset / "labelsTr" / "synth_001.nii.gz")
    values, counts = np.unique(np.asanyarray(label.dataobj), return_counts=True)
    mask = nib.load(tiny_dataset / "masksTr" / "synth_001.nii.gz")

    row = report.training[1]

    assert row.case_id == "synth_001"
    assert row.num_channels == 2
    assert row.spatial_shape == label.shape
    assert row.spacing == pytest.approx(tuple(label.header.get_zooms()))
    assert row.orientation == "".join(nib.aff2axcodes(label.affine))
    assert row.label_counts == dict(zip(values.tolist(), counts.tolist(), strict=True))
    assert row.roi_voxels == np.count_nonzero(np.asanyarray(mask.dataobj))
    assert [r.case_id for r in report.test] == ["synth_002"]


def test_empty_images_folder_means_no_training_cases(tmp_path):
    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "dataset.json").write_text(
        json.dumps({"channel_names": {"0": "CT"}, "labels": {"background": 0, "x": 1}})
    )

    report = validate_dataset(open_dataset(tmp_path))

    assert report.problems == (
        f"{tmp_path / 'imagesTr'}: no training cases; expected files named "
        "<case>_0000.nii.gz (one per channel) or <case>.nii.gz",
    )


def test_unusable_description_lists_all_its_problems(tmp_path):
    (tmp_path / "dataset.json").write_text(
        json.dumps({"labels": {"tumour": [1, 2]}, "file_ending": ".png"})
    )

    with pytest.raises(
        DatasetError, match="the dataset description is unusable"
    ) as error:
        open_dataset(tmp_path)

    source = tmp_path / "dataset.json"
    assert error.value.problems == [
        f"{source}: needs channel_names (or modality), e.g. "
        '{"0": "T1", "1": "FLAIR"}',
        f"{source}: region-based labels (lists of values, as nnU-Net v2 allows) are "
        "not supported; declare one value per label",
        f"{source}: file_ending '.png' is not a volume file suffix; use e.g. '.nii.gz'",
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"dataset\.json: not valid JSON \(.* at line 1\); fix the file"),
        ("[1, 2]", r"dataset\.json: must hold a JSON object with channel_names"),
    ],
    ids=["syntax", "not an object"],
)
def test_malformed_dataset_json(tmp_path, content, message):
    (tmp_path / "dataset.json").write_text(content)

    with pytest.raises(DatasetError, match=message):
        open_dataset(tmp_path)


def test_missing_path_and_folder_without_description(tmp_path):
    with pytest.raises(
        DatasetError, match=r"no such dataset folder or \.csv case list"
    ):
        open_dataset(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match=r"no dataset\.json; a Decathlon dataset"):
        open_dataset(tmp_path)


def test_case_list_row_problems_are_all_reported(tiny_dataset):
    root = tiny_dataset.parent
    path = root / "cases.csv"
    path.write_text(
        "case_id,T1,FLAIR,label,split\n"
        "a,data/imagesTr/synth_000_0000.nii.gz,data/imagesTr/synth_000_0001.nii.gz,"
        "data/labelsTr/synth_000.nii.gz,\n"
        "a,data/imagesTr/synth_001_0000.nii.gz,data/imagesTr/synth_001_0001.nii.gz,"
        "data/labelsTr/synth_001.nii.gz,\n"
        ",x.nii.gz,y.nii.gz,,\n"
        "c,data/imagesTr/synth_001_0000.nii.gz,,,\n"
        "d,data/imagesTr/synth_001_0000.nii.gz,data/imagesTr/synth_001_0001.nii.gz,"
        ",training\n"
        "e,data/imagesTr/synth_001_0000.nii.gz,data/imagesTr/gone.nii.gz,,maybe\n"
    )
    (root / "dataset.json").write_text(json.dumps({"labels": {"background": 0}}))

    dataset = open_dataset(path)
    report = validate_dataset(dataset)

    assert [c.case_id for c in dataset.training] == ["a"]
    assert report.problems == (
        f"{path}, line 3: case id 'a' is also on line 2; case ids must be unique",
        f"{path}, line 4: empty case_id; give every row a case id",
        f"{path}, line 5: case 'c' has no file for channel(s) ['FLAIR']",
        f"{path}, line 6: case 'd' is a training case without a label; add its "
        "label file or make it a test case",
        f"{path}, line 7: split 'maybe' is neither 'training' nor 'test'",
        f"{root / 'data/labelsTr/synth_000.nii.gz'}: label values [1, 2] are not "
        "declared (declared: 0); declare them in the dataset's labels or fix the "
        "label map",
    )


def test_single_file_case_with_the_wrong_number_of_channels(tmp_path):
    path = save_volume(tmp_path / "imagesTr" / "a.nii.gz", np.zeros((4, 4, 4, 2)))
    save_volume(tmp_path / "labelsTr" / "a.nii.gz", np.zeros((4, 4, 4), np.uint8))
    save_volume(tmp_path / "imagesTs" / "b.nii.gz", np.zeros((4, 4, 4, 3)))
    (tmp_path / "dataset.json").write_text(
        json.dumps(
            {
                "channel_names": {"0": "T1", "1": "T2", "2": "PD"},
                "labels": {"background": 0, "x": 1},
            }
        )
    )

    report = validate_dataset(open_dataset(tmp_path))

    # The unlabelled test case b is fine; a holds two channels, not three.
    assert report.problems == (
        f"{path}: holds 2 channel(s) but the dataset declares 3 (T1, T2, PD); store "
        "one file per channel (<case>_0000, <case>_0001, ...) or one 4D file with "
        "all channels on its last axis",
    )
    assert report.test[0].label_counts is None
    assert report.test[0].num_channels == 3
