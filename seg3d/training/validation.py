"""Validation during training: segment held-out cases whole, measure Dice."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from seg3d.inference.dense import DensePredictor
from seg3d.metrics.overlap import OverlapCounts, overlap_metrics
from seg3d.model.config import NetworkConfig
from seg3d.model.network import DeepMedic
from seg3d.preprocessing import PreprocessedCase
from seg3d.sampling.centres import class_index_map
from seg3d.training.cases import TrainingCases


def validation_dice(
    network: DeepMedic,
    network_config: NetworkConfig,
    cases: TrainingCases,
    device: torch.device,
    precision: torch.dtype,
    block: int,
) -> dict[str, float]:
    """Mean Dice per foreground class over the validation cases.

    Cases are segmented on their preprocessed grid, inside their ROI; a class
    absent from both truth and prediction of a case counts as Dice 1 there.
    """
    scores = case_dice(
        network,
        network_config,
        cases.validation,
        cases.labels,
        device,
        precision,
        block,
    )
    return mean_over_cases(list(scores.values()), list(cases.labels)[1:])


def case_dice(
    network: DeepMedic,
    network_config: NetworkConfig,
    cases: Sequence[PreprocessedCase],
    labels: Mapping[str, int],
    device: torch.device,
    precision: torch.dtype,
    block: int,
) -> dict[str, dict[str, float]]:
    """Dice per foreground class of each case, by case id (``{}`` for no cases).

    Args:
        labels: label name to value, background first, in class order.
        block: edge of the prediction blocks, in voxels.
    """
    names = list(labels)[1:]
    label_values = tuple(labels.values())
    scores: dict[str, dict[str, float]] = {}
    if not cases:
        return scores
    network.eval()
    # Folding copies the weights, so the training network is left untouched.
    predictor = DensePredictor(
        network,
        device=device,
        precision="bfloat16" if precision == torch.bfloat16 else "float32",
    )
    with torch.no_grad():
        for case in cases:
            probabilities = predictor.predict(
                case.image, case.roi_mask, block_shape=_aligned(block, network_config)
            )
            segmentation = probabilities.argmax(axis=0)
            truth = class_index_map(case.label_map, label_values, case.case_id)
            scores[case.case_id] = {
                name: _dice(segmentation == index, truth == index)
                for index, name in enumerate(names, start=1)
            }
    network.train()
    return scores


def mean_over_cases(
    scores: Sequence[Mapping[str, float]], names: Sequence[str]
) -> dict[str, float]:
    """Mean of each class's Dice over the cases' ``scores``, in their order."""
    return {name: float(np.mean([s[name] for s in scores])) for name in names}


def _aligned(block: int, network_config: NetworkConfig) -> int:
    step = network_config.alignment
    return max(step, block // step * step)


def _dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    return overlap_metrics(OverlapCounts.of_masks(prediction, truth), 1.0).dice
