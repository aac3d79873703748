"""``seg3d train``: fit a model on a dataset and keep a self-contained run folder."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from seg3d_cli import console, launch
from seg3d_cli.errors import user_errors

_TRAINING_OPTIONS = "Training (override the \\[training] table of --config)"
_SPEED_OPTIONS = "Speed and several GPUs"


@user_errors
def train(
    data: Annotated[
        Path | None,
        typer.Argument(
            help="Dataset folder (Decathlon layout) or case-list CSV. "
            "Default: the bundled sample data.",
            show_default=False,
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TOML configuration file.", show_default=False),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Run folder to create. Default: runs/<date-time>.",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume", help="Continue the run in this folder exactly where it stopped."
        ),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            help="Network profile: auto (paper on GPU, cpu elsewhere), paper, "
            "multiscale, cpu, tiny.",
            show_default=False,
        ),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Most epochs.", rich_help_panel=_TRAINING_OPTIONS)
    ] = None,
    max_time: Annotated[
        str | None,
        typer.Option(
            "--max-time",
            help="Wall-clock limit, e.g. 25m or 1h30m; ends with a validation.",
            rich_help_panel=_TRAINING_OPTIONS,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            help="Seed of everything random.", rich_help_panel=_TRAINING_OPTIONS
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            help="auto, cpu, cuda, cuda:N or mps.", rich_help_panel=_TRAINING_OPTIONS
        ),
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(
            help="auto, float32, bfloat16 or float16 (GPU).",
            rich_help_panel=_TRAINING_OPTIONS,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="DataLoader processes drawing segments.",
            rich_help_panel=_TRAINING_OPTIONS,
        ),
    ] = None,
    nproc: Annotated[
        int,
        typer.Option(
            "--nproc",
            min=1,
            help="Processes to train with on this machine, one per GPU (or CPU "
            "processes with --device cpu), started through torchrun. For several "
            "machines run torchrun yourself: see docs/docker.md.",
            rich_help_panel=_SPEED_OPTIONS,
        ),
    ] = 1,
    memory_format: Annotated[
        str | None,
        typer.Option(
            "--memory-format",
            help="auto (channels_last on CPUs, contiguous on GPUs), channels_last "
            "or contiguous.",
            show_default=False,
            rich_help_panel=_SPEED_OPTIONS,
        ),
    ] = None,
    compile_network: Annotated[
        bool | None,
        typer.Option(
            "--compile/--no-compile",
            help="torch.compile the network (minutes to compile; needs a C "
            "compiler). Default: from --config (off).",
            show_default=False,
            rich_help_panel=_SPEED_OPTIONS,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the network, segment sizes and receptive fields, then stop.",
        ),
    ] = False,
) -> None:
    """Train a model on DATA and write a run folder with checkpoints and curves.

    Under torchrun (or with --nproc) every process trains on its own segments,
    batches of --config's batch_size each; rank 0 writes the run folder.
    """
    from seg3d.training.config import load_training_config
    from seg3d.training.trainer import resume as resume_run
    from seg3d.training.trainer import train as train_run

    overrides: dict[str, Any] = dict(
        epochs=epochs,
        max_time=max_time,
        seed=seed,
        device=device,
        precision=precision,
        num_workers=workers,
        memory_format=memory_format,
        compile=compile_network,
    )
    if nproc > 1 and not dry_run:
        launch.relaunch_under_torchrun(nproc)
    launch.quiet_other_ranks()
    observer = _ProgressObserver()
    if resume is not None:
        with observer, _interruption_reported_once():
            summary = resume_run(resume, observer, **overrides)
        _print_summary(summary)
        return

    settings = load_training_config(config).with_training(**overrides)
    if profile is not None:
        settings = settings.with_profile(profile)
    data = data if data is not None else _sample_data()
    if dry_run:
        _describe(settings, data)
        return
    with observer, _interruption_reported_once():
        summary = train_run(data, settings, out, observer)
    _print_summary(summary)


@contextlib.contextmanager
def _interruption_reported_once() -> Iterator[None]:
    """Every process stops on Ctrl-C; rank 0 alone says where the state went."""
    from seg3d.training.trainer import TrainingInterrupted

    try:
        yield
    except TrainingInterrupted:
        if launch.is_main_process():
            raise
        raise typer.Exit(1) from None


def _sample_data() -> Path:
    from seg3d.data.bundled import bundled_sample_data

    return bundled_sample_data()


def _describe(settings: Any, data: Path) -> None:
    from seg3d.training.architecture import describe_run

    for line in describe_run(settings, data):
        console.stdout.print(line, highlight=False, soft_wrap=True)


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.table import Table

    if not launch.is_main_process():
        return

    table = Table(title="Training finished", show_header=False)
    best = summary["best_validation_dice"]
    rows = [
        ("run folder", summary["run_dir"]),
        ("stopped because", summary["stopped_because"]),
        ("epochs", str(summary["epochs_trained"])),
        ("processes", str(summary["processes"])),
        ("best validation Dice", "n/a" if best is None else f"{best:.3f}"),
        ("best epoch", str(summary["best_epoch"])),
        ("time", f"{summary['training_seconds']:.0f} s"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    console.stdout.print(table)


class _ProgressObserver:
    """Draws a rich progress bar over the run's steps on stderr."""

    def __enter__(self) -> _ProgressObserver:
        # Only rank 0 hears of progress, so only it draws a bar.
        self._context = (
            console.progress_bar()
            if launch.is_main_process()
            else contextlib.nullcontext(None)
        )
        self.progress = self._context.__enter__()
        self.task = None
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._context.__exit__(*exc_info)

    def started(self, run: Any) -> None:
        schedule = run.config.training
        console.stderr.print(
            f"training [bold]{run.profile}[/] network "
            f"({run.network.num_parameters():,} parameters) on {run.device}, "
            f"{str(run.precision).removeprefix('torch.')}; "
            f"{len(run.cases.training)} training and {len(run.cases.validation)} "
            f"validation cases; {run.distributed.world_size} process(es); "
            f"run folder {run.run_dir}",
            highlight=False,
        )
        total = schedule.epochs * schedule.batches_per_epoch
        done = run.epoch * schedule.batches_per_epoch + run.batch
        self.task = self.progress.add_task(
            "training", total=total, completed=done, status=""
        )

    def stepped(self, run: Any, loss: float, samples_per_second: float) -> None:
        status = (
            f"epoch {run.epoch + 1} loss {loss:.3f} lr {run.learning_rate:.2g} "
            f"{samples_per_second:.0f} segments/s"
        )
        if run.best_epoch:
            status += f" best Dice {run.best_dice:.3f}"
        self.progress.update(self.task, advance=1, status=status)

    def validated(self, run: Any, dice: dict[str, float]) -> None:
        # The library logs the scores; the bar shows the best one in its status.
        pass

    def finished(self, run: Any, summary: dict[str, Any]) -> None:
        if self.task is not None:
            self.progress.update(self.task, total=self.progress.tasks[0].completed)
