"""Tune the dense CRF of a trained run on that run's validation cases.

The cases are predicted exactly as ``seg3d predict`` would (on their own grid),
so the parameters found are the ones that help ``seg3d predict --crf``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from seg3d.data.dataset import open_dataset
from seg3d.data.loading import load_case
from seg3d.errors import Seg3dError
from seg3d.inference.pipeline import CasePredictor
from seg3d.inference.trained_model import load_trained_model
from seg3d.postprocessing.case_grid import canonical_crf_inputs
from seg3d.postprocessing.settings import (
    Postprocessing,
    store_postprocessing,
    stored_postprocessing,
)
from seg3d.postprocessing.tuning import CrfTuningCase, CrfTuningResult, tune_crf
from seg3d.sampling.centres import class_index_map
from seg3d.training.checkpoint import load_checkpoint
from seg3d.training.run_folder import LAST_CHECKPOINT, model_file_in

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunTuning:
    """The search's result and where the parameters were stored."""

    result: CrfTuningResult
    stored_in: Path
    case_ids: tuple[str, ...]


def tune_run_crf(
    run_dir: Path,
    trials: int = 40,
    seed: int = 0,
    device: str = "cpu",
    data: Path | None = None,
    progress: Callable[..., None] | None = None,
) -> RunTuning:
    """Search CRF parameters on a run's validation cases and store the best.

    Args:
        run_dir: a run folder written by ``seg3d train``.
        trials: CRF settings to try.
        seed: seed of the search.
        device: where the network and the CRF run.
        data: the dataset, where it has moved since training.
        progress: passed to :func:`seg3d.postprocessing.tuning.tune_crf`.
    """
    model = load_trained_model(model_file_in(run_dir))
    case_ids, dataset_path = _validation_split(run_dir, data)
    dataset = open_dataset(dataset_path)
    files = {f.case_id: f for f in dataset.training}
    predictor = CasePredictor([model], device=device)
    cases = []
    for case_id in case_ids:
        case = load_case(files[case_id], model.channel_names, model.label_values)
        prediction = predictor.predict(case)
        classes = class_index_map(case.label_map, model.label_values, case_id)
        inputs = canonical_crf_inputs(case, prediction.records[0].statistics)
        cases.append(
            CrfTuningCase(
                inputs.to_canonical(prediction.probabilities),
                inputs.image,
                inputs.spacing,
                inputs.reorientation.to_canonical(classes),
                inputs.roi_mask,
            )
        )
    current = stored_postprocessing(run_dir)
    result = tune_crf(
        cases, trials, start=current.crf, seed=seed, device=device, progress=progress
    )
    settings = Postprocessing(result.best.params, current.components)
    path = store_postprocessing(run_dir, settings)
    logger.info(
        "CRF on %d validation cases: Dice %.4f without, %.4f with the best parameters",
        len(cases),
        result.baseline_dice,
        result.best.mean_dice,
    )
    return RunTuning(result, path, tuple(case_ids))


def _validation_split(run_dir: Path, data: Path | None) -> tuple[list[str], Path]:
    payload = load_checkpoint(run_dir / LAST_CHECKPOINT)
    state = payload.get("training") or {}
    case_ids = list(state.get("split", {}).get("validation", []))
    if not case_ids:
        raise Seg3dError(
            f"{run_dir} has no validation cases to tune the CRF on; train with "
            "data.validation_fraction > 0 or data.validation_cases"
        )
    dataset = data if data is not None else Path(state["data"])
    if not dataset.exists():
        raise Seg3dError(
            f"{run_dir} was trained on {dataset}, which is gone; pass --data with "
            "the dataset's new place"
        )
    return case_ids, dataset
