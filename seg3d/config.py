"""Frozen dataclasses from plain dicts (TOML, JSON), every key and type checked.

A configuration is read once, at the boundary, into frozen dataclasses; code
past that point trusts it. Errors name the dotted key, what was expected and
what was found, so a user can fix a TOML file in one pass.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from seg3d.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

Config = TypeVar("Config")


def read_toml(path: Path | str) -> dict[str, Any]:
    """Read a TOML file, turning syntax errors into :class:`ConfigError`."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: no such configuration file") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from err


def from_dict(cls: type[Config], data: dict[str, Any], section: str = "") -> Config:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and bad types.

    Args:
        cls: a dataclass whose fields are annotated with ``int``, ``float``,
            ``bool``, ``str``, ``Literal[...]``, ``tuple[X, ...]``, ``dict[str, X]``,
            ``X | None`` or another such dataclass.
        data: plain values, e.g. one TOML table.
        section: dotted prefix of ``data`` in the file, for messages.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{section or 'configuration'} must be a table, not {data!r}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields))
        raise ConfigError(
            f"unknown key {_key(section, unknown[0])!s}; known keys here: {known}"
        )
    values = {
        name: _convert(value, hints[name], _key(section, name))
        for name, value in data.items()
    }
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{section or cls.__name__}: {err}") from err


def to_dict(config: Any) -> dict[str, Any]:
    """Plain TOML/JSON-able values of a config dataclass (``None`` left out)."""
    result = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if value is None:
            continue
        result[field.name] = _plain(value)
    return result


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return to_dict(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _key(section: str, name: str) -> str:
    return f"{section}.{name}" if section else name


def _convert(value: Any, hint: Any, key: str) -> Any:
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin is Literal:
        choices = get_args(hint)
        if value not in choices:
            listed = ", ".join(repr(c) for c in choices)
            raise ConfigError(f"{key} must be one of {listed}, not {value!r}")
        return value
    if origin is tuple:
        return _convert_tuple(value, get_args(hint), key)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a table, not {value!r}")
        _, value_hint = get_args(hint)
        return {str(k): _convert(v, value_hint, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, key)
    return _convert_scalar(value, hint, key)


def _convert_tuple(value: Any, args: tuple, key: str) -> tuple:
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{key} must be a list, not {value!r}")
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
    if len(value) != len(args):
        raise ConfigError(f"{key} must have {len(args)} items, not {len(value)}")
    return tuple(
        _convert(v, a, f"{key}[{i}]")
        for i, (v, a) in enumerate(zip(value, args, strict=True))
    )


def _convert_scalar(value: Any, hint: Any, key: str) -> Any:
    # bool is an int in Python; a config that says `epochs = true` is a mistake.
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif hint is Any:
        return value
    else:
        raise TypeError(f"unsupported config type {hint!r} for {key}")
    name = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"{key} must be {_article(name)} {name}, not {value!r}")


def _article(name: str) -> str:
    return "an" if name[0] in "aeiou" else "a"
