"""The run folder: config, checkpoints, metrics.csv, curves.png, summary.json.

A run folder is self-contained: copying it elsewhere is enough to predict
with its model or to resume its training. Runs live side by side in a runs
folder whose ``latest`` file names the newest one, so ``seg3d predict`` finds a
model without flags.
"""

from __future__ import annotations

import csv
import datetime
import json
import logging
import math
from pathlib import Path
from typing import Any

import tomli_w

from seg3d.errors import ModelFileError, Seg3dError
from seg3d.io.atomic import atomic_path

logger = logging.getLogger(__name__)

DEFAULT_RUNS_ROOT = Path("runs")
LATEST_POINTER = "latest"
CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.csv"
CURVES_FILE = "curves.png"
SUMMARY_FILE = "summary.json"
BEST_CHECKPOINT = "best.pt"
LAST_CHECKPOINT = "last.pt"


def new_run_folder(out: Path | None, runs_root: Path = DEFAULT_RUNS_ROOT) -> Path:
    """Create an empty run folder (``runs/<date-time>`` unless ``out`` is given)."""
    if out is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = runs_root / stamp
        suffix = 1
        while out.exists():
            suffix += 1
            out = runs_root / f"{stamp}-{suffix}"
    if out.exists() and any(out.iterdir()):
        raise Seg3dError(
            f"{out} already holds files; choose a new --out, or continue that run "
            f"with --resume {out}"
        )
    out.mkdir(parents=True, exist_ok=True)
    return out


def point_latest_to(run_dir: Path) -> None:
    """Record ``run_dir`` as the newest run in its parent's ``latest`` file.

    A plain file rather than a symbolic link, so it survives copies, archives
    and file systems (or Docker volumes) without links.
    """
    with atomic_path(run_dir.parent / LATEST_POINTER, overwrite=True) as temporary:
        temporary.write_text(run_dir.name + "\n")


def find_latest_run(runs_root: Path = DEFAULT_RUNS_ROOT) -> Path:
    """The run named by ``runs_root/latest``."""
    pointer = runs_root / LATEST_POINTER
    if not pointer.is_file():
        raise ModelFileError(
            f"no model given and no {pointer} found; train one with `seg3d train` "
            "or pass --model RUN_DIR"
        )
    run_dir = runs_root / pointer.read_text().strip()
    if not run_dir.is_dir():
        raise ModelFileError(
            f"{pointer} names {run_dir}, which does not exist; pass --model RUN_DIR"
        )
    return run_dir


def model_file_in(path: Path) -> Path:
    """The checkpoint to predict with: a file as given, or a run's best one."""
    if path.is_dir():
        for name in (BEST_CHECKPOINT, LAST_CHECKPOINT):
            if (path / name).is_file():
                return path / name
        raise ModelFileError(
            f"{path} holds no {BEST_CHECKPOINT} or {LAST_CHECKPOINT}; "
            "is it a seg3d run folder?"
        )
    return path


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    with atomic_path(run_dir / CONFIG_FILE, overwrite=True) as temporary:
        temporary.write_text(tomli_w.dumps(config))


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    with atomic_path(run_dir / SUMMARY_FILE, overwrite=True) as temporary:
        temporary.write_text(json.dumps(_json_safe(summary), indent=2) + "\n")


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


class MetricsLog:
    """Rows of per-epoch numbers in ``metrics.csv``, readable by pandas or R.

    Columns appear as they are first reported (validation columns only once a
    validation has run); the file is rewritten whole each time, so it is never
    left with a torn last line.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / METRICS_FILE
        self.rows: list[dict[str, Any]] = []
        if self.path.is_file():
            with self.path.open(newline="") as stream:
                self.rows = [_parse_row(row) for row in csv.DictReader(stream)]

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(dict(row))
        columns: list[str] = []
        for existing in self.rows:
            columns += [key for key in existing if key not in columns]
        with (
            atomic_path(self.path, overwrite=True) as temporary,
            temporary.open("w", newline="") as stream,
        ):
            writer = csv.DictWriter(stream, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(self.rows)

    def truncate_after(self, epoch: int) -> None:
        """Forget rows past ``epoch`` (a resumed run redoes them)."""
        self.rows = [row for row in self.rows if int(row["epoch"]) <= epoch]


def _parse_row(row: dict[str, str]) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for key, text in row.items():
        if text == "":
            continue
        try:
            parsed[key] = int(text) if text.lstrip("-").isdigit() else float(text)
        except ValueError:
            parsed[key] = text
    return parsed


def draw_curves(run_dir: Path, rows: list[dict[str, Any]]) -> Path:
    """Plot training loss and validation Dice per class against epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (loss_axes, dice_axes) = plt.subplots(1, 2, figsize=(11, 4.2))
    epochs = [row["epoch"] for row in rows]
    loss_axes.plot(epochs, [row.get("train_loss") for row in rows], label="training")
    loss_axes.set(xlabel="epoch", ylabel="loss", title="Training loss")
    loss_axes.grid(alpha=0.3)

    dice_columns = sorted({k for row in rows for k in row if k.startswith("val_dice_")})
    for column in dice_columns:
        points = [(row["epoch"], row[column]) for row in rows if column in row]
        if points:
            x, y = zip(*points, strict=True)
            dice_axes.plot(x, y, marker="o", label=column.removeprefix("val_dice_"))
    dice_axes.set(
        xlabel="epoch", ylabel="Dice", title="Validation Dice per class", ylim=(0, 1)
    )
    dice_axes.grid(alpha=0.3)
    if dice_columns:
        dice_axes.legend(loc="lower right")
    figure.tight_layout()
    path = run_dir / CURVES_FILE
    with atomic_path(path, overwrite=True) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    plt.close(figure)
    return path
