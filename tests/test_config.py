"""Config tables become frozen dataclasses; every bad key or type is named."""

from dataclasses import dataclass, field
from typing import Literal

import pytest

from seg3d.config import from_dict, read_toml, to_dict
from seg3d.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    rate: float = 0.1
    axes: tuple[int, ...] = (0, 1, 2)


@dataclass(frozen=True)
class Outer:
    epochs: int = 10
    loss: Literal["ce", "dice"] = "ce"
    limit: str | None = None
    inner: Inner = field(default_factory=Inner)
    shares: dict[str, float] | None = None


def test_round_trip_through_plain_values():
    config = from_dict(
        Outer, {"epochs": 3, "inner": {"rate": 1, "axes": [2]}, "shares": {"1": 0.5}}
    )
    assert config == Outer(3, "ce", None, Inner(1.0, (2,)), {"1": 0.5})
    assert from_dict(Outer, to_dict(config)) == config


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"epoch": 3}, r"unknown key training\.epoch; known keys here: epochs"),
        ({"epochs": 2.5}, r"training\.epochs must be an int, not 2\.5"),
        ({"epochs": True}, r"training\.epochs must be an int, not True"),
        ({"loss": "mse"}, r"training\.loss must be one of 'ce', 'dice', not 'mse'"),
        ({"inner": {"axes": "012"}}, r"training\.inner\.axes must be a list"),
        ({"inner": {"axes": [0, "1"]}}, r"training\.inner\.axes\[1\] must be an int"),
        ({"inner": {"speed": 1}}, r"unknown key training\.inner\.speed"),
    ],
    ids=[
        "unknown",
        "float-for-int",
        "bool-for-int",
        "choice",
        "list",
        "item",
        "nested",
    ],
)
def test_bad_values_name_the_key(table, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(Outer, table, "training")


def test_toml_syntax_error_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[training\nepochs = 3\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        read_toml(path)
    with pytest.raises(ConfigError, match=r"missing\.toml: no such configuration"):
        read_toml(tmp_path / "missing.toml")
