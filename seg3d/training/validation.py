"""Validation during training: segment held-out cases whole, measure Dice."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from seg3d.model.config import NetworkConfig
from seg3d.model.network import DeepMedic
from seg3d.sampling.extraction import extract_segments
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
    with torch.no_grad():
        for case in cases.validation:
            segmentation = segment_volume(
                network, network_config, case.image, device, precision, block
            )
            if case.roi_mask is not None:
                segmentation[~case.roi_mask] = 0
            truth = _class_indices(case.label_map, cases.label_values)
            for index, name in enumerate(names, start=1):
                scores[name].append(_dice(segmentation == index, truth == index))
    network.train()
    return {name: float(np.mean(values)) for name, values in scores.items()}


def segment_volume(
    network: DeepMedic,
    network_config: NetworkConfig,
    image: np.ndarray,
    device: torch.device,
    precision: torch.dtype,
    block: int,
) -> np.ndarray:
    """Class indices ``(I, J, K)`` of a whole preprocessed ``(C, I, J, K)`` image.

    The volume is tiled by prediction blocks whose starts are multiples of the
    subsampling factors, with the same zero padding as the sampler; this is
    exact but slower than :mod:`seg3d.inference`, which folds batch norm.
    """
    step = max(
        network_config.alignment,
        block // network_config.alignment * network_config.alignment,
    )
    geometry = network_config.geometry(step)
    spatial_shape = image.shape[1:]
    segmentation = np.zeros(spatial_shape, dtype=np.int64)
    starts = [range(0, n, step) for n in spatial_shape]
    autocast = precision != torch.float32
    for start in itertools.product(*starts):
        segments = extract_segments(image, geometry, start)
        inputs = [torch.from_numpy(s)[None].to(device) for s in segments]
        with torch.autocast(device.type, dtype=precision, enabled=autocast):
            logits = network(inputs)  # (1, N, step, step, step)
        labels = logits[0].argmax(0).cpu().numpy()
        stop = [min(s + step, n) for s, n in zip(start, spatial_shape, strict=True)]
        size = [b - a for a, b in zip(start, stop, strict=True)]
        segmentation[start[0] : stop[0], start[1] : stop[1], start[2] : stop[2]] = (
            labels[: size[0], : size[1], : size[2]]
        )
    return segmentation


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
