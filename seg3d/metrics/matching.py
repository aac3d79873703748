"""Pairing predicted label maps with ground truth (and images) by case id.

A case id is a file name without its volume suffix, without the ``_seg`` that
``seg3d predict`` (and BraTS' ground truth) appends, and without a Decathlon
channel suffix such as ``_0000``: ``BraTS_001_0000_seg.nii.gz``,
``BraTS_001_seg.nii.gz`` and ``BraTS_001.nii.gz`` are all case ``BraTS_001``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from seg3d.errors import DatasetError
from seg3d.io.formats import strip_volume_suffix, volume_suffix

logger = logging.getLogger(__name__)

SEGMENTATION_SUFFIX = "_seg"
_CHANNEL_SUFFIX = re.compile(r"_\d{4}$")


@dataclass(frozen=True)
class CasePair:
    """The files of one case to evaluate.

    Attributes:
        case_id: the id shared by the files.
        prediction: the predicted label map.
        truth: the ground-truth label map.
        image: the image to draw pictures on, if pictures were asked for.
    """

    case_id: str
    prediction: Path
    truth: Path
    image: Path | None = None


@dataclass(frozen=True)
class Matching:
    """Cases found in both places, and predictions without ground truth.

    Attributes:
        pairs: matched cases, sorted by case id.
        unmatched_predictions: prediction files whose case has no ground truth;
            reported, never silently dropped.
    """

    pairs: tuple[CasePair, ...]
    unmatched_predictions: tuple[Path, ...]


def case_id(path: Path | str) -> str:
    """The case id of a file: its name without volume, ``_seg`` or channel suffix."""
    name = strip_volume_suffix(path)
    name = name.removesuffix(SEGMENTATION_SUFFIX)
    return _CHANNEL_SUFFIX.sub("", name)


def match_cases(prediction: Path, truth: Path) -> Matching:
    """Pair prediction and truth files by case id.

    Args:
        prediction: one label-map file or a folder of them.
        truth: one label-map file or a folder of them.

    Returns:
        The pairs; predictions without ground truth are listed in the result.
        Two single files always form one pair, whatever their names.

    Raises:
        DatasetError: a path is missing or holds no volume, two files of one
            folder give the same case id, or ground-truth cases lack a
            prediction (all listed).
    """
    if prediction.is_file() and truth.is_file():
        pair = CasePair(case_id(truth), prediction, truth)
        return Matching((pair,), ())
    predictions = _files_by_case(prediction, "prediction", prefer_seg=True)
    truths = _files_by_case(truth, "ground truth", prefer_seg=False)

    missing = sorted(set(truths) - set(predictions))
    if missing:
        raise DatasetError(
            f"{len(missing)} of {len(truths)} ground-truth cases have no prediction "
            f"in {prediction}; predict them, or evaluate against a folder holding "
            "only the cases you predicted",
            problems=[f"{name}: no prediction for {truths[name]}" for name in missing],
        )
    pairs = tuple(
        CasePair(name, predictions[name], truths[name]) for name in sorted(truths)
    )
    extra = tuple(predictions[name] for name in sorted(set(predictions) - set(truths)))
    if extra:
        logger.warning(
            "%d predictions have no ground truth in %s and are not evaluated: %s",
            len(extra),
            truth,
            ", ".join(path.name for path in extra),
        )
    return Matching(pairs, extra)


def _files_by_case(path: Path, role: str, prefer_seg: bool) -> dict[str, Path]:
    files = _volume_files(path, role)
    if prefer_seg:
        # A prediction folder from `seg3d predict` may also hold probabilities;
        # where `_seg` label maps exist, only they are predictions.
        segmentations = [
            file
            for file in files
            if strip_volume_suffix(file).endswith(SEGMENTATION_SUFFIX)
        ]
        if segmentations and len(segmentations) < len(files):
            skipped = sorted(set(files) - set(segmentations))
            logger.info(
                "%s: using the %d *_seg files as predictions; ignoring %s",
                path,
                len(segmentations),
                ", ".join(file.name for file in skipped),
            )
            files = segmentations
    by_case: dict[str, Path] = {}
    for file in files:
        other = by_case.setdefault(case_id(file), file)
        if other != file:
            raise DatasetError(
                f"{other.name} and {file.name} in {path} are both case "
                f"{case_id(file)!r}; keep one label map per case in the {role} folder"
            )
    return by_case


def _volume_files(path: Path, role: str) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DatasetError(f"{role} {path}: no such file or folder; check the path")
    files = sorted(
        entry
        for entry in path.iterdir()
        if entry.is_file() and volume_suffix(entry) and not entry.name.startswith(".")
    )
    if not files:
        raise DatasetError(
            f"{role} folder {path} holds no volume files (.nii.gz, .nii, .nrrd, "
            ".mha, .mhd); check the path"
        )
    return files


def attach_images(pairs: Sequence[CasePair], images: Sequence[Path]) -> list[CasePair]:
    """Give each pair the image to draw on, matched by case id.

    Args:
        pairs: matched cases.
        images: image files and/or folders; for cases with several channels
            (``_0000``, ``_0001``, ...) the first channel is used.

    Raises:
        DatasetError: a case has no image (all listed), or a path is missing.
    """
    files = [file for path in images for file in _volume_files(path, "image")]
    if len(pairs) == 1 and len(files) == 1:
        return [_with_image(pairs[0], files[0])]
    by_case: dict[str, Path] = {}
    for file in sorted(files, key=lambda file: file.name):
        by_case.setdefault(case_id(file), file)  # the first channel wins
    missing = [pair.case_id for pair in pairs if pair.case_id not in by_case]
    if missing:
        raise DatasetError(
            f"{len(missing)} of {len(pairs)} cases have no image among --images; "
            "pass the image folder (or one file per case) named by case id",
            problems=[f"{name}: no image" for name in missing],
        )
    return [_with_image(pair, by_case[pair.case_id]) for pair in pairs]


def _with_image(pair: CasePair, image: Path) -> CasePair:
    return CasePair(pair.case_id, pair.prediction, pair.truth, image)
