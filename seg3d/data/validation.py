"""Checking a whole dataset and reporting every problem in one pass.

Validation reads every file once through :func:`seg3d.data.loading.inspect_case`,
the same reader that loads cases, and keeps going after a problem so that a user
can fix them all before the next run. :func:`load_cases` validates and loads in
the same pass, so a training run reads each file exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from seg3d.data.case import Case, CaseFiles
from seg3d.data.description import Dataset
from seg3d.data.loading import CaseInspection, CaseSummary, inspect_case
from seg3d.errors import DatasetError

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str], None]
"""Called with a case id after each case is read."""

SUBSETS = ("training", "test")


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of :func:`validate_dataset`.

    Attributes:
        dataset: the dataset checked.
        training: one summary per training case, in dataset order.
        test: one summary per test case, in dataset order.
        problems: every problem, one line each naming the file or row:
            those found while listing files first, then each case's.
        warnings: what is odd but usable, e.g. label maps without foreground.
    """

    dataset: Dataset
    training: tuple[CaseSummary, ...]
    test: tuple[CaseSummary, ...]
    problems: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def validate_dataset(
    dataset: Dataset,
    progress: ProgressCallback | None = None,
) -> ValidationReport:
    """Read every file of every case once and collect all problems.

    Args:
        dataset: the dataset to check, from :func:`seg3d.data.dataset.open_dataset`.
        progress: called with each case id once its files are read.

    Returns:
        The report; it raises nothing for problems in files. Use
        :func:`require_valid` to turn problems into a :class:`DatasetError`.
    """
    summaries = {
        subset: tuple(
            _inspect(dataset, files, keep=False, progress=progress).summary
            for files in _subset(dataset, subset)
        )
        for subset in SUBSETS
    }
    cases = summaries["training"] + summaries["test"]
    report = ValidationReport(
        dataset=dataset,
        training=summaries["training"],
        test=summaries["test"],
        problems=dataset.problems + tuple(p for c in cases for p in c.problems),
        warnings=tuple(w for c in cases for w in c.warnings),
    )
    logger.debug(
        "checked %d case(s) of %s: %d problem(s), %d warning(s)",
        len(cases), dataset.source, len(report.problems), len(report.warnings),
    )  # fmt: skip
    return report


def require_valid(report: ValidationReport) -> None:
    """Raise :class:`DatasetError` listing every problem of ``report``, if any."""
    if report.problems:
        raise _dataset_error(report.dataset, report.problems)


def load_cases(
    dataset: Dataset,
    subset: str = "training",
    progress: ProgressCallback | None = None,
) -> list[Case]:
    """Validate and load the cases of one subset, reading each file once.

    Args:
        dataset: the dataset.
        subset: ``"training"`` or ``"test"``.
        progress: called with each case id once its files are read.

    Returns:
        The cases in dataset order, each with image ``(C, I, J, K)`` float32,
        label map and ROI mask as in :func:`seg3d.data.loading.load_case`.

    Raises:
        DatasetError: the dataset or any case of the subset has a problem;
            all of them are listed, so memory is held for the cases read so
            far until the last one is checked.
    """
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, not {subset!r}")
    inspections = [
        _inspect(dataset, files, keep=True, progress=progress)
        for files in _subset(dataset, subset)
    ]
    problems = dataset.problems + tuple(
        problem for inspection in inspections for problem in inspection.summary.problems
    )
    if problems:
        raise _dataset_error(dataset, problems)
    for inspection in inspections:
        for warning in inspection.summary.warnings:
            logger.warning("%s", warning)
    return [inspection.case for inspection in inspections if inspection.case]


def _subset(dataset: Dataset, subset: str) -> tuple[CaseFiles, ...]:
    return dataset.training if subset == "training" else dataset.test


def _inspect(
    dataset: Dataset,
    files: CaseFiles,
    keep: bool,
    progress: ProgressCallback | None,
) -> CaseInspection:
    inspection = inspect_case(files, dataset.channel_names, dataset.label_values, keep)
    if progress is not None:
        progress(files.case_id)
    return inspection


def _dataset_error(dataset: Dataset, problems: tuple[str, ...]) -> DatasetError:
    count = len(problems)
    return DatasetError(
        f"{dataset.source}: {count} problem{'s' if count > 1 else ''} found; "
        "fix every file listed below",
        list(problems),
    )
