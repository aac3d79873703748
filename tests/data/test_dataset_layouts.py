"""Both dataset layouts describe the same cases; loading reads each file once."""

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
from dataset_builders import save_volume

import seg3d.data.loading
from seg3d.data.case import CaseFiles
from seg3d.data.dataset import (
    load_case,
    load_cases,
    open_dataset,
    parse_label_mapping,
    validate_dataset,
)
from seg3d.errors import ConfigError, DatasetError

CSV_HEADER = "case_id,T1,FLAIR,label,mask,split\n"


def _csv_row(case_id, subset="Tr", label=True, split=""):
    label_path = f"data/labels{subset}/{case_id}.nii.gz" if label else ""
    return (
        f"{case_id},data/images{subset}/{case_id}_0000.nii.gz,"
        f"data/images{subset}/{case_id}_0001.nii.gz,{label_path},"
        f"data/masks{subset}/{case_id}.nii.gz,{split}\n"
    )


def _write_csv(tmp_path, rows, labels=True):
    path = tmp_path / "cases.csv"
    path.write_text(CSV_HEADER + "".join(rows))
    if labels:
        (tmp_path / "dataset.json").write_text(
            json.dumps({"labels": {"0": "background", "1": "lesion", "2": "edema"}})
        )
    return path


def test_decathlon_folder_lists_channels_labels_and_cases(tiny_dataset):
    dataset = open_dataset(tiny_dataset)

    assert dataset.layout == "decathlon"
    assert dataset.channel_names == ("T1", "FLAIR")
    assert dataset.labels == {"background": 0, "lesion": 1, "edema": 2}
    assert [c.case_id for c in dataset.training] == ["synth_000", "synth_001"]
    assert [c.case_id for c in dataset.test] == ["synth_002"]
    assert dataset.training[1] == CaseFiles(
        "synth_001",
        (
            tiny_dataset / "imagesTr" / "synth_001_0000.nii.gz",
            tiny_dataset / "imagesTr" / "synth_001_0001.nii.gz",
        ),
        tiny_dataset / "labelsTr" / "synth_001.nii.gz",
        tiny_dataset / "masksTr" / "synth_001.nii.gz",
    )
    assert dataset.test[0].label == tiny_dataset / "labelsTs" / "synth_002.nii.gz"
    assert dataset.problems == ()
    assert open_dataset(tiny_dataset / "dataset.json") == dataset


def test_loaded_case_matches_what_nibabel_reads(tiny_dataset):
    files = open_dataset(tiny_dataset).training[0]

    case = load_case(files, ("T1", "FLAIR"), (0, 1, 2))

    assert case.image.dtype == np.float32
    assert case.image.shape == (2, *nib.load(files.channels[0]).shape)
    for channel, path in enumerate(files.channels):
        np.testing.assert_array_equal(case.image[channel], nib.load(path).get_fdata())
    label = nib.load(files.label)
    np.testing.assert_array_equal(case.label_map, np.asanyarray(label.dataobj))
    assert case.label_map.dtype == np.uint8
    mask = np.asanyarray(nib.load(files.roi_mask).dataobj)
    np.testing.assert_array_equal(case.roi_mask, mask != 0)
    np.testing.assert_allclose(case.affine, label.affine)
    assert case.reference.orientation == "".join(nib.aff2axcodes(label.affine))


def test_load_case_reads_every_file_exactly_once(tiny_dataset, monkeypatch):
    reads = []
    real_read = seg3d.data.loading.read_volume

    def counting_read(path):
        reads.append(path)
        return real_read(path)

    monkeypatch.setattr(seg3d.data.loading, "read_volume", counting_read)
    dataset = open_dataset(tiny_dataset)

    cases = load_cases(dataset, "training")

    assert [case.case_id for case in cases] == ["synth_000", "synth_001"]
    expected = [
        path
        for files in dataset.training
        for path in (*files.channels, files.label, files.roi_mask)
    ]
    assert reads == expected


def test_msd_dataset_with_value_to_name_labels_and_4d_files(tmp_path):
    # The original Decathlon form: "modality", labels value -> name, one 4D
    # file per case with the channels on the last axis.
    rng = np.random.default_rng(0)
    image = rng.normal(size=(6, 5, 4, 3)).astype(np.float32)
    label = (rng.random((6, 5, 4)) > 0.7).astype(np.uint8)
    affine = np.diag([-1.2, -1.2, 3.0, 1.0])
    save_volume(tmp_path / "imagesTr" / "BRATS_001.nii.gz", image, affine)
    save_volume(tmp_path / "labelsTr" / "BRATS_001.nii.gz", label, affine)
    save_volume(tmp_path / "imagesTr" / "._BRATS_001.nii.gz", label)  # macOS debris
    (tmp_path / "dataset.json").write_text(
        json.dumps(
            {
                "modality": {"0": "FLAIR", "1": "T1w", "2": "T2w"},
                "labels": {"0": "background", "1": "tumour"},
                "training": [{"image": "./imagesTr/BRATS_001.nii.gz"}],
            }
        )
    )

    dataset = open_dataset(tmp_path)
    case = load_cases(dataset)[0]

    assert dataset.channel_names == ("FLAIR", "T1w", "T2w")
    assert dataset.labels == {"background": 0, "tumour": 1}
    assert dataset.training[0].channels == (tmp_path / "imagesTr/BRATS_001.nii.gz",)
    np.testing.assert_array_equal(case.image, np.moveaxis(image, -1, 0))
    np.testing.assert_array_equal(case.label_map, label)
    assert case.reference.array.ndim == 3
    assert case.spacing == pytest.approx((1.2, 1.2, 3.0))


