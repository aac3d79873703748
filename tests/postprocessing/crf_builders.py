"""Synthetic CRF cases for the postprocessing tests, truth known by construction."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def small_case(seed: int = 0, shape=(12, 12, 12)):
    """A 2-channel, 3-class case small enough for an O(N^2) mean field.

    Returns ``(probabilities (3, I, J, K) float32, image (2, I, J, K) float32,
    label_map (I, J, K) int64)``: a ball (class 1) with one half class 2,
    intensities that follow the classes, and probabilities with strong noise so
    that the CRF has work to do.
    """
    rng = np.random.default_rng(seed)
    grid = np.stack(
        np.meshgrid(*[np.arange(n) - (n - 1) / 2 for n in shape], indexing="ij")
    )
    radius = np.sqrt((grid**2).sum(0))
    label_map = np.zeros(shape, dtype=np.int64)
    label_map[radius < 4.5] = 1
    label_map[(grid[0] > 1) & (radius < 4.5)] = 2
    image = np.stack(
        [
            label_map + rng.normal(0.0, 0.2, shape),
            (label_map == 1) * 1.0 + rng.normal(0.0, 0.2, shape),
        ]
    ).astype(np.float32)
    logits = 2.0 * np.stack([label_map == c for c in range(3)])
    logits = logits + rng.normal(0.0, 1.2, (3, *shape))
    return softmax(logits).astype(np.float32), image, label_map


def noisy_case(seed: int, shape=(40, 40, 32), spacing=(1.0, 1.0, 1.5)):
    """A 2-channel, 3-class case whose probabilities a network might produce.

    Two touching balls (classes 1 and 2) in background. The probabilities have
    blurred borders, smooth noise twice as strong inside the structures as
    outside (label-correlated), and about 25 small blobs of false positives
    in the background, whose intensities are background's.

    Returns ``(probabilities, image, label_map, spacing)``.
    """
    rng = np.random.default_rng(seed)
    axes = [
        (np.arange(n) - (n - 1) / 2) * step
        for n, step in zip(shape, spacing, strict=True)
    ]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"))
    label_map = np.zeros(shape, dtype=np.int64)
    label_map[_distance(grid, (-4.0, 0.0, 0.0)) < 11.0] = 1
    label_map[_distance(grid, (6.0, 3.0, 0.0)) < 6.0] = 2
    means = np.array([[0.0, 0.0], [1.5, 0.5], [0.8, 2.0]])  # (class, channel)
    image = np.stack([means[label_map, c] for c in range(2)])
    image = (image + rng.normal(0.0, 0.25, image.shape)).astype(np.float32)

    one_hot = np.stack([label_map == c for c in range(3)]).astype(np.float64)
    blurred = np.stack([ndimage.gaussian_filter(o, 2.0) for o in one_hot])
    noise = np.stack(
        [ndimage.gaussian_filter(rng.normal(0.0, 1.0, shape), 1.0) for _ in range(3)]
    )
    noise *= 3.0 * (1.0 + (label_map > 0))
    logits = 4.0 * blurred + noise
    seeds = np.zeros(shape, dtype=bool)
    seeds[tuple(rng.integers(0, shape, (25, 3)).T)] = True
    false_positive = ndimage.binary_dilation(seeds) & (label_map == 0)
    wrong_class = rng.integers(1, 3, shape)
    for value in (1, 2):
        logits[value][false_positive & (wrong_class == value)] += 4.0
    return softmax(logits).astype(np.float32), image, label_map, spacing


def softmax(logits: np.ndarray) -> np.ndarray:
    exponentials = np.exp(logits - logits.max(0))
    return exponentials / exponentials.sum(0)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def _distance(grid: np.ndarray, centre) -> np.ndarray:
    return np.sqrt(((grid - np.array(centre)[:, None, None, None]) ** 2).sum(0))
