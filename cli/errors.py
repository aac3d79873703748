"""The one place where library errors become one line and an exit code."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from seg3d_cli import console

Command = TypeVar("Command", bound=Callable[..., Any])

_debug = {"enabled": False}


def set_debug(enabled: bool) -> None:
    _debug["enabled"] = enabled


def user_errors(command: Command) -> Command:
    """Turn a :class:`Seg3dError` into one red line and exit code 1.

    With ``--debug`` the error propagates with its traceback instead.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from seg3d.errors import DatasetError, Seg3dError

        try:
            return command(*args, **kwargs)
        except Seg3dError as err:
            if _debug["enabled"]:
                raise
            logging.getLogger("seg3d_cli").debug("user error", exc_info=True)
            console.stderr.print(f"[bold red]error:[/] {err}", highlight=False)
            if isinstance(err, DatasetError):
                for problem in err.problems:
                    console.stderr.print(f"  - {problem}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]
