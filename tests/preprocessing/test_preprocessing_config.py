"""The preprocessing configuration: defaults, TOML/JSON round trip, every error."""

import json

import numpy as np
import pytest
import tomllib

from seg3d.errors import ConfigError
from seg3d.preprocessing import (
    ChannelNormalization,
    PreprocessingConfig,
    preprocess_case,
)

TOML = """
[preprocessing]
target_spacing = [1.0, 1.0, 2.5]
image_interpolation = "bspline"
label_interpolation = "nearest"
crop = "nonzero"
crop_margin = 3

[[preprocessing.normalization]]
scheme = "percentile"
percentiles = [1, 99]

[[preprocessing.normalization]]
scheme = "ct_window"
window = [-100, 300]
"""


def test_reads_toml_and_round_trips_through_json():
    config = PreprocessingConfig.from_dict(tomllib.loads(TOML)["preprocessing"])

    assert config.target_spacing == (1.0, 1.0, 2.5)
    assert config.crop_margin == (3, 3, 3)
    assert config.normalization == (
        ChannelNormalization("percentile", percentiles=(1.0, 99.0)),
        ChannelNormalization("ct_window", window=(-100.0, 300.0)),
    )
    assert (
        PreprocessingConfig.from_dict(json.loads(json.dumps(config.to_dict())))
        == config
    )


def test_defaults_and_a_single_table_for_all_channels():
    config = PreprocessingConfig.from_dict({"normalization": {"scheme": "zscore"}})

    assert config == PreprocessingConfig()
    assert config.target_spacing is None
    assert "target_spacing" not in config.to_dict()
    assert config.normalization_for(3) == (ChannelNormalization(),) * 3


BAD_TABLES = {
    "unknown key": (
        {"spacing": [1, 1, 1]},
        r"preprocessing\.spacing is not a known option",
    ),
    "spacing of text": (
        {"target_spacing": "1mm"},
        r"preprocessing\.target_spacing must be one positive number or three",
    ),
    "zero spacing": (
        {"target_spacing": [1, 0, 1]},
        r"preprocessing\.target_spacing must be .*, not \[1, 0, 1\]",
    ),
    "two spacings": (
        {"target_spacing": [1.0, 1.0]},
        r"preprocessing\.target_spacing must be",
    ),
    "interpolation typo": (
        {"image_interpolation": "cubic"},
        r'preprocessing\.image_interpolation must be one of "linear", "bspline"',
    ),
    "label interpolation": (
        {"label_interpolation": "linear"},
        r"preprocessing\.label_interpolation must be one of",
    ),
    "crop typo": ({"crop": "brain"}, r"preprocessing\.crop must be one of"),
    "negative margin": (
        {"crop_margin": -1},
        r"preprocessing\.crop_margin must be one non-negative integer or three",
    ),
    "boolean margin": ({"crop_margin": True}, r"preprocessing\.crop_margin must be"),
    "fractional margin": (
        {"crop_margin": [1, 2.5, 1]},
        r"preprocessing\.crop_margin must be",
    ),
    "scheme typo": (
        {"normalization": [{"scheme": "zscore"}, {"scheme": "z-score"}]},
        r"preprocessing\.normalization\[1\]\.scheme must be one of",
    ),
    "window missing": (
        {"normalization": {"scheme": "ct_window"}},
        r'preprocessing\.normalization\.window is required for scheme "ct_window"',
    ),
    "window for zscore": (
        {"normalization": [{"scheme": "zscore", "window": [0, 1]}]},
        r'normalization\[0\]\.window applies only to scheme "ct_window"',
    ),
    "reversed window": (
        {"normalization": [{"scheme": "ct_window", "window": [300, -100]}]},
        r"preprocessing\.normalization\[0\]\.window must have low < high",
    ),
    "percentiles out of range": (
        {"normalization": [{"scheme": "percentile", "percentiles": [1, 101]}]},
        r"normalization\[0\]\.percentiles must satisfy 0 <= low < high <= 100",
    ),
    "unknown normalisation key": (
        {"normalization": [{"scheme": "zscore", "mask": "roi"}]},
        r"preprocessing\.normalization\[0\]\.mask is not a known option",
    ),
    "empty normalisation": (
        {"normalization": []},
        r"preprocessing\.normalization must be a table or a non-empty list",
    ),
}


@pytest.mark.parametrize("name", list(BAD_TABLES), ids=list(BAD_TABLES))
def test_bad_values_name_their_key(name):
    table, message = BAD_TABLES[name]

    with pytest.raises(ConfigError, match=message):
        PreprocessingConfig.from_dict(table)


def test_direct_construction_is_validated_too():
    with pytest.raises(ConfigError, match=r"^crop must be one of"):
        PreprocessingConfig(crop="box")
    with pytest.raises(ConfigError, match=r"^window is required"):
        ChannelNormalization("ct_window")
    with pytest.raises(
        ConfigError, match=r'^window applies only to scheme "ct_window"'
    ):
        ChannelNormalization("zscore", window=(0, 1))


def test_accepts_numpy_values():
    config = PreprocessingConfig(
        target_spacing=np.array([1.0, 2.0, 3.0]), crop_margin=np.int64(2)
    )

    assert config.target_spacing == (1.0, 2.0, 3.0)
    assert config.crop_margin == (2, 2, 2)
    json.dumps(config.to_dict())


def test_channel_count_mismatch_is_a_config_error(blob_case):
    config = PreprocessingConfig(
        normalization=(
            ChannelNormalization(),
            ChannelNormalization(),
            ChannelNormalization(),
        )
    )

    with pytest.raises(
        ConfigError, match="normalization has 3 entries but the case has 2"
    ):
        preprocess_case(blob_case("LPS_anisotropic"), config)
