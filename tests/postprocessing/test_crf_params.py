"""CrfParams: documented defaults, a TOML round trip, and named errors."""

from __future__ import annotations

import pytest

from seg3d.config import read_toml
from seg3d.errors import ConfigError
from seg3d.postprocessing.crf_params import CrfParams


def test_defaults_follow_deepmedics_example():
    params = CrfParams()
    assert params.iterations == 5
    assert (params.smoothness_weight, params.smoothness_sigma_mm) == (3.0, (3.0,) * 3)
    assert params.appearance_weight == 5.0
    assert params.appearance_sigma_mm == (17.0, 12.0, 10.0)
    assert params.intensity_sigmas == (0.1,)
    assert params.compatibility is None


def test_toml_round_trip(tmp_path):
    path = tmp_path / "crf.toml"
    path.write_text(
        "[crf]\n"
        "iterations = 8\n"
        "smoothness_sigma_mm = 2\n"
        "appearance_sigma_mm = [10, 10, 5.5]\n"
        "intensity_sigmas = [0.2, 0.4]\n"
        "compatibility = [[0, 1], [1, 0]]\n"
    )
    params = CrfParams.from_dict(read_toml(path)["crf"])
    assert params.smoothness_sigma_mm == (2.0, 2.0, 2.0)
    assert params.appearance_sigma_mm == (10.0, 10.0, 5.5)
    assert params.intensity_sigmas == (0.2, 0.4)
    assert params.compatibility == ((0.0, 1.0), (1.0, 0.0))
    assert CrfParams.from_dict(params.to_dict()) == params
    assert "compatibility" not in CrfParams().to_dict()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"iterations": 0}, "iterations must be at least 1, not 0"),
        ({"iterations": 2.5}, r"crf\.iterations must be an int, not 2\.5"),
        ({"smoothness_weight": -1}, r"smoothness_weight must be >= 0, not -1"),
        ({"smoothness_sigma_mm": 0}, "smoothness_sigma_mm must be positive, not 0"),
        (
            {"appearance_sigma_mm": [1, 2]},
            r"appearance_sigma_mm must be one number or 3 \(along i, j, k\)",
        ),
        ({"intensity_sigmas": []}, r"intensity_sigmas must be positive, not \(\)"),
        (
            {"compatibility": [[0, 1], [2, 0]]},
            r"must be symmetric; entry \[1\]\[0\] is 2",
        ),
        ({"compatibility": [[0, 1, 2], [1, 0, 2]]}, "must be a square matrix"),
        ({"sigma": 3}, r"unknown key crf\.sigma; known keys here: appearance_sigma_mm"),
    ],
    ids=[
        "zero-iterations",
        "fractional-iterations",
        "negative-weight",
        "zero-sigma",
        "two-sigmas",
        "no-intensity-sigma",
        "asymmetric-matrix",
        "non-square-matrix",
        "unknown-key",
    ],
)
def test_bad_values_are_named(table, message):
    with pytest.raises(ConfigError, match=message):
        CrfParams.from_dict(table)


def test_one_intensity_sigma_serves_every_channel():
    assert CrfParams(intensity_sigmas=0.3).intensity_sigmas_for(4) == (0.3,) * 4
    assert CrfParams(intensity_sigmas=(0.3, 0.5)).intensity_sigmas_for(2) == (0.3, 0.5)
