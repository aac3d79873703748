"""Run folders: metrics rows, curves, the latest pointer."""

import csv

import pytest

from seg3d.errors import ModelFileError, Seg3dError
from seg3d.training.run_folder import (
    MetricsLog,
    draw_curves,
    find_latest_run,
    model_file_in,
    new_run_folder,
    point_latest_to,
)


def test_latest_pointer_finds_newest_run(tmp_path):
    first = new_run_folder(None, tmp_path)
    (first / "best.pt").write_bytes(b"x")
    point_latest_to(first)
    second = new_run_folder(tmp_path / "second")
    point_latest_to(second)

    assert find_latest_run(tmp_path) == second
    (second / "last.pt").write_bytes(b"x")
    assert model_file_in(second) == second / "last.pt"
    assert model_file_in(first) == first / "best.pt"


def test_no_runs_yet(tmp_path):
    with pytest.raises(ModelFileError, match=r"no model given and no .*latest found"):
        find_latest_run(tmp_path)


def test_existing_run_is_not_reused(tmp_path):
    run = new_run_folder(tmp_path / "run")
    (run / "config.toml").write_text("")
    with pytest.raises(Seg3dError, match=r"already holds files; .* --resume"):
        new_run_folder(run)


def test_metrics_rows_gain_columns_and_survive_reload(tmp_path):
    log = MetricsLog(tmp_path)
    log.append({"epoch": 1, "train_loss": 0.9})
    log.append({"epoch": 2, "train_loss": 0.7, "val_dice_lesion": 0.5})

    with (tmp_path / "metrics.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert rows[0] == {"epoch": "1", "train_loss": "0.9", "val_dice_lesion": ""}
    reloaded = MetricsLog(tmp_path)
    assert reloaded.rows[1] == {"epoch": 2, "train_loss": 0.7, "val_dice_lesion": 0.5}
    reloaded.truncate_after(1)
    assert len(reloaded.rows) == 1


def test_curves_png_is_written(tmp_path):
    rows = [
        {"epoch": 1, "train_loss": 0.9},
        {"epoch": 2, "train_loss": 0.6, "val_dice_lesion": 0.4},
    ]
    path = draw_curves(tmp_path, rows)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
