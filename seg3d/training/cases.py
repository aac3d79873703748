"""The cases a run trains and validates on: loaded, split and preprocessed once."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seg3d.data.case import Case
from seg3d.data.dataset import open_dataset
from seg3d.data.validation import load_cases
from seg3d.errors import DatasetError
from seg3d.io import Reorientation
from seg3d.preprocessing import PreprocessedCase, PreprocessingConfig, preprocess_case
from seg3d.training.config import DataSplit

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class TrainingCases:
    """Preprocessed cases of one run and what the model must know of them.

    Attributes:
        source: the dataset folder or case list.
        channel_names: one name per image channel.
        labels: label name to value, background (0) first, in class order.
        preprocessing: what was done to every case (with the target spacing
            filled in where the run chose the median), for the checkpoint.
        training: cases the sampler draws from.
        validation: cases segmented whole to measure Dice.
    """

    source: Path
    channel_names: tuple[str, ...]
    labels: dict[str, int]
    preprocessing: PreprocessingConfig
    training: list[PreprocessedCase]
    validation: list[PreprocessedCase]

    @property
    def label_values(self) -> tuple[int, ...]:
        return tuple(self.labels.values())

    @property
    def median_spacing(self) -> tuple[float, float, float]:
        spacings = np.array([case.spacing for case in self.training])
        return tuple(float(s) for s in np.median(spacings, axis=0))


def prepare_cases(
    data: Path,
    preprocessing: PreprocessingConfig,
    split: DataSplit,
    seed: int,
    fixed_split: tuple[list[str], list[str]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> TrainingCases:
    """Load, check, split and preprocess a dataset's training cases.

    Args:
        data: dataset folder (Decathlon layout) or CSV case list.
        preprocessing: what to do to every case.
        split: how validation cases are chosen.
        seed: seed of a random split.
        fixed_split: training and validation case ids of a run being resumed,
            so that the split never changes under it.
        progress: called with each case id once it is loaded.

    Raises:
        DatasetError: the dataset has problems (all listed), no labelled
            case, or no foreground voxel anywhere.
    """
    dataset = open_dataset(data)
    cases = load_cases(dataset, "training", progress=progress)
    if not cases:
        raise DatasetError(
            f"{dataset.source}: no labelled training cases; add cases to imagesTr "
            "and labelsTr (or rows with a label to the case list)"
        )
    if not any(np.any(case.label_map) for case in cases):
        raise DatasetError(
            f"{dataset.source}: no training case has a foreground voxel (every "
            "label map is all 0); check that the label files are the right ones"
        )
    training_ids, validation_ids = fixed_split or split_case_ids(
        [case.case_id for case in cases], split, seed
    )
    by_id = {case.case_id: case for case in cases}
    missing = [i for i in training_ids + validation_ids if i not in by_id]
    if missing:
        raise DatasetError(
            f"{dataset.source}: case {missing[0]} of the run's split is not in the "
            "dataset any more; resume with the dataset the run was trained on"
        )
    if preprocessing.target_spacing is None and split.spacing == "median":
        spacing = median_canonical_spacing([by_id[i] for i in training_ids])
        logger.info("resampling every case to the median spacing %s mm", spacing)
        preprocessing = dataclasses.replace(preprocessing, target_spacing=spacing)
    processed = {i: preprocess_case(by_id[i], preprocessing) for i in by_id}
    logger.info(
        "%d training and %d validation cases from %s",
        len(training_ids),
        len(validation_ids),
        dataset.source,
    )
    return TrainingCases(
        source=Path(data),
        preprocessing=preprocessing,
        channel_names=dataset.channel_names,
        labels=dataset.labels,
        training=[processed[i] for i in training_ids],
        validation=[processed[i] for i in validation_ids],
    )


def median_canonical_spacing(cases: list[Case]) -> tuple[float, float, float]:
    """Median voxel size (mm) along the canonical RAS axes of ``cases``."""
    spacings = []
    for case in cases:
        reorientation = Reorientation.for_grid(case.affine, case.spatial_shape)
        linear = reorientation.canonical_affine(case.affine)[:3, :3]
        spacings.append(np.sqrt((linear**2).sum(axis=0)))
    median = np.median(np.array(spacings), axis=0)
    return tuple(float(round(s, 4)) for s in median)  # type: ignore[return-value]


def split_case_ids(
    case_ids: list[str], split: DataSplit, seed: int
) -> tuple[list[str], list[str]]:
    """Training and validation ids: the named ones, or a seeded random share."""
    if split.validation_cases:
        unknown = sorted(set(split.validation_cases) - set(case_ids))
        if unknown:
            raise DatasetError(
                f"data.validation_cases names {unknown[0]}, which is not a training "
                f"case; known cases: {', '.join(case_ids[:10])}"
            )
        validation = [i for i in case_ids if i in split.validation_cases]
    else:
        count = round(split.validation_fraction * len(case_ids))
        if split.validation_fraction > 0 and len(case_ids) > 1:
            count = max(count, 1)
        order = np.random.default_rng(seed).permutation(len(case_ids))
        validation = sorted(case_ids[i] for i in order[:count])
    training = [i for i in case_ids if i not in validation]
    if not training:
        raise DatasetError(
            "every case is held out for validation; keep some to train on"
        )
    return training, validation
