"""``seg3d check``: validate a dataset and show what it holds."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from seg3d_cli import console
from seg3d_cli.errors import user_errors

if TYPE_CHECKING:
    from rich.table import Table

    from seg3d.data.dataset import CaseSummary, Dataset, ValidationReport


@user_errors
def check(
    data: Annotated[
        Path,
        typer.Argument(
            help="Dataset folder (Decathlon layout, with dataset.json) or "
            "case-list CSV."
        ),
    ],
    labels: Annotated[
        str | None,
        typer.Option(
            "--labels",
            help="Label names and values, e.g. 'background=0,lesion=1'; "
            "replaces the labels of dataset.json.",
        ),
    ] = None,
) -> None:
    """Check every file of DATA and report all problems at once.

    Prints a table of the cases (channels, shape, spacing, orientation, label
    voxel counts), then any problems; exits with 1 if there are problems.
    """
    from seg3d.data.dataset import (
        open_dataset,
        parse_label_mapping,
        require_valid,
        validate_dataset,
    )

    label_mapping = parse_label_mapping(labels) if labels is not None else None
    dataset = open_dataset(data, label_mapping)
    with console.progress_bar(transient=True) as progress:
        task = progress.add_task("checking cases", total=len(dataset.cases), status="")
        report = validate_dataset(
            dataset,
            progress=lambda case_id: progress.update(task, advance=1, status=case_id),
        )

    console.stdout.print(_title(dataset), highlight=False, soft_wrap=True)
    console.stdout.print(_case_table(report))
    for warning in report.warnings:
        console.stderr.print(f"[yellow]warning:[/] {warning}", highlight=False)
    require_valid(report)
    console.stdout.print(
        f"no problems found in {len(dataset.cases)} case(s)", highlight=False
    )


def _case_table(report: ValidationReport) -> Table:
    from rich import box
    from rich.table import Table

    dataset = report.dataset
    foreground = [(n, v) for n, v in dataset.labels.items() if v != 0]
    table = Table(
        box=box.SIMPLE_HEAD,
        padding=0,
        show_edge=False,
        highlight=False,
    )
    for name in ("case", "set", "ch", "shape", "spacing mm", "orient"):
        table.add_column(name, no_wrap=True)
    for name in ("ROI", *(name for name, _ in foreground), "problems"):
        table.add_column(name, justify="right", no_wrap=True)
    for subset, summaries in (("train", report.training), ("test", report.test)):
        for summary in summaries:
            cells = _row(summary, subset, [v for _, v in foreground])
            table.add_row(*cells, style=_style(summary))
    return table


def _title(dataset: Dataset) -> str:
    labels = ", ".join(f"{v} {n}" for n, v in dataset.labels.items())
    return (
        f"{dataset.source} ({dataset.layout}): channels "
        f"{', '.join(dataset.channel_names)}; labels {labels}"
    )


def _row(summary: CaseSummary, subset: str, foreground: list[int]) -> list[str]:
    shape = "x".join(map(str, summary.spatial_shape)) if summary.spatial_shape else "-"
    spacing = " ".join(f"{s:.3g}" for s in summary.spacing) if summary.spacing else "-"
    counts = summary.label_counts
    label_cells = [
        "-" if counts is None else str(counts.get(value, 0)) for value in foreground
    ]
    return [
        summary.case_id,
        subset,
        str(summary.num_channels),
        shape,
        spacing,
        summary.orientation or "-",
        "-" if summary.roi_voxels is None else str(summary.roi_voxels),
        *label_cells,
        str(len(summary.problems)) if summary.problems else "",
    ]


def _style(summary: CaseSummary) -> str:
    if summary.problems:
        return "red"
    return "yellow" if summary.warnings else ""
