"""``seg3d crf`` and ``seg3d tune-crf``: the dense CRF on its own, and its tuning."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seg3d_cli import console
from seg3d_cli.errors import user_errors


@user_errors
def crf(
    image: Annotated[
        list[Path],
        typer.Option(
            "--image",
            help="A channel file; repeat in channel order.",
            show_default=False,
        ),
    ],
    prob: Annotated[
        Path,
        typer.Option(
            "--prob",
            help="4D class probabilities (I, J, K, N) on the images' grid.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Label map to write.", show_default=False)
    ],
    mask: Annotated[
        Path | None,
        typer.Option(
            "--mask", help="ROI mask restricting the CRF.", show_default=False
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="TOML with [crf] (and [components]); default: seg3d's defaults.",
            show_default=False,
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing output.")
    ] = False,
) -> None:
    """Refine existing probability maps with the dense CRF; write class indices."""
    from seg3d.device import choose_device
    from seg3d.io import check_writable, label_dtype, write_volume
    from seg3d.postprocessing.crf_params import CrfParams
    from seg3d.postprocessing.probability_files import refine_probability_file
    from seg3d.postprocessing.settings import Postprocessing, read_postprocessing

    check_writable(out, overwrite)
    settings = read_postprocessing(config) if config else Postprocessing(CrfParams())
    if settings.crf is None:
        settings = Postprocessing(CrfParams(), settings.components)
    classes, reference = refine_probability_file(
        image, prob, settings, mask, choose_device(device)
    )
    write_volume(
        out, classes.astype(label_dtype(int(classes.max()))), reference, overwrite
    )
    console.stdout.print(f"wrote {out}", highlight=False, soft_wrap=True)


@user_errors
def tune_crf(
    run: Annotated[
        Path,
        typer.Argument(help="Run folder written by seg3d train.", show_default=False),
    ],
    trials: Annotated[int, typer.Option(help="CRF settings to try.")] = 40,
    seed: Annotated[int, typer.Option(help="Seed of the random search.")] = 0,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="The run's dataset, if it moved since training.",
            show_default=False,
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
) -> None:
    """Search CRF parameters on RUN's validation cases; store the best in the run."""
    from seg3d.device import choose_device
    from seg3d.inference.crf_tuning import tune_run_crf

    with console.progress_bar() as progress:
        task = progress.add_task("tuning the CRF", total=trials, status="")

        def on_trial(done, total, trial, best) -> None:
            status = f"best Dice {best.mean_dice:.4f}"
            progress.update(task, completed=done, status=status)

        tuning = tune_run_crf(run, trials, seed, choose_device(device), data, on_trial)
    best = tuning.result.best
    console.stdout.print(
        f"validation cases: {', '.join(tuning.case_ids)}\n"
        f"mean foreground Dice without CRF: {tuning.result.baseline_dice:.4f}\n"
        f"with the best CRF parameters:     {best.mean_dice:.4f}\n"
        f"best parameters: {best.params.to_dict()}\n"
        f"stored in {tuning.stored_in}; `seg3d predict --crf` uses them",
        highlight=False,
        soft_wrap=True,
    )
