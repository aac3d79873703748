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
            console.stderr.print(
                f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True
            )
            if isinstance(err, DatasetError):
                for problem in err.problems:
                    console.stderr.print(
                        f"  - {problem}", highlight=False, soft_wrap=True
                    )
            raise typer.Exit(1) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as err:
            # A bug, not a user error: keep it short unless asked for details.
            if _debug["enabled"]:
                raise
            logging.getLogger("seg3d_cli").debug("internal error", exc_info=True)
            console.stderr.print(
                f"[bold red]internal error:[/] {type(err).__name__}: {err} "
                "(run again with --debug for the traceback, and report it)",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]
