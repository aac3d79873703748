"""``seg3d train``: fit a model on a dataset and keep a self-contained run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seg3d_cli.errors import user_errors


@user_errors
def train(
    data: Annotated[
        Path | None,
        typer.Argument(
            help="Dataset folder (Decathlon layout) or case-list CSV. "
            "Default: the bundled sample data."
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML configuration file.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Run folder to create.")
    ] = None,
) -> None:
    """Train a model on DATA and write a run folder with checkpoints and curves."""
    from seg3d.errors import Seg3dError

    raise Seg3dError("seg3d train is not implemented yet in this version")
