"""``seg3d evaluate``: compare predicted label maps with ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seg3d_cli.errors import user_errors


@user_errors
def evaluate(
    pred: Annotated[Path, typer.Argument(help="Predicted label map file or folder.")],
    gt: Annotated[Path, typer.Argument(help="Ground-truth label map file or folder.")],
) -> None:
    """Compute Dice and surface distances of PRED against GT."""
    from seg3d.errors import Seg3dError

    raise Seg3dError("seg3d evaluate is not implemented yet in this version")
