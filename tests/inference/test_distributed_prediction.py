"""``seg3d predict`` shared out between two processes by torchrun (gloo, loopback)."""

import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from prediction_builders import write_model, write_scan
from typer.testing import CliRunner

from seg3d_cli.main import app

runner = CliRunner()
LOOPBACK = {"MASTER_ADDR": "127.0.0.1", "GLOO_SOCKET_IFNAME": "lo"}


@pytest.mark.slow
def test_two_processes_predict_every_case_once_as_one_process(tmp_path, monkeypatch):
    """Case i goes to rank i % 2; each writes its own cases (a second write of
    one output would fail: --overwrite is not given); rank 0 prints them all."""
    write_model(tmp_path / "model.pt")
    for n, case_id in enumerate(("case_a", "case_b", "case_c")):
        write_scan(tmp_path / "imagesTs", case_id, seed=n, shape=(14, 12, 10))
    common = ["imagesTs", "--model", "model.pt", "--device", "cpu"]
    common += ["--save-probabilities"]
    monkeypatch.chdir(tmp_path)  # relative paths keep the table's rows short
    single = runner.invoke(app, ["predict", *common, "--out", "single"])
    assert single.exit_code == 0, single.output

    result = subprocess.run(
        [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc-per-node=2", "-m", "seg3d", "predict", *common, "--out", "multi",
        ],
        cwd=tmp_path, env={**os.environ, **LOOPBACK}, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    table = [line for line in result.stdout.splitlines() if "_seg.nii.gz" in line]
    assert [line.split()[1] for line in table] == ["case_a", "case_b", "case_c"]
    names = sorted(p.name for p in (tmp_path / "single").iterdir())
    assert sorted(p.name for p in (tmp_path / "multi").iterdir()) == names
    for name in names:
        if name.endswith(".nii.gz"):
            expected = np.asarray(nib.load(tmp_path / "single" / name).dataobj)
            written = np.asarray(nib.load(tmp_path / "multi" / name).dataobj)
            np.testing.assert_array_equal(written, expected)
