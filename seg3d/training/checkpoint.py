"""Model files: everything ``predict`` needs, stored as tensors and plain data.

A checkpoint is a ``torch.save`` of a dict holding only tensors, numbers,
strings, lists and dicts, read back with ``torch.load(weights_only=True)``:
opening a model file never runs code from it. It is written to a temporary
file and renamed, so an interrupted save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import logging
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from seg3d import __version__
from seg3d.errors import ModelFileError
from seg3d.io.atomic import atomic_path

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
"""Bumped whenever a change makes older checkpoints unreadable."""

CHECKPOINT_SUFFIX = ".pt"


def save_checkpoint(
    path: Path | str,
    weights: dict[str, torch.Tensor],
    model_info: dict[str, Any],
    training_state: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically, replacing an older one at ``path``.

    Args:
        weights: the network's ``state_dict`` (tensors only).
        model_info: plain data describing the model: network config, channel
            names, labels, preprocessing, segment sizes, training spacing.
        training_state: optimiser, schedule, epoch and sampler state, for
            ``--resume``; left out of files meant only for prediction.
    """
    payload = {
        "format": CHECKPOINT_FORMAT,
        "seg3d_version": __version__,
        "model": model_info,
        "weights": {name: tensor.detach().cpu() for name, tensor in weights.items()},
    }
    if training_state is not None:
        payload["training"] = training_state
    with atomic_path(path, overwrite=True) as temporary:
        torch.save(payload, temporary)
    logger.debug("saved checkpoint %s", path)
    return Path(path)


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    """Read a checkpoint without executing code from it.

    Raises:
        ModelFileError: the file is missing, not a seg3d checkpoint, corrupt,
            holds anything but tensors and plain data, or was written by an
            incompatible seg3d version.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file; check --model")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ModelFileError(
            f"{path}: refused to load: the file holds objects other than tensors "
            "and plain data, which could run code; only load seg3d checkpoints"
        ) from err
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as err:
        raise ModelFileError(
            f"{path}: not a readable model file ({err}); it may be truncated, so "
            "copy it again or use another checkpoint"
        ) from err
    _check_payload(path, payload)
    return payload


def _check_payload(path: Path, payload: Any) -> None:
    if (
        not isinstance(payload, dict)
        or "weights" not in payload
        or "model" not in payload
    ):
        raise ModelFileError(f"{path}: not a seg3d model file")
    written_format = payload.get("format")
    if written_format != CHECKPOINT_FORMAT:
        raise ModelFileError(
            f"{path}: written by seg3d {payload.get('seg3d_version', '?')} in "
            f"checkpoint format {written_format}, but seg3d {__version__} reads "
            f"format {CHECKPOINT_FORMAT}; predict with that seg3d version or "
            "retrain"
        )
