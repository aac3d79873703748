"""From a loaded case to probabilities and a label map on the case's own grid.

Each model preprocesses the case as in its training (reorient, resample,
crop, normalise), predicts densely, optionally averages flipped copies (TTA),
and its probabilities are brought back onto the input grid; the models of an
ensemble are averaged there, so models with different preprocessing can be
combined.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from seg3d.data.case import Case
from seg3d.inference.dense import DensePredictor
from seg3d.inference.trained_model import TrainedModel, check_ensemble
from seg3d.io.writing import label_dtype
from seg3d.postprocessing.case_grid import refine_case_probabilities
from seg3d.postprocessing.components import filter_components
from seg3d.postprocessing.settings import Postprocessing
from seg3d.preprocessing import (
    PreprocessingRecord,
    preprocess_case,
    restore_probabilities,
)

logger = logging.getLogger(__name__)

# A model trained at one spacing sees anatomy at another scale beyond this.
_SPACING_TOLERANCE = 0.25

Progress = Callable[[int, int], None]


@dataclass(eq=False)
class CasePrediction:
    """What the models say about one case, on the case's own grid.

    Attributes:
        case: the case predicted.
        probabilities: ``(N, I, J, K)`` float32 class probabilities, in the
            case's axis order; background probability 1 outside the ROI.
        label_map: ``(I, J, K)`` uint8/uint16 label values (the dataset's own).
        records: each model's preprocessing of the case, in model order.
    """

    case: Case
    probabilities: np.ndarray
    label_map: np.ndarray
    records: list[PreprocessingRecord]


class CasePredictor:
    """Predicts cases with one model or an ensemble.

    Args:
        models: one or more trained models (sharing channels and labels).
        device: where the networks run.
        precision: ``"float32"`` or ``"bfloat16"``.
        tta: also predict copies flipped along each model's augmentation axes
            and average.
        shift_equivariant: evaluate subsampled pathways at every voxel phase.
        max_memory: activation memory budget in bytes for one block.
        postprocessing: a dense CRF over the averaged probabilities and
            connected-component clean-up of the label map, where set.
    """

    def __init__(
        self,
        models: list[TrainedModel],
        device: torch.device | str = "cpu",
        precision: str = "float32",
        tta: bool = False,
        shift_equivariant: bool = False,
        max_memory: int | None = None,
        postprocessing: Postprocessing | None = None,
    ) -> None:
        check_ensemble(models)
        self.models = models
        self.device = torch.device(device)
        self.postprocessing = postprocessing or Postprocessing()
        self.tta = tta
        self.max_memory = max_memory
        self.predictors = [
            DensePredictor(
                m.network,
                device=device,
                precision=precision,  # type: ignore[arg-type]
                shift_equivariant=shift_equivariant,
            )
            for m in models
        ]

    @property
    def labels(self) -> dict[str, int]:
        return self.models[0].labels

    def predict(self, case: Case, progress: Progress | None = None) -> CasePrediction:
        """Probabilities and label map of ``case`` (image ``(C, I, J, K)``)."""
        total = np.zeros((len(self.labels), *case.spatial_shape), np.float32)
        records = []
        for model, predictor in zip(self.models, self.predictors, strict=True):
            probabilities, record = self._one_model(case, model, predictor, progress)
            total += probabilities
            records.append(record)
        probabilities = total / len(self.models)  # (N, I, J, K)
        if case.roi_mask is not None:
            probabilities[:, ~case.roi_mask] = 0.0
            probabilities[0, ~case.roi_mask] = 1.0
        if self.postprocessing.crf is not None:
            # On the case's grid, after the ensemble is averaged, with the
            # intensities normalised as the first model normalised them.
            probabilities = refine_case_probabilities(
                probabilities,
                case,
                records[0].statistics,
                self.postprocessing.crf,
                self.device,
            )
        label_map = self.label_map(probabilities)
        if self.postprocessing.components is not None:
            label_map, _ = filter_components(
                label_map, case.spacing, self.postprocessing.components
            )
        return CasePrediction(case, probabilities, label_map, records)

    def label_map(self, probabilities: np.ndarray) -> np.ndarray:
        """Label values ``(I, J, K)`` of the most probable class per voxel."""
        values = np.asarray(list(self.labels.values()))
        indices = probabilities.argmax(axis=0)
        return values[indices].astype(label_dtype(int(values.max())))

    def _one_model(
        self,
        case: Case,
        model: TrainedModel,
        predictor: DensePredictor,
        progress: Progress | None,
    ) -> tuple[np.ndarray, PreprocessingRecord]:
        _warn_about_spacing(case, model)
        processed = preprocess_case(_without_labels(case), model.preprocessing)
        flips = _flip_sets(model.flip_axes) if self.tta else [()]
        summed = None
        for axes in flips:
            image, roi = _flipped(processed.image, processed.roi_mask, axes)
            probabilities = predictor.predict(
                image, roi, max_memory=self.max_memory, progress=progress
            )
            probabilities = _flipped(probabilities, None, axes)[0]
            summed = probabilities if summed is None else summed + probabilities
        mean = summed / len(flips)  # (N, i, j, k) on the processed grid
        return restore_probabilities(mean, processed.record), processed.record


def _without_labels(case: Case) -> Case:
    return Case(
        case.case_id, case.image, case.reference, None, case.roi_mask, case.files
    )


def _flip_sets(axes: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Every subset of ``axes``: 2^n flipped copies, the original first."""
    return [
        combination
        for size in range(len(axes) + 1)
        for combination in itertools.combinations(axes, size)
    ]


def _flipped(
    array: np.ndarray, roi: np.ndarray | None, axes: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Flip the spatial ``axes`` of a ``(C, I, J, K)`` array (and an ROI)."""
    if not axes:
        return array, roi
    flipped = np.ascontiguousarray(np.flip(array, axis=[a + 1 for a in axes]))
    if roi is not None:
        roi = np.ascontiguousarray(np.flip(roi, axis=list(axes)))
    return flipped, roi


def _warn_about_spacing(case: Case, model: TrainedModel) -> None:
    if model.preprocessing.target_spacing is not None:
        return
    spacing = np.sort(np.asarray(case.spacing))
    trained = np.sort(np.asarray(model.training_spacing))
    ratio = spacing / trained
    if np.any(np.abs(ratio - 1) > _SPACING_TOLERANCE):
        logger.warning(
            "%s: voxel spacing %s mm differs from the training spacing %s mm and "
            "%s does not resample; expect worse results, or retrain with "
            "preprocessing.target_spacing set",
            case.case_id,
            _fmt(case.spacing),
            _fmt(model.training_spacing),
            model.path,
        )


def _fmt(spacing) -> str:
    return "x".join(f"{s:.3g}" for s in spacing)
