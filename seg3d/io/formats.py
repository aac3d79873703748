"""Which file suffixes seg3d reads and writes, and through which library."""

from __future__ import annotations

from pathlib import Path

NIFTI_SUFFIXES = (".nii.gz", ".nii")
SIMPLEITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
VOLUME_SUFFIXES = NIFTI_SUFFIXES + SIMPLEITK_SUFFIXES


def volume_suffix(path: Path | str) -> str:
    """The volume suffix of ``path`` (``".nii.gz"`` counts as one), or ``""``."""
    name = Path(path).name.lower()
    for suffix in VOLUME_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return ""


def strip_volume_suffix(path: Path | str) -> str:
    """The file name of ``path`` without its volume suffix."""
    name = Path(path).name
    suffix = volume_suffix(name)
    return name[: len(name) - len(suffix)] if suffix else name


def is_nifti(path: Path | str) -> bool:
    return volume_suffix(path) in NIFTI_SUFFIXES
