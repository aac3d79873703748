"""Open a dataset in either layout: a Decathlon folder or a CSV case list.

Typical use::

    dataset = open_dataset("sample_data")       # lists files, reads no voxels
    report = validate_dataset(dataset)          # reads every file once
    require_valid(report)                       # DatasetError with all problems
    cases = load_cases(dataset, "training")     # or validate and load in one pass

The layouts are described for users in ``docs/datasets.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from seg3d.data.case_list import open_case_list
from seg3d.data.decathlon import open_decathlon
from seg3d.data.description import DESCRIPTION_FILE, Dataset, parse_label_mapping
from seg3d.data.loading import CaseSummary, load_case
from seg3d.data.validation import (
    ValidationReport,
    load_cases,
    require_valid,
    validate_dataset,
)
from seg3d.errors import DatasetError

__all__ = [
    "CaseSummary",
    "Dataset",
    "ValidationReport",
    "load_case",
    "load_cases",
    "open_dataset",
    "parse_label_mapping",
    "require_valid",
    "validate_dataset",
]


def open_dataset(path: Path | str, labels: Mapping[str, int] | None = None) -> Dataset:
    """Describe the dataset at ``path`` without reading any voxels.

    Args:
        path: a Decathlon / nnU-Net folder (or its ``dataset.json``), or a
            ``.csv`` case list.
        labels: label name to value, background 0 included; replaces the
            labels of ``dataset.json``. A case list needs it unless a
            ``dataset.json`` with ``labels`` lies beside the CSV or no row
            has a label.

    Returns:
        The description; problems found while listing files (orphan labels,
        duplicated case ids, no training cases) are in ``problems``, and
        missing or bad files are found by :func:`validate_dataset`.

    Raises:
        DatasetError: ``path`` is neither layout, or its description is
            unusable (no channel names, labels or case-id column); every such
            problem is listed in the error's ``problems``.
    """
    path = Path(path).expanduser()
    if path.is_file() and path.suffix.lower() == ".csv":
        return open_case_list(path, labels)
    if path.is_file() and path.name == DESCRIPTION_FILE:
        path = path.parent
    if path.is_dir():
        return open_decathlon(path, labels)
    raise DatasetError(
        f"{path}: no such dataset folder or .csv case list; give a folder with "
        f"{DESCRIPTION_FILE} (Decathlon layout) or a .csv file"
    )
