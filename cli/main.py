"""The ``seg3d`` command: one typer app, one module per command."""

from __future__ import annotations

from typing import Annotated

import typer

from seg3d import __version__
from seg3d_cli import console, errors

app = typer.Typer(
    name="seg3d",
    help="3D medical image segmentation with a multi-scale DeepMedic-style CNN.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        console.stdout.print(f"seg3d {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="More log output.")
    ] = 0,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks of errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """3D medical image segmentation with a multi-scale DeepMedic-style CNN."""
    errors.set_debug(debug)
    console.configure_logging(verbose, quiet)


def _register() -> None:
    # Each command lives in its own module; importing them is cheap because
    # heavy libraries are imported inside the command functions.
    from seg3d_cli import check, crf, evaluate, predict, sample_data, train

    app.command("train")(train.train)
    app.command("predict")(predict.predict)
    app.command("evaluate")(evaluate.evaluate)
    app.command("crf")(crf.crf)
    app.command("tune-crf")(crf.tune_crf)
    app.command("sample-data")(sample_data.sample_data)
    app.command("check")(check.check)


_register()


def run() -> None:
    """Entry point of the ``seg3d`` console script and ``python -m seg3d``."""
    app()
