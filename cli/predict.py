"""``seg3d predict``: segment scans with a trained model."""

from __future__ import annotations

import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

import typer

from seg3d_cli import console, launch
from seg3d_cli.errors import user_errors

logger = logging.getLogger(__name__)

_UNITS = {"": 1, "b": 1, "kb": 2**10, "mb": 2**20, "gb": 2**30, "tb": 2**40}


@user_errors
def predict(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="One scan, the channel files of one case, a 4D file, several "
            "scans, or a folder (imagesTs, dataset folder or case-list CSV).",
            show_default=False,
        ),
    ],
    model: Annotated[
        list[Path] | None,
        typer.Option(
            "--model",
            help="Run folder or checkpoint; repeat for an ensemble. "
            "Default: the run named by runs/latest.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Output file (one case) or folder. Default: <case>_seg.nii.gz "
            "in the current folder.",
            show_default=False,
        ),
    ] = None,
    mask: Annotated[
        Path | None,
        typer.Option("--mask", help="ROI mask of a single case.", show_default=False),
    ] = None,
    save_probabilities: Annotated[
        bool,
        typer.Option(
            "--save-probabilities", help="Also write class probabilities (4D float32)."
        ),
    ] = False,
    tta: Annotated[
        bool,
        typer.Option("--tta", help="Average over flips along the augmentation axes."),
    ] = False,
    device: Annotated[
        str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")
    ] = "auto",
    precision: Annotated[
        str,
        typer.Option(help="auto (bfloat16 where it is fast), float32 or bfloat16."),
    ] = "auto",
    max_memory: Annotated[
        str | None,
        typer.Option(
            "--max-memory",
            help="Activation memory for one block, e.g. 2GB. Default: 70% of free "
            "GPU memory, 2 GiB on CPU.",
            show_default=False,
        ),
    ] = None,
    shift_equivariant: Annotated[
        bool,
        typer.Option(
            "--shift-equivariant",
            help="Centre every voxel's context on it (more arithmetic).",
        ),
    ] = False,
    crf: Annotated[
        bool,
        typer.Option(
            "--crf",
            help="Refine with the dense CRF: parameters from the model's run "
            "(seg3d tune-crf), --postprocessing FILE, or the defaults.",
        ),
    ] = False,
    postprocessing: Annotated[
        Path | None,
        typer.Option(
            "--postprocessing",
            help="TOML with [crf] and/or [components] (connected-component "
            "clean-up); replaces the settings stored in the run.",
            show_default=False,
        ),
    ] = None,
    runs: Annotated[
        Path, typer.Option("--runs", help="Runs folder holding the latest pointer.")
    ] = Path("runs"),
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace existing outputs.")
    ] = False,
) -> None:
    """Segment INPUTS and write label maps on each input's exact grid.

    Under torchrun the cases are shared out: case i goes to rank i % N, each
    process writes its own cases' outputs, and rank 0 prints the table of all.
    """
    from seg3d.data.inputs import prediction_cases
    from seg3d.inference.outputs import check_outputs_free, output_paths
    from seg3d.inference.pipeline import CasePredictor
    from seg3d.inference.trained_model import load_trained_model, resolve_model_paths
    from seg3d.training.distributed import process_group

    launch.quiet_other_ranks()
    paths = resolve_model_paths(model, runs)
    models = [load_trained_model(p) for p in paths]
    if launch.is_main_process():
        console.stderr.print(
            "model: " + ", ".join(str(p) for p in paths),
            highlight=False,
            soft_wrap=True,
        )
    cases = prediction_cases(inputs, len(models[0].channel_names), mask)
    single = len(cases) == 1
    folder = out if out is not None or single else Path("predictions")
    outputs = [
        output_paths(c.case_id, c.channels[0], folder, single, save_probabilities)
        for c in cases
    ]
    check_outputs_free(outputs, overwrite)
    # The processes only exchange the rows of the table: gloo on any device.
    with process_group(device, backend="gloo") as group:
        # No process writes before every one has checked that the outputs are
        # free, so that none of them finds another's fresh output in its way.
        group.barrier()
        predictor = CasePredictor(
            models,
            device=group.device,
            precision=_precision(precision, group.device),
            tta=tta,
            shift_equivariant=shift_equivariant,
            max_memory=_bytes(max_memory) if max_memory else None,
            postprocessing=_postprocessing(crf, postprocessing, paths[0]),
        )
        mine = group.shard(range(len(cases)))
        rows = _predict_all(
            predictor,
            models,
            [cases[i] for i in mine],
            [outputs[i] for i in mine],
            overwrite,
            show_progress=group.is_main,
        )
        rows = [row for part in group.gather(rows) for row in part]
    if group.is_main:
        order = {str(paths.segmentation): n for n, paths in enumerate(outputs)}
        _print_table(sorted(rows, key=lambda row: order[row["output"]]))


