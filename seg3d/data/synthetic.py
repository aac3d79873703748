"""Synthetic brain-lesion cases and datasets, exactly reproducible from a seed.

:func:`make_case` builds one case in memory (what it looks like is described
in :mod:`seg3d.data.synthetic_anatomy`); :func:`write_synthetic_dataset` writes
cases in the Decathlon / nnU-Net layout. ``seg3d sample-data`` and the bundled
``sample_data/`` are made with them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from seg3d.data.synthetic_anatomy import (
    CHANNEL_NAMES,
    EDEMA,
    LESION,
    SyntheticCase,
    make_case,
)
from seg3d.data.validation import ProgressCallback
from seg3d.errors import OutputExistsError
from seg3d.io import Volume, atomic_path, write_volume

__all__ = [
    "CHANNEL_NAMES",
    "EDEMA",
    "LABELS_WITHOUT_EDEMA",
    "LABELS_WITH_EDEMA",
    "LESION",
    "SyntheticCase",
    "make_case",
    "write_synthetic_dataset",
]

logger = logging.getLogger(__name__)

LABELS_WITH_EDEMA = {"background": 0, "lesion": LESION, "edema": EDEMA}
LABELS_WITHOUT_EDEMA = {"background": 0, "lesion": LESION}

_ORIENTATIONS = ("RAS", "LPS", "LAS", "PSR")
_DATASET_FOLDERS = (
    "imagesTr",
    "labelsTr",
    "masksTr",
    "imagesTs",
    "labelsTs",
    "masksTs",
)


def write_synthetic_dataset(
    out_dir: Path | str,
    num_training: int = 8,
    num_test: int = 2,
    seed: int = 0,
    shape_range: tuple[int, int] = (64, 96),
    anisotropic: bool = True,
    reorient: bool = True,
    edema: bool = True,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> Path:
    """Write a synthetic dataset in the Decathlon / nnU-Net layout.

    Case ``n`` (``synth_000``, ``synth_001``, ...; test cases follow the
    training cases) is generated from the seed ``(seed, n)``, so a case does
    not change when the number of cases does. Files written::

        dataset.json
        imagesTr/synth_000_0000.nii.gz  (T1, int16)  imagesTs/...
        imagesTr/synth_000_0001.nii.gz  (FLAIR)
        labelsTr/synth_000.nii.gz       (uint8)      labelsTs/... (ground truth)
        masksTr/synth_000.nii.gz        (uint8 brain mask)  masksTs/...

    Args:
        out_dir: the dataset folder; created if missing.
        num_training: number of labelled training cases, at least 1.
        num_test: number of test cases (their labels go to ``labelsTs``).
        seed: dataset seed.
        shape_range: smallest and largest number of voxels along an axis;
            each case draws its shape from this range.
        anisotropic: give some cases thicker voxels along one axis (up to
            2 mm against 1 mm in plane).
        reorient: store some cases in non-RAS orientations (LPS, LAS, PSR).
        edema: label an edema rim (2) around each lesion core (1).
        overwrite: replace the files of an existing dataset in ``out_dir``
            and remove its stale case files; otherwise an existing
            ``dataset.json`` or case file is an error and nothing is written.
        progress: called with each case id once the case is written.

    Returns:
        ``out_dir``.

    Raises:
        OutputExistsError: ``out_dir`` holds a dataset and ``overwrite`` is off.

    Each file is written atomically, but the dataset as a whole is not: an
    interrupted run leaves the cases written so far and no ``dataset.json``.
    """
    if num_training < 1 or num_test < 0:
        raise ValueError(
            f"need num_training >= 1 and num_test >= 0, not {num_training} and "
            f"{num_test}"
        )
    low, high = shape_range
    if not 8 <= low <= high:
        raise ValueError(
            f"shape_range must satisfy 8 <= low <= high, not {shape_range}"
        )
    out_dir = Path(out_dir)
    case_ids = [f"synth_{n:03d}" for n in range(num_training + num_test)]
    planned = _planned_files(out_dir, case_ids, num_training)
    _clear_previous(out_dir, planned, overwrite)

    for n, case_id in enumerate(case_ids):
        subset = "Tr" if n < num_training else "Ts"
        grid = _case_grid((seed, n), shape_range, anisotropic, reorient)
        case = make_case((seed, n), edema=edema, **grid)
        _write_case(out_dir, subset, case_id, case, overwrite)
        logger.debug("wrote %s %s", case_id, grid)
        if progress is not None:
            progress(case_id)

    labels = LABELS_WITH_EDEMA if edema else LABELS_WITHOUT_EDEMA
    _write_dataset_json(out_dir, num_training, num_test, seed, labels, overwrite)
    return out_dir


def _case_grid(
    seed: tuple[int, int],
    shape_range: tuple[int, int],
    anisotropic: bool,
    reorient: bool,
) -> dict:
    """Shape, spacing and orientation of one case of a dataset."""
    # A separate stream from the case's own, so that switching anisotropy or
    # reorientation off does not change the other draws.
    rng = np.random.default_rng((*seed, 1))
    shape = rng.integers(shape_range[0], shape_range[1] + 1, size=3)
    spacing = np.ones(3)
    thick_axis = int(rng.integers(0, 3))
    # Thicknesses exact in float32, so the stored affine is the generated one.
    thickness = float(rng.choice([1.25, 1.5, 1.75, 2.0]))
    if anisotropic and rng.random() < 0.5:
        spacing[thick_axis] = thickness
        # Fewer, thicker slices cover the same head.
        shape[thick_axis] = max(shape_range[0], round(shape[thick_axis] / thickness))
    orientation = _ORIENTATIONS[int(rng.integers(0, len(_ORIENTATIONS)))]
    return {
        "shape": tuple(int(n) for n in shape),
        "spacing": tuple(float(s) for s in spacing),
        "orientation": orientation if reorient else "RAS",
    }


def _planned_files(out_dir: Path, case_ids: list[str], num_training: int) -> set[Path]:
    files = {out_dir / "dataset.json"}
    for n, case_id in enumerate(case_ids):
        subset = "Tr" if n < num_training else "Ts"
        files |= {
            out_dir / f"images{subset}" / f"{case_id}_{c:04d}.nii.gz"
            for c in range(len(CHANNEL_NAMES))
        }
        files.add(out_dir / f"labels{subset}" / f"{case_id}.nii.gz")
        files.add(out_dir / f"masks{subset}" / f"{case_id}.nii.gz")
    return files


def _clear_previous(out_dir: Path, planned: set[Path], overwrite: bool) -> None:
    """Refuse to touch an existing dataset, or remove its stale case files."""
    existing = [
        path
        for folder in _DATASET_FOLDERS
        if (out_dir / folder).is_dir()
        for path in sorted((out_dir / folder).glob("*.nii.gz"))
    ]
    if (out_dir / "dataset.json").exists():
        existing.append(out_dir / "dataset.json")
    if existing and not overwrite:
        raise OutputExistsError(
            f"{out_dir} already holds a dataset ({existing[0]} and "
            f"{len(existing) - 1} more files); pass --overwrite to replace it "
            "or choose another folder"
        )
    for path in existing:
        if path not in planned:
            logger.info("removing stale %s", path)
            path.unlink()


def _write_case(
    out_dir: Path, subset: str, case_id: str, case: SyntheticCase, overwrite: bool
) -> None:
    reference = Volume(case.label_map, case.affine)
    for channel, image in enumerate(case.image):
        path = out_dir / f"images{subset}" / f"{case_id}_{channel:04d}.nii.gz"
        write_volume(path, image.astype(np.int16), reference, overwrite)
    write_volume(
        out_dir / f"labels{subset}" / f"{case_id}.nii.gz",
        case.label_map,
        reference,
        overwrite,
    )
    mask = case.roi_mask.astype(np.uint8)
    write_volume(
        out_dir / f"masks{subset}" / f"{case_id}.nii.gz", mask, reference, overwrite
    )


def _write_dataset_json(
    out_dir: Path,
    num_training: int,
    num_test: int,
    seed: int,
    labels: dict[str, int],
    overwrite: bool,
) -> None:
    description = {
        "name": "seg3d synthetic brain lesions",
        "description": (
            "Synthetic MR-like brain scans with lesions, generated by "
            "seg3d.data.synthetic.write_synthetic_dataset"
        ),
        "channel_names": {str(n): name for n, name in enumerate(CHANNEL_NAMES)},
        "labels": labels,
        "numTraining": num_training,
        "numTest": num_test,
        "file_ending": ".nii.gz",
        "seed": seed,
    }
    with atomic_path(out_dir / "dataset.json", overwrite) as temporary:
        temporary.write_text(json.dumps(description, indent=2) + "\n")
