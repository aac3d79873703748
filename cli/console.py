"""Consoles, logging and progress bars shared by every command."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

# stdout carries only results a script may parse; everything else goes to stderr.
# Off a terminal (pipes, CI logs) rich would wrap tables at 80 columns.
stdout = Console() if sys.stdout.isatty() else Console(width=160)
stderr = Console(stderr=True)


def configure_logging(verbose: int, quiet: bool) -> None:
    level = (
        logging.WARNING if quiet else (logging.DEBUG if verbose > 0 else logging.INFO)
    )
    handler = RichHandler(
        console=stderr, show_path=False, show_time=False, markup=False
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("seg3d").setLevel(level)
    logging.getLogger("seg3d_cli").setLevel(level)


@contextlib.contextmanager
def progress_bar(transient: bool = False) -> Iterator[Progress]:
    """A rich progress bar on stderr; silent when stderr is not a terminal."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=stderr,
        transient=transient,
        disable=not stderr.is_terminal,
    )
    with progress:
        yield progress
