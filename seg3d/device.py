"""Which device and arithmetic precision to run the network with."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Literal

import torch

from seg3d.errors import ConfigError

logger = logging.getLogger(__name__)

DeviceName = Literal["auto", "cpu", "cuda", "mps"] | str
PrecisionName = Literal["auto", "float32", "bfloat16", "float16"]


def choose_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ConfigError(
            f"--device {name!r} is not a device; use auto, cpu, cuda, cuda:N or mps"
        ) from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA device here; use --device cpu")
    return device


@functools.cache
def cpu_has_fast_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AMX or AVX512-BF16).

    Without either, bfloat16 convolutions are emulated and slower than float32.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags for flag in (" amx_bf16", " avx512_bf16"))


def choose_precision(
    name: str, device: torch.device | str, *, allow_float16: bool = True
) -> torch.dtype:
    """The dtype for ``name``; ``auto`` picks bfloat16 only where it is fast.

    Fast means a CUDA device that supports bfloat16, or a CPU with AMX or
    AVX512-BF16 (:func:`cpu_has_fast_bfloat16`); elsewhere bfloat16 runs far
    slower than float32. On a CUDA device without bfloat16, ``auto`` picks
    float16 for training (which then needs a gradient scaler), or float32 with
    ``allow_float16=False`` (inference, which runs in float32 or bfloat16).

    Args:
        name: ``auto``, ``float32``, ``bfloat16`` or ``float16``.
        device: where the network runs.
        allow_float16: whether float16 may be chosen or asked for.

    Raises:
        ConfigError: ``name`` is unknown, or float16 where it is not allowed.
    """
    device = torch.device(device)
    if name == "float32":
        return torch.float32
    if name == "bfloat16":
        return torch.bfloat16
    if name == "float16":
        if not allow_float16:
            raise ConfigError(
                "--precision float16 is not offered for prediction; use float32 or "
                "bfloat16"
            )
        if device.type == "cpu":
            raise ConfigError("--precision float16 is for GPUs; use bfloat16 on CPUs")
        return torch.float16
    if name != "auto":
        raise ConfigError(
            f"--precision {name!r} is unknown; use auto, float32, bfloat16 or float16"
        )
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16 if allow_float16 else torch.float32
    if device.type == "cpu" and cpu_has_fast_bfloat16():
        return torch.bfloat16
    return torch.float32
