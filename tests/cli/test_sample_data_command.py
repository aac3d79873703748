"""``seg3d sample-data`` writes a dataset that ``seg3d check`` accepts."""

import json

import pytest
from typer.testing import CliRunner

from seg3d_cli.main import app

runner = CliRunner()


def test_writes_the_requested_cases_and_prints_the_folder(tmp_path):
    out = tmp_path / "synthetic"

    result = runner.invoke(
        app,
        [
            "sample-data",
            str(out),
            "--training",
            "2",
            "--test",
            "1",
            "--size",
            "12",
            "14",
        ],
    )

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    description = json.loads((out / "dataset.json").read_text())
    assert description["numTraining"] == 2
    assert sorted(p.name for p in (out / "labelsTs").iterdir()) == ["synth_002.nii.gz"]
    assert len(list((out / "imagesTr").iterdir())) == 4


def test_seed_changes_the_data_and_overwrite_is_required(tmp_path):
    out = tmp_path / "synthetic"
    options = ["--training", "1", "--test", "0", "--size", "12", "12"]
    runner.invoke(app, ["sample-data", str(out), *options])
    first = (out / "imagesTr" / "synth_000_0000.nii.gz").read_bytes()

    refused = runner.invoke(app, ["sample-data", str(out), *options, "--seed", "5"])
    replaced = runner.invoke(
        app, ["sample-data", str(out), *options, "--seed", "5", "--overwrite"]
    )

    assert refused.exit_code == 1
    assert "already holds a dataset" in refused.stderr
    assert "pass --overwrite to replace it" in refused.stderr
    assert "Traceback" not in refused.output
    assert replaced.exit_code == 0, replaced.output
    assert (out / "imagesTr" / "synth_000_0000.nii.gz").read_bytes() != first


@pytest.mark.parametrize(
    "options",
    [["--training", "0"], ["--size", "4", "12"], ["--size", "20", "12"]],
    ids=["no training", "too small", "min above max"],
)
def test_bad_options_are_usage_errors_and_write_nothing(tmp_path, options):
    out = tmp_path / "synthetic"

    result = runner.invoke(app, ["sample-data", str(out), *options])

    assert result.exit_code == 2
    assert not out.exists()
