"""``seg3d evaluate``: compare predicted label maps with ground truth."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from seg3d_cli.errors import user_errors

if TYPE_CHECKING:
    from rich.table import Table

    from seg3d.metrics import Evaluation

logger = logging.getLogger(__name__)

# Metrics shown on the terminal (all of them go to JSON and CSV).
_TABLE_COLUMNS = (
    ("dice", "Dice", 3),
    ("hd95_mm", "HD95 mm", 2),
    ("assd_mm", "ASSD mm", 2),
    ("sensitivity", "Sensitivity", 3),
    ("precision", "Precision", 3),
    ("relative_volume_difference", "RVD", 3),
)


@user_errors
def evaluate(
    pred: Annotated[
        Path,
        typer.Argument(
            metavar="PRED",
            help="Predicted label map, or a folder of them matched to GT by case "
            "id (<case>_seg and channel suffixes such as _0000 are understood).",
        ),
    ],
    gt: Annotated[
        Path,
        typer.Argument(
            metavar="GT", help="Ground-truth label map, or a folder of them."
        ),
    ],
    labels: Annotated[
        list[str] | None,
        typer.Option(
            "--labels",
            metavar="VALUES",
            help="Label values to evaluate, comma-separated, each VALUE or "
            "VALUE=NAME, e.g. 1=edema,2=necrosis. Default: every value in GT, "
            "named from the dataset.json beside GT (or one folder up).",
        ),
    ] = None,
    region: Annotated[
        list[str] | None,
        typer.Option(
            "--region",
            metavar="NAME=VALUES",
            help="Also evaluate the union of several labels, NAME=1,2,3 "
            "(e.g. 'whole tumour=1,2,3'); repeat for several regions.",
        ),
    ] = None,
    json_path: Annotated[
        Path | None,
        typer.Option(
            "--json",
            metavar="FILE",
            help="Write per-case metrics, summary and conventions here.",
        ),
    ] = None,
    csv_path: Annotated[
        Path | None,
        typer.Option(
            "--csv", metavar="FILE", help="Write one row per case and structure here."
        ),
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs", min=1, metavar="N", help="Cases evaluated in parallel processes."
        ),
    ] = 1,
    resample_pred: Annotated[
        bool,
        typer.Option(
            "--resample-pred",
            help="Resample predictions not on GT's grid onto it (nearest "
            "neighbour, with a warning) instead of failing.",
        ),
    ] = False,
    qc: Annotated[
        Path | None,
        typer.Option(
            "--qc",
            metavar="DIR",
            help="Folder for pictures: one PNG per case with truth and prediction "
            "contours, and summary.png. Needs --images.",
        ),
    ] = None,
    images: Annotated[
        list[Path] | None,
        typer.Option(
            "--images",
            metavar="IMAGES",
            help="Image folder or files to draw on, matched by case id (first "
            "channel). Repeatable.",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace existing output files.")
    ] = False,
) -> None:
    """Compute Dice, IoU, sensitivity, precision, volumes, HD95 and ASSD of PRED
    against GT, per case and per label (and region), with distances in mm from
    the voxel spacing. Prints a summary table; conventions: docs/metrics.md.
    """
    from seg3d.errors import ConfigError
    from seg3d.metrics import parse_labels, parse_region, plan_evaluation

    if qc is not None and not images:
        raise ConfigError("--qc needs --images: the scans to draw the contours on")
    if images and qc is None:
        raise ConfigError("--images is only used for pictures; add --qc DIR")
    plan = plan_evaluation(
        pred,
        gt,
        labels=parse_labels(labels or []),
        regions=[parse_region(option) for option in region or []],
        images=images or [],
    )
    _check_outputs(plan.case_ids, json_path, csv_path, qc, overwrite)
    evaluation = _run(plan, jobs, resample_pred, pictures=qc is not None)
    _write_outputs(evaluation, json_path, csv_path, qc, overwrite)

    _stdout().print(_summary_table(evaluation))


def _stdout():
    """stdout's console; files and pipes get one line per table row."""
    from rich.console import Console

    from seg3d_cli import console

    if console.stdout.is_terminal:
        return console.stdout
    return Console(file=console.stdout.file, width=132)


def _check_outputs(
    case_ids: list[str],
    json_path: Path | None,
    csv_path: Path | None,
    qc: Path | None,
    overwrite: bool,
) -> None:
    """Refuse before any work, so that a bad run writes nothing."""
    from seg3d.errors import ConfigError
    from seg3d.io import check_writable
    from seg3d.metrics.pictures import picture_paths

    outputs = [path for path in (json_path, csv_path) if path is not None]
    if qc is not None:
        outputs += picture_paths(case_ids, qc)
    if len({path.resolve() for path in outputs}) < len(outputs):
        raise ConfigError("--json, --csv and --qc must name different files")
    for path in outputs:
        check_writable(path, overwrite)


def _run(plan, jobs: int, resample_pred: bool, pictures: bool) -> Evaluation:
    from seg3d.metrics import run_evaluation
    from seg3d_cli.console import progress_bar

    with progress_bar() as progress:
        task = progress.add_task("evaluating", total=len(plan.pairs), status="")

        def advance(case) -> None:
            progress.update(task, advance=1, status=case.case_id)

        return run_evaluation(
            plan,
            jobs=jobs,
            resample_prediction=resample_pred,
            pictures=pictures,
            on_case_done=advance,
        )


def _write_outputs(
    evaluation: Evaluation,
    json_path: Path | None,
    csv_path: Path | None,
    qc: Path | None,
    overwrite: bool,
) -> None:
    from seg3d.metrics import write_csv, write_json
    from seg3d.metrics.pictures import write_pictures

    if json_path is not None:
        logger.info("wrote %s", write_json(evaluation, json_path, overwrite))
    if csv_path is not None:
        logger.info("wrote %s", write_csv(evaluation, csv_path, overwrite))
    if qc is not None:
        written = write_pictures(evaluation, qc, overwrite)
        logger.info("wrote %d pictures to %s", len(written), qc)


def _summary_table(evaluation: Evaluation) -> Table:
    from rich.table import Table

    from seg3d.metrics import summarize

    cases = len(evaluation.cases)
    table = Table(
        title=f"{cases} case{'s' * (cases != 1)}: mean ± standard deviation",
        caption="(n=…): cases where the value is defined (undefined where one "
        "mask is empty, left out); conventions in docs/metrics.md",
        caption_justify="left",
    )
    table.add_column("structure (labels)")
    for _, heading, _ in _TABLE_COLUMNS:
        table.add_column(heading, justify="right")
    summary = summarize(evaluation)
    for structure in evaluation.structures:
        statistics = summary[structure.name]
        cells = [
            _cell(statistics[metric], digits, cases)
            for metric, _, digits in _TABLE_COLUMNS
        ]
        values = ",".join(str(value) for value in structure.label_values)
        table.add_row(f"{structure.name} [dim]({values})[/]", *cells)
    return table


def _cell(statistics, digits: int, cases: int) -> str:
    if statistics.n == 0:
        return "–"
    text = f"{statistics.mean:.{digits}f}"
    if statistics.n > 1:
        text += f" ± {statistics.std:.{digits}f}"
    if statistics.n < cases:
        text += f" (n={statistics.n})"
    return text
