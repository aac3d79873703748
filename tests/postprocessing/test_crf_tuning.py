"""tune_crf: a reproducible search that beats where it started."""

from __future__ import annotations

import numpy as np
import pytest
from crf_builders import noisy_case

from seg3d.errors import ConfigError, DatasetError
from seg3d.postprocessing.crf_params import CrfParams
from seg3d.postprocessing.tuning import CrfSearchSpace, CrfTuningCase, tune_crf

# A start with almost no pairwise term: the search has room to improve.
WEAK_START = CrfParams(smoothness_weight=0.1, appearance_weight=0.1, iterations=3)


@pytest.fixture(scope="module")
def cases():
    tuning_cases = []
    for seed in (3, 4):
        probabilities, image, label_map, spacing = noisy_case(seed, shape=(24, 24, 20))
        tuning_cases.append((probabilities, image, spacing, label_map, None))
    return tuning_cases


def test_search_improves_on_its_start_and_reports_progress(cases):
    calls = []
    result = tune_crf(
        cases, trials=8, start=WEAK_START, progress=lambda *args: calls.append(args)
    )

    assert [call[:2] for call in calls] == [(i, 8) for i in range(1, 9)]
    assert len(result.trials) == 8
    assert result.trials[0].params == WEAK_START
    assert result.best.mean_dice == max(t.mean_dice for t in result.trials)
    # Start and argmax score about 0.82; good settings reach above 0.95.
    assert result.best.mean_dice > result.trials[0].mean_dice + 0.1
    assert result.best.mean_dice > result.baseline_dice + 0.1
    assert calls[-1][3] == result.best
    assert all(len(t.case_dice) == 2 for t in result.trials)


def test_equal_seeds_give_equal_searches(cases):
    first = tune_crf(cases[:1], trials=3, start=WEAK_START, seed=5)
    second = tune_crf(cases[:1], trials=3, start=WEAK_START, seed=5)
    assert [t.params for t in first.trials] == [t.params for t in second.trials]
    assert [t.mean_dice for t in first.trials] == [t.mean_dice for t in second.trials]


def test_sampled_parameters_stay_in_the_space(cases):
    space = CrfSearchSpace(
        smoothness_weight=(1.0, 2.0),
        smoothness_sigma_mm=(2.0, 2.0),
        appearance_weight=(3.0, 4.0),
        appearance_sigma_mm=(8.0, 9.0),
        intensity_sigma=(0.2, 0.3),
    )
    result = tune_crf(cases[:1], trials=4, space=space, seed=1)
    for trial in result.trials[1:]:
        params = trial.params
        assert 1.0 <= params.smoothness_weight <= 2.0
        assert params.smoothness_sigma_mm == (2.0, 2.0, 2.0)
        assert 3.0 <= params.appearance_weight <= 4.0
        # Refining the (anisotropic) start keeps its ratios; the mean is bound.
        assert 8.0 <= np.mean(params.appearance_sigma_mm) <= 9.0 + 1e-9
        assert 0.2 <= params.intensity_sigmas[0] <= 0.3


def test_roi_limits_the_score_to_its_voxels(cases):
    probabilities, image, spacing, label_map, _ = cases[0]
    roi = np.zeros(label_map.shape, dtype=bool)
    roi[:12] = True
    case = CrfTuningCase(probabilities, image, spacing, label_map, roi)
    result = tune_crf([case], trials=1, start=CrfParams(appearance_weight=0.0))
    assert 0.0 < result.best.mean_dice <= 1.0


def test_unusable_input_is_refused(cases):
    probabilities, image, spacing, label_map, _ = cases[0]
    with pytest.raises(DatasetError, match="needs at least one labelled case"):
        tune_crf([], trials=2)
    with pytest.raises(ConfigError, match="trials must be at least 1, not 0"):
        tune_crf(cases, trials=0)
    with pytest.raises(
        DatasetError, match=r"values outside 0\.\.2; give class indices"
    ):
        tune_crf([(probabilities, image, spacing, label_map * 2, None)], trials=1)
    with pytest.raises(DatasetError, match="does not match the probabilities' grid"):
        tune_crf([(probabilities, image, spacing, label_map[:-1], None)], trials=1)
    with pytest.raises(
        ConfigError, match=r"intensity_sigma must satisfy 0 < low <= high"
    ):
        CrfSearchSpace(intensity_sigma=(1.0, 0.5))