def _predict_all(
    predictor, models, cases, outputs, overwrite, show_progress=True
) -> list[dict[str, Any]]:
    from seg3d.data.loading import load_case
    from seg3d.inference.outputs import write_prediction

    channel_names = models[0].channel_names
    rows: list[dict[str, Any]] = []
    if not cases:  # more processes than cases
        return rows
    bar = console.progress_bar() if show_progress else _silent_progress()
    with bar as progress, ThreadPoolExecutor(1) as reader:
        task = progress.add_task("predicting", total=len(cases), status="")
        # Reading the next case overlaps computing the current one.
        pending = reader.submit(load_case, cases[0], channel_names)
        for index, (files, paths) in enumerate(zip(cases, outputs, strict=True)):
            case = pending.result()
            if index + 1 < len(cases):
                pending = reader.submit(load_case, cases[index + 1], channel_names)
            progress.update(task, status=files.case_id)
            started = time.perf_counter()
            blocks = progress.add_task("  blocks", total=None, status="", visible=False)

            def on_block(done: int, total: int, blocks=blocks) -> None:
                progress.update(blocks, completed=done, total=total, visible=total > 4)

            prediction = predictor.predict(case, on_block)
            write_prediction(
                prediction, paths, predictor.labels, [m.path for m in models], overwrite
            )
            progress.remove_task(blocks)
            progress.advance(task)
            rows.append(
                {
                    "case": files.case_id,
                    "shape": "x".join(str(n) for n in case.spatial_shape),
                    "spacing": "x".join(f"{s:.3g}" for s in case.spacing),
                    "seconds": time.perf_counter() - started,
                    "output": str(paths.segmentation),
                }
            )
    return rows


def _postprocessing(crf: bool, path: Path | None, model_file: Path) -> Any:
    """Settings from --postprocessing, else the run's; the CRF only with --crf."""
    from seg3d.postprocessing.crf_params import CrfParams
    from seg3d.postprocessing.settings import (
        Postprocessing,
        read_postprocessing,
        stored_postprocessing,
    )

    settings = (
        read_postprocessing(path) if path else stored_postprocessing(model_file.parent)
    )
    if not crf:
        return Postprocessing(None, settings.components)
    if settings.crf is None:
        logger.info("CRF with seg3d's default parameters (none tuned for this model)")
        return Postprocessing(CrfParams(), settings.components)
    logger.info("CRF with the parameters of %s", path or model_file.parent)
    return settings


def _silent_progress() -> Any:
    """A progress bar that draws nothing (processes other than rank 0)."""
    from rich.progress import Progress

    return Progress(disable=True)


def _print_table(rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title="Predictions")
    for column in ("case", "shape", "spacing (mm)", "time (s)", "output"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row["case"],
            row["shape"],
            row["spacing"],
            f"{row['seconds']:.1f}",
            row["output"],
        )
    console.stdout.print(table)


def _precision(name: str, device: Any) -> str:
    from seg3d.device import choose_precision
    from seg3d.errors import ConfigError

    dtype = choose_precision(name, device, allow_float16=False)
    chosen = str(dtype).removeprefix("torch.")
    if chosen not in ("float32", "bfloat16"):
        raise ConfigError(f"--precision {name}: inference runs in float32 or bfloat16")
    return chosen


def _bytes(text: str) -> int:
    from seg3d.errors import ConfigError

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)\s*", text.lower())
    if not match:
        raise ConfigError(
            f"--max-memory {text!r} is not a size; write e.g. 2GB or 512MB"
        )
    unit = match[2].replace("i", "")
    return int(float(match[1]) * _UNITS[unit])
