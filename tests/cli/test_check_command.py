"""``seg3d check`` prints a table of the cases, then every problem, and exits 1."""

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from seg3d.data.synthetic import write_synthetic_dataset
from seg3d_cli.main import app

runner = CliRunner()
WIDE = {"COLUMNS": "160"}


@pytest.fixture
def dataset(tmp_path):
    return write_synthetic_dataset(
        tmp_path / "data", 2, 1, seed=2, shape_range=(12, 13)
    )


def _line_of(output: str, case_id: str) -> list[str]:
    return next(line.split() for line in output.splitlines() if case_id in line)


def test_valid_dataset_prints_its_cases_and_exits_0(dataset):
    result = runner.invoke(app, ["check", str(dataset)], env=WIDE)

    assert result.exit_code == 0, result.output
    assert "channels T1, FLAIR; labels 0 background, 1 lesion, 2 edema" in result.stdout
    assert "no problems found in 3 case(s)" in result.stdout
    label = nib.load(dataset / "labelsTs" / "synth_002.nii.gz")
    counts = np.bincount(np.asanyarray(label.dataobj).ravel(), minlength=3)
    mask = np.asanyarray(nib.load(dataset / "masksTs" / "synth_002.nii.gz").dataobj)
    shape = "x".join(map(str, label.shape))
    spacing = [f"{s:.3g}" for s in label.header.get_zooms()]
    orientation = "".join(nib.aff2axcodes(label.affine))
    assert _line_of(result.stdout, "synth_002") == [
        "synth_002", "test", "2", shape, *spacing, orientation,
        str(np.count_nonzero(mask)), str(counts[1]), str(counts[2]),
    ]  # fmt: skip


def test_problems_go_to_stderr_after_the_table_and_exit_1(dataset):
    missing = dataset / "imagesTr" / "synth_001_0001.nii.gz"
    missing.unlink()
    empty_mask = dataset / "masksTs" / "synth_002.nii.gz"
    image = nib.load(empty_mask)
    nib.save(nib.Nifti1Image(np.zeros(image.shape, np.uint8), image.affine), empty_mask)

    result = runner.invoke(app, ["check", str(dataset)], env=WIDE)

    assert result.exit_code == 1
    assert _line_of(result.stdout, "synth_001")[-1] == "1"
    assert _line_of(result.stdout, "synth_000")[-1] != "1"
    assert "no problems found" not in result.stdout
    assert f"error: {dataset / 'dataset.json'}: 2 problems found" in result.stderr
    assert f"  - {missing}: missing channel 1 (FLAIR) of case 'synth_001'" in (
        result.stderr
    )
    assert f"  - {empty_mask}: the ROI mask is empty" in result.stderr
    assert "Traceback" not in result.output


def test_labels_option_replaces_the_declared_labels(dataset):
    result = runner.invoke(
        app, ["check", str(dataset), "--labels", "background=0,lesion=1"], env=WIDE
    )

    assert result.exit_code == 1
    assert "label values [2] are not declared (declared: 0, 1)" in result.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["/no/such/folder"], "no such dataset folder or .csv case list"),
        (["--labels", "lesion"], "labels must look like 'background=0,lesion=1'"),
    ],
    ids=["missing path", "bad labels"],
)
def test_user_errors_are_one_line(dataset, arguments, message):
    if arguments[0].startswith("--"):
        arguments = [str(dataset), *arguments]

    result = runner.invoke(app, ["check", *arguments], env=WIDE)

    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.output
