"""Where predictions are written and what goes beside them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from seg3d import __version__
from seg3d.data.case import Case
from seg3d.inference.pipeline import CasePrediction
from seg3d.io import atomic_path, check_writable, volume_suffix, write_volume
from seg3d.io.formats import NIFTI_SUFFIXES

_WRITABLE = (*NIFTI_SUFFIXES, ".nrrd", ".mha")
SEGMENTATION_SUFFIX = "_seg"
PROBABILITIES_SUFFIX = "_probabilities"


@dataclass(frozen=True)
class OutputPaths:
    """The files written for one case."""

    segmentation: Path
    probabilities: Path | None
    sidecar: Path

    def all(self) -> list[Path]:
        paths = [self.segmentation, self.sidecar]
        return paths + ([self.probabilities] if self.probabilities else [])


def output_paths(
    case_id: str,
    first_channel: Path,
    out: Path | None,
    single_case: bool,
    save_probabilities: bool,
) -> OutputPaths:
    """``<case>_seg`` in ``out`` (a folder), or ``out`` itself for one case.

    The format follows the input's where seg3d can write it (NIfTI, NRRD,
    MetaImage), otherwise NIfTI.
    """
    suffix = volume_suffix(first_channel)
    suffix = suffix if suffix in _WRITABLE else ".nii.gz"
    if single_case and out is not None and volume_suffix(out):
        segmentation = out
        stem = out.name[: -len(volume_suffix(out))]
        folder, suffix = out.parent, volume_suffix(out)
    else:
        folder = out if out is not None else Path.cwd()
        stem = f"{case_id}{SEGMENTATION_SUFFIX}"
        segmentation = folder / f"{stem}{suffix}"
    probabilities = None
    if save_probabilities:
        base = stem.removesuffix(SEGMENTATION_SUFFIX)
        probabilities = folder / f"{base}{PROBABILITIES_SUFFIX}{suffix}"
    return OutputPaths(segmentation, probabilities, folder / f"{stem}.json")


def check_outputs_free(paths: list[OutputPaths], overwrite: bool) -> None:
    """Fail before any work if an output exists and may not be replaced."""
    for case_paths in paths:
        for path in case_paths.all():
            check_writable(path, overwrite)


def write_prediction(
    prediction: CasePrediction,
    paths: OutputPaths,
    labels: dict[str, int],
    models: list[Path],
    overwrite: bool,
) -> None:
    """Write the label map, probabilities (4D float32) and the JSON sidecar."""
    case: Case = prediction.case
    write_volume(paths.segmentation, prediction.label_map, case.reference, overwrite)
    if paths.probabilities is not None:
        channels_last = prediction.probabilities.transpose(1, 2, 3, 0)  # (I, J, K, N)
        write_volume(paths.probabilities, channels_last, case.reference, overwrite)
    sidecar = {
        "case_id": case.case_id,
        "segmentation": paths.segmentation.name,
        "probabilities": paths.probabilities.name if paths.probabilities else None,
        "labels": labels,
        "probability_channels": list(labels),
        "models": [str(m) for m in models],
        "seg3d_version": __version__,
    }
    with atomic_path(paths.sidecar, overwrite) as temporary:
        temporary.write_text(json.dumps(sidecar, indent=2) + "\n")
