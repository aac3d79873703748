"""NetworkConfig: paper defaults, profiles, plain-data round trip, validation."""

from __future__ import annotations

import pytest

from seg3d.config import read_toml
from seg3d.errors import ConfigError
from seg3d.model.config import PROFILES, NetworkConfig


def test_defaults_are_the_paper_network():
    config = NetworkConfig()

    assert config.feature_maps == (30, 30, 40, 40, 40, 40, 50, 50)
    assert config.kernel_sizes == (3,) * 8
    assert config.factors == (1, 3)
    assert config.pathway_feature_maps == (config.feature_maps,) * 2
    assert config.head_widths == (150, 150)
    # 50 % dropout before the last two layers: the second 150 and the classifier.
    assert config.head_dropout == (0.0, 0.5, 0.5)
    assert config.residual_layers == ()
    assert config.shrinkage == 16
    assert NetworkConfig.profile("paper") == config


def test_paper_segments_match_the_paper():
    geometry = NetworkConfig().geometry_for_input(25)

    assert geometry.output_shape == (9, 9, 9)
    assert geometry.pathways[1].input_shape == (19, 19, 19)
    assert [p.receptive_field for p in geometry.pathways] == [17, 51]


@pytest.mark.parametrize("name", sorted(PROFILES), ids=sorted(PROFILES))
def test_profiles_round_trip_through_toml_files(name, tmp_path):
    config = NetworkConfig.profile(name)
    path = tmp_path / "network.toml"
    lines = [f"{key} = {_toml(value)}" for key, value in config.to_dict().items()]
    path.write_text("\n".join(lines))

    assert NetworkConfig.from_dict(read_toml(path)) == config


def test_profile_overrides_replace_fields():
    config = NetworkConfig.profile("cpu", in_channels=4, num_classes=3)

    assert (config.in_channels, config.num_classes) == (4, 3)
    assert config.feature_maps == tuple(PROFILES["cpu"]["feature_maps"])


def test_multiscale_profile_has_x3_x5_and_residuals():
    config = NetworkConfig.profile("multiscale")

    assert config.factors == (1, 3, 5)
    assert config.residual_layers == (4, 6, 8)
    assert config.alignment == 15


def test_unknown_profile_names_the_choices():
    with pytest.raises(ConfigError, match=r"unknown network profile 'huge'.*paper"):
        NetworkConfig.profile("huge")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"featuremaps": [3]}, r"unknown key network\.featuremaps"),
        ({"in_channels": True}, r"network\.in_channels must be an int, not True"),
        ({"in_channels": 1.0}, r"network\.in_channels must be an int, not 1\.0"),
        ({"batch_norm": 1}, r"network\.batch_norm must be a bool, not 1"),
        ({"feature_maps": 30}, r"network\.feature_maps must be a list, not 30"),
        ({"feature_maps": [30, "40"]}, r"network\.feature_maps\[1\] must be an int"),
        ({"activation": "tanh"}, r"network\.activation must be one of 'prelu'"),
        (
            {"kernel_sizes": [3, 3]},
            r"network\.kernel_sizes must have one entry per layer \(8\), not 2",
        ),
        ({"kernel_sizes": [3] * 7 + [4]}, r"network\.kernel_sizes must be odd"),
        ({"subsampling_factors": [2]}, r"network\.subsampling_factors must be odd"),
        (
            {"subsampled_feature_maps": [[30] * 8, [30] * 8]},
            r"network\.subsampled_feature_maps must list one pathway per",
        ),
        (
            {"subsampled_feature_maps": [[30] * 7]},
            r"entries must have 8 positive values",
        ),
        ({"residual_layers": [1]}, r"network\.residual_layers are 1-based .* 2 to 8"),
        ({"residual_layers": [9]}, r"network\.residual_layers are 1-based"),
        ({"head_dropout": [0.5]}, r"network\.head_dropout must have one rate per"),
        ({"head_dropout": [0.0, 0.5, 1.0]}, r"rates must be in \[0, 1\)"),
        ({"num_classes": 1}, r"network\.num_classes must be at least 2"),
    ],
    ids=[
        "unknown-key",
        "bool-for-int",
        "float-for-int",
        "int-for-bool",
        "scalar-for-list",
        "str-in-list",
        "bad-activation",
        "kernel-count",
        "even-kernel",
        "even-factor",
        "too-many-pathways",
        "wrong-depth",
        "residual-too-low",
        "residual-too-high",
        "dropout-count",
        "dropout-one",
        "one-class",
    ],
)
def test_bad_values_are_rejected_naming_the_key(values, message):
    with pytest.raises(ConfigError, match=message):
        NetworkConfig.from_dict(values)


def test_direct_construction_is_validated_too():
    with pytest.raises(ConfigError, match=r"feature_maps must list at least one"):
        NetworkConfig(feature_maps=(), kernel_sizes=())


def test_a_table_that_is_not_a_mapping_is_rejected():
    with pytest.raises(ConfigError, match=r"\[network\] must be a table, not list"):
        NetworkConfig.from_dict([1, 2])  # type: ignore[arg-type]


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        NetworkConfig().in_channels = 2  # type: ignore[misc]


def _toml(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)
