"""``seg3d evaluate`` through the typer app: outputs, and one line per bad input."""

import csv
import json

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from seg3d_cli.main import app

SHAPE = (14, 12, 8)
AFFINE = np.diag([0.9, 1.1, 2.5, 1.0])


def _save(path, array, affine=AFFINE):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, affine), path)


@pytest.fixture
def data(tmp_path):
    """Two cases with labels 1 and 2, a dataset.json, images."""
    labels = {"0": "background", "1": "edema", "2": "core"}
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": labels}))
    for index, name in enumerate(("brain_001", "brain_002")):
        truth = np.zeros(SHAPE, np.uint8)
        truth[3:10, 3:9, 2:6] = 1
        truth[5:8, 5:7, 3:5] = 2
        prediction = np.roll(truth, index, axis=0)
        _save(tmp_path / "labelsTs" / f"{name}.nii.gz", truth)
        _save(tmp_path / "pred" / f"{name}_0000_seg.nii.gz", prediction)
        image = np.random.default_rng(index).normal(size=SHAPE).astype(np.float32)
        _save(tmp_path / "imagesTs" / f"{name}_0000.nii.gz", image)
    return tmp_path


def _invoke(*args):
    return CliRunner().invoke(app, ["evaluate", *map(str, args)])


def test_evaluate_prints_the_table_and_writes_every_output(data):
    result = _invoke(
        data / "pred",
        data / "labelsTs",
        "--region",
        "tumour=1,2",
        "--json",
        data / "out" / "m.json",
        "--csv",
        data / "out" / "m.csv",
        "--qc",
        data / "qc",
        "--images",
        data / "imagesTs",
    )

    assert result.exit_code == 0, result.output
    assert "2 cases" in result.stdout
    for name in ("edema (1)", "core (2)", "tumour (1,2)"):
        assert name in result.stdout
    report = json.loads((data / "out" / "m.json").read_text())
    assert report["cases"][0]["metrics"]["edema"]["dice"] == 1.0
    assert report["summary"]["tumour"]["dice"]["n"] == 2
    rows = list(csv.DictReader((data / "out" / "m.csv").open()))
    assert len(rows) == 2 * 3
    pictures = sorted(path.name for path in (data / "qc").iterdir())
    assert pictures == ["brain_001.png", "brain_002.png", "summary.png"]


def test_single_files_and_labels_option(data):
    result = _invoke(
        data / "pred" / "brain_002_0000_seg.nii.gz",
        data / "labelsTs" / "brain_002.nii.gz",
        "--labels",
        "2=core",
    )

    assert result.exit_code == 0, result.output
    assert "1 case:" in result.stdout
    assert "core (2)" in result.stdout
    assert "edema" not in result.stdout


def _assert_one_line_error(result, pattern, data):
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1
    assert errors[0].startswith("error:")
    assert pattern in " ".join(result.stderr.split())
    assert not (data / "m.json").exists()


def test_mismatched_grids_fail_naming_both_files(data):
    truth = np.zeros(SHAPE, np.uint8)
    _save(data / "pred" / "brain_002_0000_seg.nii.gz", truth, np.diag([1, 1, 1, 1.0]))

    result = _invoke(data / "pred", data / "labelsTs", "--json", data / "m.json")

    _assert_one_line_error(result, "brain_002_0000_seg.nii.gz and", data)
    assert "--resample-pred" in result.stderr


def test_resample_pred_evaluates_on_the_truth_grid(data):
    truth = np.zeros(SHAPE, np.uint8)
    _save(data / "pred" / "brain_002_0000_seg.nii.gz", truth, np.diag([1, 1, 1, 1.0]))

    result = _invoke(data / "pred", data / "labelsTs", "--resample-pred")

    assert result.exit_code == 0, result.output
    assert "resampled onto the truth's grid" in result.stderr


def test_missing_predictions_are_listed(data):
    (data / "pred" / "brain_001_0000_seg.nii.gz").unlink()

    result = _invoke(data / "pred", data / "labelsTs", "--json", data / "m.json")

    _assert_one_line_error(result, "1 of 2 ground-truth cases have no prediction", data)
    assert "brain_001: no prediction" in result.stderr


def test_non_integer_label_maps_are_refused(data):
    probabilities = np.full(SHAPE, 0.5, np.float32)
    _save(data / "pred" / "brain_001_0000_seg.nii.gz", probabilities)

    result = _invoke(data / "pred", data / "labelsTs", "--json", data / "m.json")

    _assert_one_line_error(result, "not a label map: it holds non-integer", data)


def test_unreadable_files_are_named(data):
    (data / "labelsTs" / "brain_002.nii.gz").write_bytes(b"\x1f\x8b garbage")

    result = _invoke(data / "pred", data / "labelsTs", "--json", data / "m.json")

    _assert_one_line_error(result, "brain_002.nii.gz", data)


def test_existing_outputs_are_not_overwritten(data):
    (data / "m.csv").write_text("keep")

    refused = _invoke(
        data / "pred",
        data / "labelsTs",
        "--json",
        data / "m.json",
        "--csv",
        data / "m.csv",
    )
    replaced = _invoke(
        data / "pred", data / "labelsTs", "--csv", data / "m.csv", "--overwrite"
    )

    _assert_one_line_error(refused, "m.csv exists; pass --overwrite", data)
    assert replaced.exit_code == 0
    assert (data / "m.csv").read_text().startswith("case_id,")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--qc", "qc"], "--qc needs --images"),
        (["--labels", "1.5"], "'1.5' is not an integer"),
        (["--region", "core"], "expected NAME=VALUES"),
        (["--images", "imagesTs"], "--images is only used for pictures"),
    ],
    ids=["qc-without-images", "bad-label", "bad-region", "images-without-qc"],
)
def test_bad_options_get_one_line(data, options, message):
    result = _invoke(data / "pred", data / "labelsTs", *options)

    _assert_one_line_error(result, message, data)


def test_images_on_another_grid_are_refused_before_anything_is_written(data):
    image = np.zeros((5, 5, 5), np.float32)
    _save(data / "imagesTs" / "brain_002_0000.nii.gz", image)

    result = _invoke(
        data / "pred",
        data / "labelsTs",
        "--jobs",
        "2",
        "--json",
        data / "m.json",
        "--qc",
        data / "qc",
        "--images",
        data / "imagesTs",
    )

    _assert_one_line_error(
        result, "pass the images the ground truth was drawn on", data
    )
    assert not (data / "qc").exists()
