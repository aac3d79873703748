"""Validation during training: segment held-out cases whole, measure Dice."""

from __future__ import annotations

import numpy as np
import torch

from seg3d.inference.dense import DensePredictor
from seg3d.model.config import NetworkConfig
from seg3d.model.network import DeepMedic
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
    names = list(cases.labels)[1:]
    scores: dict[str, list[float]] = {name: [] for name in names}
    network.eval()
    # Folding copies the weights, so the training network is left untouched.
    predictor = DensePredictor(
        network,
        device=device,
        precision="bfloat16" if precision == torch.bfloat16 else "float32",
    )
    with torch.no_grad():
        for case in cases.validation:
            probabilities = predictor.predict(
                case.image, case.roi_mask, block_shape=_aligned(block, network_config)
            )
            segmentation = probabilities.argmax(axis=0)
            truth = _class_indices(case.label_map, cases.label_values)
            for index, name in enumerate(names, start=1):
                scores[name].append(_dice(segmentation == index, truth == index))
    network.train()
    return {name: float(np.mean(values)) for name, values in scores.items()}


def _aligned(block: int, network_config: NetworkConfig) -> int:
    step = network_config.alignment
    return max(step, block // step * step)


def _class_indices(label_map: np.ndarray, label_values: tuple[int, ...]) -> np.ndarray:
    lookup = {value: index for index, value in enumerate(label_values)}
    indices = np.zeros(label_map.shape, dtype=np.int64)
    for value, index in lookup.items():
        indices[label_map == value] = index
    return indices


def _dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    total = prediction.sum() + truth.sum()
    if total == 0:
        return 1.0
    return float(2.0 * np.logical_and(prediction, truth).sum() / total)
