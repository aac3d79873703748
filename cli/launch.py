"""Several processes from one command: ``--nproc``, and quiet ranks other than 0.

``seg3d train --nproc N`` starts ``N`` processes on this machine by handing the
same command line, without ``--nproc``, to torchrun (``python -m
torch.distributed.run --standalone``), which replaces this process. Launched
directly by torchrun, every process runs the command; rank 0 reports.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn

from seg3d_cli import console


def is_main_process() -> bool:
    """Whether this is rank 0 (or the only process)."""
    return os.environ.get("RANK", "0") == "0"


def quiet_other_ranks() -> None:
    """Let only rank 0 log progress; the others report warnings and errors."""
    if not is_main_process():
        for name in ("seg3d", "seg3d_cli"):
            logging.getLogger(name).setLevel(logging.WARNING)


def relaunch_under_torchrun(nproc: int) -> NoReturn:
    """Replace this process by torchrun running ``nproc`` copies of its command.

    Raises:
        ConfigError: this process was itself started by torchrun.
    """
    from seg3d.errors import ConfigError

    if "WORLD_SIZE" in os.environ:
        raise ConfigError(
            "--nproc starts processes, but torchrun already started this one; "
            "drop --nproc (torchrun's --nproc-per-node sets the count)"
        )
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "seg3d",
        *without_nproc(sys.argv[1:]),
    ]
    console.stderr.print(
        "starting python " + " ".join(command[1:]), highlight=False, soft_wrap=True
    )
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command)


def without_nproc(arguments: list[str]) -> list[str]:
    """``arguments`` with ``--nproc N`` or ``--nproc=N`` removed."""
    kept: list[str] = []
    skip = False
    for argument in arguments:
        if skip:
            skip = False
        elif argument == "--nproc":
            skip = True
        elif not argument.startswith("--nproc="):
            kept.append(argument)
    return kept
