"""Evaluating prediction files against ground truth, case by case.

Two steps, so that a caller can check its outputs before any voxel is read:
:func:`plan_evaluation` pairs the files and settles the labels and regions;
:func:`run_evaluation` reads each pair, checks grids, measures every structure
and, if asked, draws the case's picture, in parallel processes if asked.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from seg3d.errors import ConfigError
from seg3d.io import check_same_grid, grid_mismatch, read_volume
from seg3d.io.volume import Spacing, Volume
from seg3d.metrics.label_maps import (
    BOTH_EMPTY,
    LabelMapPair,
    StructureMetrics,
    as_label_map,
    voxel_volume_mm3,
)
from seg3d.metrics.matching import CasePair, attach_images, match_cases
from seg3d.metrics.structures import (
    CLASS,
    Structure,
    check_unique_names,
    class_structures,
    find_dataset_json,
    read_dataset_labels,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluationPlan:
    """What will be evaluated, settled before any voxel is read.

    Attributes:
        prediction: the prediction file or folder given.
        truth: the ground-truth file or folder given.
        pairs: the cases, each with its files.
        unmatched_predictions: predictions without ground truth (not evaluated).
        labels: the label values to evaluate as classes, with their names, or
            ``None`` to take every value found in the ground truth.
        label_names: names of label values (``--labels`` over dataset.json).
        regions: regions to evaluate besides the classes.
        dataset_json: the dataset.json names were read from, if any.
    """

    prediction: Path
    truth: Path
    pairs: tuple[CasePair, ...]
    unmatched_predictions: tuple[Path, ...] = ()
    labels: dict[int, str] | None = None
    label_names: dict[int, str] = field(default_factory=dict)
    regions: tuple[Structure, ...] = ()
    dataset_json: Path | None = None

    @property
    def case_ids(self) -> list[str]:
        return [pair.case_id for pair in self.pairs]


def plan_evaluation(
    prediction: Path,
    truth: Path,
    labels: dict[int, str] | None = None,
    regions: Sequence[Structure] = (),
    images: Sequence[Path] = (),
) -> EvaluationPlan:
    """Pair the files and settle what to evaluate.

    Args:
        prediction: a predicted label-map file or folder.
        truth: a ground-truth label-map file or folder.
        labels: label values to evaluate, with names; ``None`` or empty for
            every value found in the ground truth and dataset.json.
        regions: regions (sets of label values) to evaluate as well.
        images: image files or folders to draw pictures on; empty for none.

    Raises:
        DatasetError: missing files, unmatched ground truth, missing images or
            a malformed dataset.json.
        ConfigError: two structures with one name.
    """
    matching = match_cases(prediction, truth)
    pairs = attach_images(matching.pairs, images) if images else matching.pairs
    dataset_json = find_dataset_json(truth)
    names: dict[int, str] = {}
    all_regions = {region.name: region for region in regions}
    if dataset_json is not None:
        dataset = read_dataset_labels(dataset_json)
        names.update(dataset.names)
        for region in dataset.regions:
            all_regions.setdefault(region.name, region)
        logger.info("label names from %s", dataset_json)
    names.update(labels or {})
    known_classes = class_structures(labels or names, names)
    check_unique_names([*known_classes, *all_regions.values()])
    return EvaluationPlan(
        prediction=prediction,
        truth=truth,
        pairs=tuple(pairs),
        unmatched_predictions=matching.unmatched_predictions,
        labels=dict(labels) if labels else None,
        label_names=names,
        regions=tuple(all_regions.values()),
        dataset_json=dataset_json,
    )


@dataclass
class CaseResult:
    """The metrics of one case.

    Attributes:
        case_id: the case.
        prediction: the predicted label map file.
        truth: the ground-truth file.
        spacing: voxel size in mm along i, j, k of the ground truth.
        resampled_from: why the prediction was resampled onto the truth's grid
            (the grid difference), or ``None`` where it was not.
        metrics: structure name to metrics.
        truth_values: non-zero label values in the ground truth.
        prediction_values: non-zero label values in the prediction.
        picture: the case's PNG, if pictures were asked for.
    """

    case_id: str
    prediction: Path
    truth: Path
    spacing: Spacing
    resampled_from: str | None
    metrics: dict[str, StructureMetrics]
    truth_values: set[int]
    prediction_values: set[int]
    picture: bytes | None = None


@dataclass
class Evaluation:
    """Every case's metrics over one list of structures.

    Attributes:
        plan: what was asked for.
        structures: the classes, then the regions, in report order.
        cases: one result per case, in the plan's order; each holds metrics
            for every structure.
    """

    plan: EvaluationPlan
    structures: tuple[Structure, ...]
    cases: list[CaseResult]


def run_evaluation(
    plan: EvaluationPlan,
    jobs: int = 1,
    resample_prediction: bool = False,
    pictures: bool = False,
    on_case_done: Callable[[CaseResult], None] | None = None,
) -> Evaluation:
    """Evaluate every case of ``plan``.

    Args:
        plan: from :func:`plan_evaluation`.
        jobs: processes evaluating cases in parallel; 1 evaluates in this one.
        resample_prediction: resample predictions that are not on the truth's
            grid (nearest neighbour, with a warning) instead of failing.
        pictures: draw each case's picture (needs images in the plan).
        on_case_done: called in this process after each case, in completion
            order, e.g. to advance a progress bar.

    Raises:
        VolumeReadError, GeometryMismatchError, DatasetError: for the first
            case that fails; no other result is returned.
    """
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, not {jobs}")
    if pictures and any(pair.image is None for pair in plan.pairs):
        raise ConfigError("pictures need an image per case; pass --images")
    task = _CaseTask(plan.labels, plan.label_names, plan.regions)
    options = (resample_prediction, pictures)
    cases = _map_cases(task, options, plan.pairs, jobs, on_case_done)
    for case in cases:
        if case.resampled_from is not None:
            logger.warning(
                "%s: prediction resampled onto the truth's grid by nearest "
                "neighbour (%s); the metrics are those of the resampled prediction",
                case.case_id,
                case.resampled_from,
            )
    structures = _final_structures(plan, cases)
    return Evaluation(plan, structures, _complete(cases, structures))


@dataclass(frozen=True)
class _CaseTask:
    """What a worker process needs to evaluate one case (picklable)."""

    labels: dict[int, str] | None
    label_names: dict[int, str]
    regions: tuple[Structure, ...]

    def structures(self, pair: LabelMapPair) -> list[Structure]:
        if self.labels is not None:
            classes = class_structures(self.labels, self.label_names)
        else:
            # Every value present now; values absent here but present in other
            # cases are filled in afterwards as "both empty".
            values = pair.truth_values | pair.prediction_values | set(self.label_names)
            classes = class_structures(values, self.label_names)
        return [*classes, *self.regions]


def _map_cases(
    task: _CaseTask,
    options: tuple[bool, bool],
    pairs: Sequence[CasePair],
    jobs: int,
    on_case_done: Callable[[CaseResult], None] | None,
) -> list[CaseResult]:
    done = on_case_done or (lambda case: None)
    if jobs == 1 or len(pairs) <= 1:
        results = []
        for pair in pairs:
            results.append(evaluate_case(pair, task, *options))
            done(results[-1])
        return results
    by_id: dict[str, CaseResult] = {}
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs) as executor:
        futures = [
            executor.submit(evaluate_case, pair, task, *options) for pair in pairs
        ]
        try:
            for future in concurrent.futures.as_completed(futures):
                result = future.result()
                by_id[result.case_id] = result
                done(result)
        except BaseException:
            # The first failure ends the run: stop the cases not yet started.
            executor.shutdown(wait=True, cancel_futures=True)
            raise
    return [by_id[pair.case_id] for pair in pairs]


def evaluate_case(
    pair: CasePair, task: _CaseTask, resample_prediction: bool, pictures: bool
) -> CaseResult:
    """Read, check and measure one case (runs in a worker process)."""
    truth_volume = read_volume(pair.truth)
    truth = as_label_map(truth_volume)
    prediction_volume = read_volume(pair.prediction)
    prediction_volume.array = as_label_map(prediction_volume)
    mismatch = grid_mismatch(prediction_volume, truth_volume)
    prediction = _on_truth_grid(prediction_volume, truth_volume, resample_prediction)

    label_maps = LabelMapPair(prediction, truth)
    structures = task.structures(label_maps)
    spacing = truth_volume.spacing
    metrics = label_maps.metrics(structures, spacing, voxel_volume_mm3(truth_volume))
    picture = None
    if pictures and pair.image is not None:
        picture = _draw_case(pair, truth_volume, truth, prediction, structures, metrics)
    return CaseResult(
        case_id=pair.case_id,
        prediction=pair.prediction,
        truth=pair.truth,
        spacing=spacing,
        resampled_from=mismatch,
        metrics=metrics,
        truth_values=label_maps.truth_values,
        prediction_values=label_maps.prediction_values,
        picture=picture,
    )


def _on_truth_grid(prediction: Volume, truth: Volume, resample: bool) -> np.ndarray:
    """The prediction's label map on the truth's grid, resampled if allowed."""
    if grid_mismatch(prediction, truth) is None:
        return prediction.array
    if not resample:
        check_same_grid(
            prediction,
            truth,
            remedy="pass --resample-pred to resample the prediction onto the "
            "truth's grid (nearest neighbour)",
        )
    from seg3d.metrics.resampling import resample_nearest

    return resample_nearest(prediction, truth).array


def _draw_case(
    pair: CasePair,
    truth_volume: Volume,
    truth: np.ndarray,
    prediction: np.ndarray,
    structures: Sequence[Structure],
    metrics: dict[str, StructureMetrics],
) -> bytes:
    from seg3d.metrics.pictures import case_mosaic

    image = read_volume(pair.image)
    check_same_grid(
        image, truth_volume, remedy="pass the images the ground truth was drawn on"
    )
    classes = [structure for structure in structures if structure.kind == CLASS]
    return case_mosaic(image, truth, prediction, classes, metrics, pair.case_id)


def _final_structures(
    plan: EvaluationPlan, cases: Sequence[CaseResult]
) -> tuple[Structure, ...]:
    if plan.labels is not None:
        classes = class_structures(plan.labels, plan.label_names)
    else:
        truth_values = set().union(*(case.truth_values for case in cases))
        predicted_only = (
            set().union(*(case.prediction_values for case in cases))
            - truth_values
            - set(plan.label_names)
        )
        if predicted_only:
            logger.warning(
                "predictions hold label values %s that no ground truth holds; "
                "they are not evaluated (name them with --labels to include them)",
                sorted(predicted_only),
            )
        classes = class_structures(
            truth_values | set(plan.label_names), plan.label_names
        )
    structures = (*classes, *plan.regions)
    check_unique_names(structures)
    return structures


def _complete(
    cases: list[CaseResult], structures: Sequence[Structure]
) -> list[CaseResult]:
    """Give every case a result for every structure, in one order.

    A class a case did not measure holds no voxel in either of its label maps
    (the worker measured every value present), so it is "both empty".
    """
    return [
        replace(
            case,
            metrics={
                structure.name: case.metrics.get(structure.name, BOTH_EMPTY)
                for structure in structures
            },
        )
        for case in cases
    ]