def test_labels_argument_replaces_those_of_dataset_json(tiny_dataset):
    dataset = open_dataset(tiny_dataset, labels={"background": 0, "lesion": 1})

    report = validate_dataset(dataset)

    assert dataset.labels == {"background": 0, "lesion": 1}
    assert len(report.problems) == 3
    assert "label values [2] are not declared (declared: 0, 1)" in report.problems[0]


def test_case_list_describes_the_same_cases_as_the_folder(tiny_dataset):
    root = tiny_dataset.parent
    path = _write_csv(
        root,
        [_csv_row("synth_000"), _csv_row("synth_001"), _csv_row("synth_002", "Ts")],
    )

    from_csv = open_dataset(path)
    from_folder = open_dataset(tiny_dataset)

    assert from_csv.layout == "csv"
    assert from_csv.root == root
    assert from_csv.channel_names == ("T1", "FLAIR")
    assert from_csv.labels == from_folder.labels
    # synth_002 has a label, so without a split column it would be training.
    assert [c.case_id for c in from_csv.training] == [
        "synth_000",
        "synth_001",
        "synth_002",
    ]
    assert from_csv.training[:2] == from_folder.training
    assert validate_dataset(from_csv).problems == ()


def test_case_list_split_column_and_unlabelled_rows(tiny_dataset):
    root = tiny_dataset.parent
    path = _write_csv(
        root,
        [
            _csv_row("synth_000"),
            _csv_row("synth_001", split="test"),
            _csv_row("synth_002", "Ts", label=False),
        ],
    )

    dataset = open_dataset(path)

    assert [c.case_id for c in dataset.training] == ["synth_000"]
    assert [(c.case_id, c.label is not None) for c in dataset.test] == [
        ("synth_001", True),
        ("synth_002", False),
    ]


def test_case_list_labels_from_the_argument(tiny_dataset):
    root = tiny_dataset.parent
    path = _write_csv(root, [_csv_row("synth_000")], labels=False)

    with pytest.raises(DatasetError, match="the case list is unusable") as error:
        open_dataset(path)
    assert error.value.problems == [
        f"{path}: the label values are not declared; put a dataset.json with "
        '"labels": {"background": 0, "lesion": 1} beside the CSV or pass labels '
        "(--labels background=0,lesion=1)"
    ]
    dataset = open_dataset(path, parse_label_mapping("background=0, lesion=1,edema=2"))
    assert dataset.labels == {"background": 0, "lesion": 1, "edema": 2}


def test_case_list_with_one_column_of_4d_files(tmp_path):
    rng = np.random.default_rng(1)
    image = rng.normal(size=(5, 5, 5, 2)).astype(np.float32)
    save_volume(tmp_path / "scans" / "a.nii.gz", image)
    save_volume(tmp_path / "scans" / "a_seg.nii.gz", np.ones((5, 5, 5), np.uint8))
    (tmp_path / "list.csv").write_text(
        "case_id,image,label\na,scans/a.nii.gz,scans/a_seg.nii.gz\n"
    )
    (tmp_path / "dataset.json").write_text(
        json.dumps(
            {
                "channel_names": {"0": "T1", "1": "T2"},
                "labels": {"background": 0, "x": 1},
            }
        )
    )

    dataset = open_dataset(tmp_path / "list.csv")
    case = load_case(dataset.training[0], dataset.channel_names, dataset.label_values)

    assert dataset.channel_names == ("T1", "T2")
    np.testing.assert_array_equal(case.image[1], image[..., 1])


def test_absolute_paths_in_a_case_list(tiny_dataset, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    row = _csv_row("synth_000").replace("data/", f"{tiny_dataset}/")
    path = _write_csv(elsewhere, [row])

    assert open_dataset(path).training == open_dataset(tiny_dataset).training[:1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("background=0,lesion=1", {"background": 0, "lesion": 1}),
        (" background = 0 , tumour core=3,", {"background": 0, "tumour core": 3}),
    ],
    ids=["plain", "spaces"],
)
def test_parse_label_mapping(text, expected):
    assert parse_label_mapping(text) == expected


@pytest.mark.parametrize("text", ["lesion", "lesion=one", "=1", ""], ids=repr)
def test_parse_label_mapping_rejects_bad_text(text):
    with pytest.raises(
        ConfigError, match="labels must look like 'background=0,lesion=1'"
    ):
        parse_label_mapping(text)


def test_dataset_without_masks_is_fine(tiny_dataset):
    # A dataset without masks is fine: masks are optional.
    for folder in ("masksTr", "masksTs"):
        shutil.rmtree(tiny_dataset / folder)

    dataset = open_dataset(tiny_dataset)

    assert all(case.roi_mask is None for case in dataset.cases)
    assert load_cases(dataset)[0].roi_mask is None
