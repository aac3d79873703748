"""Which cases the inputs of ``seg3d predict`` name.

Inputs may be one scan, the channel files of one case, one 4D file, several
single-channel scans, a folder of scans (``imagesTs`` style, channels as
``<case>_0000``, ``<case>_0001``...), a dataset folder (its test cases, or its
training cases where it has none) or a CSV case list.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from seg3d.data.case import CaseFiles
from seg3d.data.dataset import open_dataset
from seg3d.errors import DatasetError
from seg3d.io.formats import strip_volume_suffix, volume_suffix

_CHANNEL_SUFFIX = re.compile(r"^(?P<case_id>.+)_(?P<channel>\d{4})$")
_DESCRIPTION = "dataset.json"


def prediction_cases(
    inputs: Sequence[Path], num_channels: int, mask: Path | None = None
) -> list[CaseFiles]:
    """The cases to predict, each with its channel files in channel order.

    Args:
        inputs: files or folders as given on the command line.
        num_channels: channels the model reads.
        mask: an ROI mask for a single case given as files.

    Raises:
        DatasetError: an input does not exist, a folder holds no scans, or the
            files do not make whole cases of ``num_channels`` channels.
    """
    inputs = [Path(p).expanduser() for p in inputs]
    for path in inputs:
        if not path.exists():
            raise DatasetError(f"{path}: no such file or folder")
    if len(inputs) == 1 and _is_dataset(inputs[0]):
        cases = _dataset_cases(inputs[0])
    elif len(inputs) == 1 and inputs[0].is_dir():
        cases = _folder_cases(inputs[0], num_channels)
    else:
        folders = [p for p in inputs if p.is_dir()]
        if folders:
            raise DatasetError(
                f"{folders[0]}: give either one folder or scan files, not both"
            )
        cases = _file_cases(inputs, num_channels)
    if mask is not None:
        if len(cases) != 1:
            raise DatasetError(
                f"--mask {mask} applies to one case, but the inputs hold "
                f"{len(cases)}; put masks in a masksTs folder beside imagesTs"
            )
        cases = [CaseFiles(cases[0].case_id, cases[0].channels, None, mask)]
    return cases


def _is_dataset(path: Path) -> bool:
    if path.is_file():
        return path.suffix.lower() == ".csv" or path.name == _DESCRIPTION
    return (path / _DESCRIPTION).is_file()


def _dataset_cases(path: Path) -> list[CaseFiles]:
    dataset = open_dataset(path)
    cases = dataset.test or dataset.training
    # Ground truth is not read for prediction; ROI masks are.
    return [CaseFiles(c.case_id, c.channels, None, c.roi_mask) for c in cases]


def _folder_cases(folder: Path, num_channels: int) -> list[CaseFiles]:
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
    )
    scans = [p for p in files if volume_suffix(p)]
    if not scans:
        raise DatasetError(f"{folder}: no scans (.nii.gz, .nii, .nrrd, .mha) found")
    masks = _masks_beside(folder)
    return [
        CaseFiles(case.case_id, case.channels, None, masks.get(case.case_id))
        for case in _file_cases(scans, num_channels)
    ]


def _masks_beside(folder: Path) -> dict[str, Path]:
    """ROI masks of an ``imagesXx`` folder, from the ``masksXx`` folder beside it."""
    if not folder.name.startswith("images"):
        return {}
    masks = folder.parent / ("masks" + folder.name.removeprefix("images"))
    if not masks.is_dir():
        return {}
    return {strip_volume_suffix(p): p for p in masks.iterdir() if volume_suffix(p)}


def _file_cases(files: Sequence[Path], num_channels: int) -> list[CaseFiles]:
    grouped: dict[str, dict[int, Path]] = defaultdict(dict)
    singles: list[Path] = []
    for path in files:
        match = _CHANNEL_SUFFIX.match(strip_volume_suffix(path))
        if match and num_channels > 1:
            grouped[match["case_id"]][int(match["channel"])] = path
        else:
            singles.append(path)
    if num_channels > 1 and singles and not grouped and len(singles) == num_channels:
        # The channel files of one case, named freely, in channel order.
        return [CaseFiles(strip_volume_suffix(singles[0]), tuple(singles))]
    cases = [CaseFiles(_case_id(p), (p,)) for p in singles]
    for case_id, channels in sorted(grouped.items()):
        expected = set(range(num_channels))
        if set(channels) != expected:
            missing = sorted(expected - set(channels))
            raise DatasetError(
                f"case '{case_id}': the model reads {num_channels} channels but "
                f"channel file(s) {', '.join(f'_{c:04d}' for c in missing)} are "
                f"missing beside {next(iter(channels.values()))}"
            )
        cases.append(CaseFiles(case_id, tuple(channels[c] for c in sorted(channels))))
    return cases


def _case_id(path: Path) -> str:
    stem = strip_volume_suffix(path)
    match = _CHANNEL_SUFFIX.match(stem)
    return match["case_id"] if match else stem
