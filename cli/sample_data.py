"""``seg3d sample-data``: write a small synthetic brain-lesion dataset."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from seg3d_cli import console
from seg3d_cli.errors import user_errors

logger = logging.getLogger(__name__)


@user_errors
def sample_data(
    out: Annotated[
        Path, typer.Argument(help="Dataset folder to write (created if missing).")
    ],
    training: Annotated[
        int, typer.Option("--training", min=1, help="Number of training cases.")
    ] = 8,
    test: Annotated[
        int,
        typer.Option(
            "--test", min=0, help="Number of test cases (ground truth in labelsTs)."
        ),
    ] = 2,
    seed: Annotated[
        int,
        typer.Option("--seed", min=0, help="Random seed; one seed, one dataset."),
    ] = 0,
    size: Annotated[
        tuple[int, int],
        typer.Option(
            "--size",
            help="Smallest and largest number of voxels along an axis (at least 8).",
        ),
    ] = (64, 96),
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace a dataset already in OUT."),
    ] = False,
) -> None:
    """Write a synthetic brain-lesion dataset in the Decathlon layout to OUT.

    Two MR-like channels (T1, FLAIR), labels 1 lesion and 2 edema, brain masks
    in masksTr/masksTs; some cases anisotropic or stored in LPS, LAS or PSR
    orientation. Prints OUT when done.
    """
    from seg3d.data.synthetic import write_synthetic_dataset

    if not 8 <= size[0] <= size[1]:
        raise typer.BadParameter(
            f"needs 8 <= MIN <= MAX, not {size[0]} {size[1]}", param_hint="--size"
        )
    with console.progress_bar() as progress:
        task = progress.add_task("writing cases", total=training + test, status="")
        write_synthetic_dataset(
            out,
            num_training=training,
            num_test=test,
            seed=seed,
            shape_range=size,
            overwrite=overwrite,
            progress=lambda case_id: progress.update(task, advance=1, status=case_id),
        )
    logger.info(
        "wrote %d training and %d test case(s); check them with: seg3d check %s",
        training, test, out,
    )  # fmt: skip
    console.stdout.print(str(out), highlight=False, soft_wrap=True)
