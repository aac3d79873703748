"""The CSV case list: one row per case, one column per channel.

::

    case_id,T1,FLAIR,label,mask,split
    s01,s01/t1.nii.gz,s01/flair.nii.gz,s01/lesions.nii.gz,s01/brain.nii.gz,
    s02,s02/t1.nii.gz,s02/flair.nii.gz,,s02/brain.nii.gz,test

``case_id`` is required; ``label``, ``mask`` and ``split`` are optional; every
other column is a channel, named by its header. Relative paths are resolved
against the CSV's folder. A row without ``split`` is a training case when it
has a label and a test case otherwise; ``split`` may say ``training`` or
``test`` (a test case's label is its ground truth for evaluation).

Label names and values come from the ``labels`` argument, else from a
``dataset.json`` beside the CSV (its ``labels``, in either form
:func:`seg3d.data.description.labels_of` accepts). That ``dataset.json`` may also
give ``channel_names``: then a CSV with a single channel column holds one 4D
file per case with those channels.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
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

CASE_ID, LABEL, MASK, SPLIT = "case_id", "label", "mask", "split"
_NOT_CHANNELS = (CASE_ID, LABEL, MASK, SPLIT)
_SPLITS = {"training": "training", "train": "training", "test": "test"}


def open_case_list(path: Path, labels: Mapping[str, int] | None = None) -> Dataset:
    """Describe the dataset listed in the CSV file ``path``.

    Args:
        path: the ``.csv`` case list.
        labels: label name to value; replaces those of a ``dataset.json``
            beside the CSV.

    Raises:
        DatasetError: the header is unusable, the channel columns disagree
            with ``dataset.json``, or labelled rows have no label declaration.
    """
    header, rows = _read_rows(path)
    beside = path.parent / DESCRIPTION_FILE
    description = read_description(beside) if beside.is_file() else {}
    fatal: list[str] = []
    columns = [name for name in header if name not in _NOT_CHANNELS]
    channel_names = _channel_names(path, columns, description, beside, fatal)
    label_names, label_values = _labels(path, rows, description, labels, fatal)
    if fatal:
        raise DatasetError(f"{path}: the case list is unusable", fatal)

    problems: list[str] = []
    training, test = _cases(path, rows, columns, problems)
    if not training:
        problems.append(
            f"{path}: no training cases; give at least one row a label "
            "(or split 'training')"
        )
    return Dataset(
        root=path.parent,
        source=path,
        layout="csv",
        channel_names=channel_names,
        label_names=label_names,
        label_values=label_values,
        training=tuple(training),
        test=tuple(test),
        problems=tuple(problems),
    )


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header and ``(line number, row)`` pairs with whitespace stripped."""
    try:
        # utf-8-sig drops the byte-order mark spreadsheet programs write.
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in reader.fieldnames or []]
            reader.fieldnames = header
            rows = [(reader.line_num, row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DatasetError(f"{path}: cannot be read as CSV ({err})") from err
    problems = []
    if CASE_ID not in header:
        problems.append(
            f"{path}: the header {header} has no '{CASE_ID}' column; the first "
            "line must name the columns, e.g. case_id,T1,FLAIR,label"
        )
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        problems.append(f"{path}: columns {duplicated} appear more than once")
    if problems:
        raise DatasetError(f"{path}: the case list is unusable", problems)
    return header, [(line, _stripped(row)) for line, row in rows]


def _stripped(row: dict) -> dict[str, str]:
    # DictReader puts surplus fields under the key None, as a list.
    return {
        key: value.strip() if isinstance(value, str) else value
        for key, value in row.items()
    }


def _channel_names(
    path: Path, columns: list[str], description: dict, beside: Path, fatal: list[str]
) -> tuple[str, ...]:
    if not columns:
        fatal.append(
            f"{path}: no channel columns; add one column per channel besides "
            f"{', '.join(_NOT_CHANNELS)}"
        )
        return ()
    if "channel_names" not in description and "modality" not in description:
        return tuple(columns)
    declared = channel_names_of(description, beside, fatal)
    if len(columns) == 1 or list(declared) == columns:
        # A single column may hold 4D files with all declared channels.
        return declared
    fatal.append(
        f"{path}: channel columns {columns} do not match the channel_names "
        f"{list(declared)} of {beside}; rename the columns or fix channel_names"
    )
    return ()


def _labels(
    path: Path,
    rows: list[tuple[int, dict[str, str]]],
    description: dict,
    labels: Mapping[str, int] | None,
    fatal: list[str],
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    beside = path.parent / DESCRIPTION_FILE
    if labels is not None or "labels" in description:
        return resolve_labels(description.get("labels"), labels, beside, fatal)
    if any(row.get(LABEL) for _, row in rows):
        fatal.append(
            f"{path}: the label values are not declared; put a {DESCRIPTION_FILE} "
            'with "labels": {"background": 0, "lesion": 1} beside the CSV or '
            "pass labels (--labels background=0,lesion=1)"
        )
    return ("background",), (0,)


def _cases(
    path: Path,
    rows: list[tuple[int, dict[str, str]]],
    columns: list[str],
    problems: list[str],
) -> tuple[list[CaseFiles], list[CaseFiles]]:
    training: list[CaseFiles] = []
    test: list[CaseFiles] = []
    first_line: dict[str, int] = {}
    for line, row in rows:
        where = f"{path}, line {line}"
        case_id = row.get(CASE_ID) or ""
        if row.get(None):  # type: ignore[call-overload]
            problems.append(f"{where}: more fields than the header has columns")
            continue
        if not case_id:
            problems.append(f"{where}: empty case_id; give every row a case id")
            continue
        if case_id in first_line:
            problems.append(
                f"{where}: case id '{case_id}' is also on line {first_line[case_id]}; "
                "case ids must be unique"
            )
            continue
        first_line[case_id] = line
        files = _case_files(path.parent, where, case_id, row, columns, problems)
        split = _split(where, row, problems)
        if files is None or split is None:
            continue
        (training if split == "training" else test).append(files)
    return training, test


def _case_files(
    root: Path,
    where: str,
    case_id: str,
    row: dict[str, str],
    columns: list[str],
    problems: list[str],
) -> CaseFiles | None:
    empty = [column for column in columns if not row.get(column)]
    if empty:
        problems.append(f"{where}: case '{case_id}' has no file for channel(s) {empty}")
        return None
    channels = tuple(_resolve(root, row[column]) for column in columns)
    label = _resolve(root, row[LABEL]) if row.get(LABEL) else None
    mask = _resolve(root, row[MASK]) if row.get(MASK) else None
    return CaseFiles(case_id, channels, label, mask)


def _split(where: str, row: dict[str, str], problems: list[str]) -> str | None:
    text = (row.get(SPLIT) or "").lower()
    if not text:
        return "training" if row.get(LABEL) else "test"
    split = _SPLITS.get(text)
    if split is None:
        problems.append(
            f"{where}: split {row[SPLIT]!r} is neither 'training' nor 'test'"
        )
    elif split == "training" and not row.get(LABEL):
        problems.append(
            f"{where}: case '{row[CASE_ID]}' is a training case without a label; "
            "add its label file or make it a test case"
        )
        return None
    return split


def _resolve(root: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else root / path
