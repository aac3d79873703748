"""``seg3d predict``: segment scans with a trained model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seg3d_cli.errors import user_errors


@user_errors
def predict(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="One scan, the channel files of one case, a 4D file, "
            "or a folder of cases."
        ),
    ],
    model: Annotated[
        list[Path] | None,
        typer.Option(
            "--model", help="Run folder or checkpoint; repeat for an ensemble."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output file or folder.")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace existing outputs.")
    ] = False,
) -> None:
    """Segment INPUTS and write label maps on each input's exact grid."""
    from seg3d.errors import Seg3dError

    raise Seg3dError("seg3d predict is not implemented yet in this version")
