"""Search the CRF's parameters on labelled validation cases.

DeepMedic's authors tuned their CRF by random search on validation data; this
does the same and then spends the second half of its trials refining around
the best point found so far, which finds better settings for the same number
of CRF runs. The score is the mean over cases of the mean foreground Dice
(classes 1..L-1; a class absent from both maps counts as Dice 1).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from seg3d.errors import ConfigError, DatasetError
from seg3d.io.volume import Spacing
from seg3d.metrics.overlap import OverlapCounts, overlap_metrics
from seg3d.postprocessing.crf import apply_crf
from seg3d.postprocessing.crf_params import CrfParams

logger = logging.getLogger(__name__)

# Spread of the refinement's multiplicative steps (log scale): about +-35 %.
_REFINE_STEP = 0.3


class CrfTuningCase(NamedTuple):
    """One labelled case to tune on (a plain tuple in this order works too).

    Attributes:
        probabilities: ``(L, I, J, K)`` float class probabilities.
        image: ``(C, I, J, K)`` float32 normalised intensities.
        spacing: voxel size in mm along i, j, k.
        label_map: ``(I, J, K)`` int class indices 0..L-1 (the channel of
            ``probabilities`` each voxel belongs to), not raw label values.
        roi_mask: ``(I, J, K)`` bool, or ``None``.
    """

    probabilities: np.ndarray
    image: np.ndarray
    spacing: Spacing
    label_map: np.ndarray
    roi_mask: np.ndarray | None = None


@dataclass(frozen=True)
class CrfSearchSpace:
    """Ranges ``(low, high)`` searched, each sampled log-uniformly.

    Random draws are isotropic (one sigma for i, j and k) with one intensity
    sigma for all channels; refinement scales per-axis and per-channel values
    together, keeping their ratios, and bounds their mean. Iterations and
    compatibility stay as in the starting parameters.
    """

    smoothness_weight: tuple[float, float] = (0.5, 10.0)
    smoothness_sigma_mm: tuple[float, float] = (1.0, 6.0)
    appearance_weight: tuple[float, float] = (1.0, 20.0)
    appearance_sigma_mm: tuple[float, float] = (5.0, 30.0)
    intensity_sigma: tuple[float, float] = (0.05, 2.0)

    def __post_init__(self) -> None:
        for name, (low, high) in vars(self).items():
            if not 0 < low <= high:
                raise ConfigError(
                    f"search range {name} must satisfy 0 < low <= high, "
                    f"not [{low}, {high}]"
                )


@dataclass(frozen=True)
class CrfTrial:
    """One set of parameters and how well it did.

    Attributes:
        params: the parameters tried.
        mean_dice: mean over cases of the mean foreground Dice.
        case_dice: the mean foreground Dice of each case, in order.
        seconds: wall time of the trial.
    """

    params: CrfParams
    mean_dice: float
    case_dice: tuple[float, ...]
    seconds: float


@dataclass(frozen=True)
class CrfTuningResult:
    """What a search found.

    Attributes:
        best: the best trial (the first of equals).
        baseline_dice: the same score for the plain argmax, without CRF.
        trials: every trial in the order run; the first is the start point.
    """

    best: CrfTrial
    baseline_dice: float
    trials: tuple[CrfTrial, ...]


ProgressCallback = Callable[[int, int, CrfTrial, CrfTrial], None]
"""Called after each trial with (trials done, trials in all, trial, best so far)."""


def tune_crf(
    cases: Sequence[CrfTuningCase | tuple],
    trials: int = 40,
    *,
    start: CrfParams | None = None,
    space: CrfSearchSpace | None = None,
    seed: int = 0,
    device: str = "cpu",
    progress: ProgressCallback | None = None,
) -> CrfTuningResult:
    """Search CRF parameters that maximise the mean foreground Dice.

    The first trial is ``start``; then half of the remaining trials sample
    ``space`` at random and the rest perturb the best parameters so far.

    Args:
        cases: labelled cases, as :class:`CrfTuningCase` or plain tuples.
        trials: CRF settings to try, ``start`` included.
        start: the first parameters tried (defaults: :class:`CrfParams`).
        space: where to search (defaults: :class:`CrfSearchSpace`).
        seed: seed of the random draws; equal seeds give equal searches.
        device: where the CRF runs, e.g. ``"cpu"`` or ``"cuda"``.
        progress: called after every trial, e.g. to draw a progress bar.

    Returns:
        The best trial, the argmax baseline and every trial.
    """
    cases = [_checked(CrfTuningCase(*case), index) for index, case in enumerate(cases)]
    if not cases:
        raise DatasetError("tuning the CRF needs at least one labelled case; got none")
    if trials < 1:
        raise ConfigError(f"trials must be at least 1, not {trials}")
    start = start or CrfParams()
    space = space or CrfSearchSpace()
    rng = np.random.default_rng(seed)
    baseline = float(np.mean([_case_dice(c.probabilities, c) for c in cases]))
    logger.info("CRF tuning on %d cases; argmax Dice %.4f", len(cases), baseline)

    history: list[CrfTrial] = []
    best = None
    explore = 1 + (trials - 1) // 2
    for index in range(trials):
        if index == 0:
            params = start
        elif index < explore:
            params = _sample(start, space, rng)
        else:
            params = _perturb(best.params, space, rng)
        trial = _run_trial(params, cases, device)
        history.append(trial)
        if best is None or trial.mean_dice > best.mean_dice:
            best = trial
        logger.debug(
            "CRF trial %d: Dice %.4f with %s", index + 1, trial.mean_dice, params
        )
        if progress is not None:
            progress(index + 1, trials, trial, best)
    return CrfTuningResult(best=best, baseline_dice=baseline, trials=tuple(history))


def _run_trial(params: CrfParams, cases: list[CrfTuningCase], device) -> CrfTrial:
    start = time.perf_counter()
    scores = []
    for case in cases:
        refined = apply_crf(
            case.probabilities, case.image, case.spacing, params, case.roi_mask, device
        )
        scores.append(_case_dice(refined, case))
    seconds = time.perf_counter() - start
    return CrfTrial(params, float(np.mean(scores)), tuple(scores), seconds)


def _case_dice(probabilities: np.ndarray, case: CrfTuningCase) -> float:
    """Mean Dice over the foreground classes, inside the ROI if there is one."""
    segmentation = probabilities.argmax(0)
    truth = case.label_map
    if case.roi_mask is not None:
        segmentation, truth = segmentation[case.roi_mask], truth[case.roi_mask]
    dice = [
        overlap_metrics(OverlapCounts.of_masks(segmentation == c, truth == c), 1.0).dice
        for c in range(1, probabilities.shape[0])
    ]
    return float(np.mean(dice))


def _sample(start: CrfParams, space: CrfSearchSpace, rng) -> CrfParams:
    def draw(name: str) -> float:
        low, high = getattr(space, name)
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))

    return replace(
        start,
        smoothness_weight=draw("smoothness_weight"),
        smoothness_sigma_mm=draw("smoothness_sigma_mm"),
        appearance_weight=draw("appearance_weight"),
        appearance_sigma_mm=draw("appearance_sigma_mm"),
        intensity_sigmas=draw("intensity_sigma"),
    )


def _perturb(best: CrfParams, space: CrfSearchSpace, rng) -> CrfParams:
    def step(name: str, value: float) -> float:
        low, high = getattr(space, name)
        moved = value * math.exp(rng.normal(0.0, _REFINE_STEP))
        return float(min(max(moved, low), high))

    # Per-axis and per-channel values move together, keeping their ratios.
    def scaled(name: str, values: tuple[float, ...]) -> tuple[float, ...]:
        factor = step(name, float(np.mean(values))) / float(np.mean(values))
        return tuple(v * factor for v in values)

    return replace(
        best,
        smoothness_weight=step("smoothness_weight", best.smoothness_weight),
        smoothness_sigma_mm=scaled("smoothness_sigma_mm", best.smoothness_sigma_mm),
        appearance_weight=step("appearance_weight", best.appearance_weight),
        appearance_sigma_mm=scaled("appearance_sigma_mm", best.appearance_sigma_mm),
        intensity_sigmas=scaled("intensity_sigma", best.intensity_sigmas),
    )


def _checked(case: CrfTuningCase, index: int) -> CrfTuningCase:
    spatial = case.probabilities.shape[1:]
    if case.label_map.shape != spatial:
        raise DatasetError(
            f"tuning case {index}: label map {case.label_map.shape} does not match "
            f"the probabilities' grid {spatial}"
        )
    num_classes = case.probabilities.shape[0]
    if case.label_map.min() < 0 or case.label_map.max() >= num_classes:
        raise DatasetError(
            f"tuning case {index}: label map holds values outside "
            f"0..{num_classes - 1}; give class indices (the probabilities' channel "
            "of each voxel), not raw label values"
        )
    return case
