"""The Medical Segmentation Decathlon / nnU-Net folder layout.

::

    dataset.json                  channel_names (or modality), labels, file_ending
    imagesTr/<case>_0000.nii.gz   one file per channel ...
    imagesTr/<case>.nii.gz        ... or one 4D file holding all channels
    labelsTr/<case>.nii.gz
    masksTr/<case>.nii.gz         optional ROI masks (e.g. brain masks)
    imagesTs/, labelsTs/, masksTs/  the same for test cases; labels optional

A file whose name ends in ``_`` and four digits is a channel file, anything
else is a single-file case; a case id that itself ends in ``_0001`` must
therefore use per-channel files. Cases are found by listing ``imagesTr`` and
``imagesTs``; the ``training`` and ``test`` lists of an original Decathlon
``dataset.json`` are not needed and not read. Hidden files (macOS ``._``
files) are skipped.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from seg3d.data.case import CaseFiles
from seg3d.data.description import (
    DESCRIPTION_FILE,
    Dataset,
    channel_names_of,
    read_description,
    resolve_labels,
)
from seg3d.errors import DatasetError
from seg3d.io import volume_suffix

DEFAULT_FILE_ENDING = ".nii.gz"

# nnU-Net names channel files <case>_<four digits><file ending>.
_CHANNEL_FILE = re.compile(r"^(?P<case_id>.+)_(?P<channel>\d{4})$")


def open_decathlon(root: Path, labels: Mapping[str, int] | None = None) -> Dataset:
    """Describe the Decathlon folder ``root`` from its ``dataset.json`` and files.

    Args:
        root: the dataset folder.
        labels: label name to value; replaces the labels of ``dataset.json``.

    Raises:
        DatasetError: no ``dataset.json``, or it lacks usable channel names,
            labels or file ending.
    """
    source = root / DESCRIPTION_FILE
    if not source.is_file():
        raise DatasetError(
            f"{root}: no {DESCRIPTION_FILE}; a Decathlon dataset folder needs one "
            "with channel_names and labels (see docs/datasets.md)"
        )
    description = read_description(source)
    fatal: list[str] = []
    channel_names = channel_names_of(description, source, fatal)
    label_names, label_values = resolve_labels(
        description.get("labels"), labels, source, fatal
    )
    file_ending = description.get("file_ending", DEFAULT_FILE_ENDING)
    if not isinstance(file_ending, str) or not volume_suffix(f"case{file_ending}"):
        fatal.append(
            f"{source}: file_ending {file_ending!r} is not a volume file suffix; "
            "use e.g. '.nii.gz'"
        )
    if fatal:
        raise DatasetError(f"{source}: the dataset description is unusable", fatal)

    problems: list[str] = []
    folders = _Folders(root, file_ending, len(channel_names), problems)
    training = folders.cases("Tr", labelled=True)
    test = folders.cases("Ts", labelled=False)
    if not training:
        problems.append(
            f"{root / 'imagesTr'}: no training cases; expected files named "
            f"<case>_0000{file_ending} (one per channel) or <case>{file_ending}"
        )
    return Dataset(
        root=root,
        source=source,
        layout="decathlon",
        channel_names=channel_names,
        label_names=label_names,
        label_values=label_values,
        training=training,
        test=test,
        problems=tuple(problems),
    )


@dataclass
class _Folders:
    """Finds the cases of ``images<subset>`` with their labels and masks."""

    root: Path
    file_ending: str
    num_channels: int
    problems: list[str]

    def cases(self, subset: str, labelled: bool) -> tuple[CaseFiles, ...]:
        images = self.root / f"images{subset}"
        channel_files = self._channel_files(images)
        # Training labels and (when a masks folder exists) masks are expected
        # for every case; test labels only where ground truth was given.
        labels = self._per_case(f"labels{subset}", images, channel_files, labelled)
        has_masks = (self.root / f"masks{subset}").is_dir()
        masks = self._per_case(f"masks{subset}", images, channel_files, has_masks)
        return tuple(
            CaseFiles(case_id, channels, labels.get(case_id), masks.get(case_id))
            for case_id, channels in sorted(channel_files.items())
        )

    def _volume_files(self, folder: Path) -> list[Path]:
        if not folder.is_dir():
            return []
        files = []
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or not path.is_file():
                continue
            if path.name.endswith(self.file_ending):
                files.append(path)
            elif volume_suffix(path):
                self.problems.append(
                    f"{path}: does not end with the file_ending "
                    f"{self.file_ending!r} of dataset.json; rename it or fix "
                    "file_ending"
                )
        return files

    def _stem(self, path: Path) -> str:
        return path.name[: -len(self.file_ending)]

    def _channel_files(self, folder: Path) -> dict[str, tuple[Path, ...]]:
        """Case id to its channel files, or to its single (4D) file."""
        single: dict[str, Path] = {}
        per_channel: dict[str, dict[int, Path]] = defaultdict(dict)
        for path in self._volume_files(folder):
            match = _CHANNEL_FILE.match(self._stem(path))
            if match:
                per_channel[match["case_id"]][int(match["channel"])] = path
            else:
                single[self._stem(path)] = path

        cases = {case_id: (path,) for case_id, path in single.items()}
        for case_id, found in per_channel.items():
            if case_id in single:
                self.problems.append(
                    f"{single[case_id]}: case '{case_id}' also has per-channel "
                    f"files such as {next(iter(found.values())).name}; keep one form"
                )
                continue
            cases[case_id] = self._all_channels(folder, case_id, found)
        return cases

    def _all_channels(
        self, folder: Path, case_id: str, found: dict[int, Path]
    ) -> tuple[Path, ...]:
        for extra in sorted(set(found) - set(range(self.num_channels))):
            self.problems.append(
                f"{found[extra]}: channel {extra} but dataset.json declares "
                f"{self.num_channels} channel(s), 0 to {self.num_channels - 1}; "
                "remove the file or declare the channel"
            )
        # A missing channel keeps its expected path; loading reports it.
        return tuple(
            found.get(c, folder / f"{case_id}_{c:04d}{self.file_ending}")
            for c in range(self.num_channels)
        )

    def _per_case(
        self,
        name: str,
        images: Path,
        cases: Mapping[str, object],
        every_case: bool,
    ) -> dict[str, Path]:
        """Label or mask file of each case; files without images are problems."""
        folder = self.root / name
        files = {self._stem(path): path for path in self._volume_files(folder)}
        for case_id in sorted(set(files) - set(cases)):
            self.problems.append(
                f"{files[case_id]}: no images of case '{case_id}' in {images}; "
                "add them or remove the file"
            )
        if not every_case:
            return {
                case_id: path for case_id, path in files.items() if case_id in cases
            }
        # An expected but missing file keeps its path; loading reports it.
        return {
            case_id: files.get(case_id, folder / f"{case_id}{self.file_ending}")
            for case_id in cases
        }
