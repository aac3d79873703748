"""Writing files so that a crash or Ctrl-C never leaves half a file behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from seg3d.errors import OutputExistsError


def check_writable(path: Path, overwrite: bool) -> None:
    """Refuse to replace an existing output unless asked to."""
    if path.exists() and not overwrite:
        raise OutputExistsError(
            f"{path} exists; pass --overwrite to replace it or choose another output"
        )


@contextlib.contextmanager
def atomic_path(path: Path | str, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary file keeps the final suffix (writers pick the format from it)
    and lives in the same folder, so the final rename is atomic on POSIX.
    """
    path = Path(path)
    check_writable(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".gz") else path.suffix
    handle, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=f".partial{suffix}", dir=path.parent
    )
    os.close(handle)
    temporary_path = Path(temporary)
    try:
        yield temporary_path
        os.replace(temporary_path, path)
    finally:
        temporary_path.unlink(missing_ok=True)
