"""What preprocessing does to a case, as a frozen, validated configuration.

The configuration is read from a TOML or JSON table such as::

    [preprocessing]
    target_spacing = [1.0, 1.0, 1.0]   # mm along canonical i, j, k; omit to keep
    image_interpolation = "linear"     # or "bspline"
    label_interpolation = "per_label"  # or "nearest"
    crop = "roi"                       # or "nonzero", "none"
    crop_margin = 4                    # voxels, one number or three

    [[preprocessing.normalization]]    # one table for all channels, or one each
    scheme = "zscore"

Every key is checked once, when the configuration is built; an unknown key or a
wrong value raises :class:`~seg3d.errors.ConfigError` naming the key.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from seg3d.errors import ConfigError
from seg3d.io.volume import Spacing

SCHEMES = ("zscore", "percentile", "ct_window", "none")
IMAGE_INTERPOLATIONS = ("linear", "bspline")
LABEL_INTERPOLATIONS = ("nearest", "per_label")
CROPS = ("roi", "nonzero", "none")

# Keys that only mean something for one scheme; giving them for another scheme
# is almost always a typo in the scheme name, so it is an error.
_SCHEME_KEYS = {"percentile": "percentiles", "ct_window": "window"}


@dataclass(frozen=True)
class ChannelNormalization:
    """How one channel's intensities are normalised.

    Every scheme ends as ``(clip(x, low, high) - offset) / scale``; the values
    actually used for a case are kept in its
    :class:`~seg3d.preprocessing.record.ChannelStatistics`.

    Attributes:
        scheme: ``"zscore"`` subtracts the mean and divides by the standard
            deviation of the channel over the case's ROI mask, or where there is
            none over the channel's non-zero voxels, or where all are zero over
            all voxels. ``"percentile"`` first clips to the ``percentiles`` of
            the same voxels, then z-scores the clipped values over them.
            ``"ct_window"`` clips to the fixed ``window`` (e.g. HU) and maps it
            linearly onto [-1, 1], so that a CT channel sits on the same scale
            as z-scored channels around 0. ``"none"`` leaves the channel as is.
        percentiles: ``(low, high)`` percentiles in [0, 100] for
            ``"percentile"``.
        window: ``(low, high)`` intensities for ``"ct_window"``; required there.
    """

    scheme: str = "zscore"
    percentiles: tuple[float, float] = (0.5, 99.5)
    window: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        _check_choice("scheme", self.scheme, SCHEMES)
        low, high = _number_pair("percentiles", self.percentiles)
        if not 0.0 <= low < high <= 100.0:
            raise ConfigError(
                f"percentiles must satisfy 0 <= low < high <= 100, not [{low}, {high}]"
            )
        object.__setattr__(self, "percentiles", (low, high))
        if self.window is None:
            if self.scheme == "ct_window":
                raise ConfigError(
                    'window is required for scheme "ct_window"; give [low, high], '
                    "e.g. [-100, 300] HU"
                )
            return
        if self.scheme != "ct_window":
            raise ConfigError(
                f'window applies only to scheme "ct_window", not to "{self.scheme}"; '
                "remove it or change the scheme"
            )
        low, high = _number_pair("window", self.window)
        if not low < high:
            raise ConfigError(f"window must have low < high, not [{low}, {high}]")
        object.__setattr__(self, "window", (low, high))

    def to_dict(self) -> dict[str, Any]:
        """The keys that matter for this scheme, as plain lists and strings."""
        data: dict[str, Any] = {"scheme": self.scheme}
        if self.scheme == "percentile":
            data["percentiles"] = list(self.percentiles)
        if self.window is not None:
            data["window"] = list(self.window)
        return data

    @classmethod
    def from_dict(cls, data: Any, key: str = "normalization") -> ChannelNormalization:
        """Build from a table; errors name ``key`` and the offending entry."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{key} must be a table with a 'scheme', not {data!r}")
        _check_known_keys(data, ("scheme", "percentiles", "window"), key)
        scheme = data.get("scheme", "zscore")
        _check_choice(f"{key}.scheme", scheme, SCHEMES)
        for scheme_key in ("percentiles", "window"):
            if scheme_key in data and _SCHEME_KEYS.get(scheme) != scheme_key:
                raise ConfigError(
                    f"{key}.{scheme_key} applies only to scheme "
                    f'"{_owner(scheme_key)}", not to "{scheme}"; remove it '
                    "or change the scheme"
                )
        return _with_prefix(key, cls, **data)


@dataclass(frozen=True)
class PreprocessingConfig:
    """Everything preprocessing does to every case, in the order it does it.

    Cases are reoriented to the closest RAS+ axes, resampled to
    ``target_spacing``, cropped and normalised.

    Attributes:
        normalization: one :class:`ChannelNormalization` applied to every
            channel, or one per channel in channel order.
        target_spacing: voxel size in mm along the canonical (RAS+) i, j, k
            axes, or ``None`` to keep each case's own spacing (no resampling).
        image_interpolation: ``"linear"`` or ``"bspline"`` (cubic B-spline,
            which is sharper but may overshoot at edges).
        label_interpolation: ``"nearest"``, or ``"per_label"``: each label's
            indicator is resampled linearly and every voxel takes the label
            with the largest value, which avoids the staircase edges of nearest
            neighbour on anisotropic scans. Also used by
            :func:`~seg3d.preprocessing.inverse.restore_label_map`.
        crop: ``"roi"`` crops to the bounding box of the ROI mask (cases
            without one fall back to ``"nonzero"``), ``"nonzero"`` to the box of
            voxels non-zero in any channel, ``"none"`` keeps the whole grid.
        crop_margin: voxels of the resampled grid kept around the box along
            i, j, k (one number is used for all three).
    """

    normalization: tuple[ChannelNormalization, ...] = field(
        default_factory=lambda: (ChannelNormalization(),)
    )
    target_spacing: Spacing | None = None
    image_interpolation: str = "linear"
    label_interpolation: str = "per_label"
    crop: str = "roi"
    crop_margin: tuple[int, int, int] = field(default=(0, 0, 0))

    def __post_init__(self) -> None:
        object.__setattr__(self, "normalization", _normalizations(self.normalization))
        if self.target_spacing is not None:
            spacing = _positive_triple("target_spacing", self.target_spacing)
            object.__setattr__(self, "target_spacing", spacing)
        _check_choice(
            "image_interpolation", self.image_interpolation, IMAGE_INTERPOLATIONS
        )
        _check_choice(
            "label_interpolation", self.label_interpolation, LABEL_INTERPOLATIONS
        )
        _check_choice("crop", self.crop, CROPS)
        object.__setattr__(self, "crop_margin", _margin(self.crop_margin))

    def normalization_for(self, num_channels: int) -> tuple[ChannelNormalization, ...]:
        """One normalisation per channel; a single entry serves every channel."""
        if len(self.normalization) == 1:
            return self.normalization * num_channels
        if len(self.normalization) != num_channels:
            raise ConfigError(
                f"normalization has {len(self.normalization)} entries but the case "
                f"has {num_channels} channels; give one entry for all channels or "
                "one per channel"
            )
        return self.normalization

    def to_dict(self) -> dict[str, Any]:
        """Plain lists, numbers and strings; ``target_spacing`` is left out when
        ``None``, since TOML has no null."""
        data: dict[str, Any] = {
            "normalization": [entry.to_dict() for entry in self.normalization],
            "image_interpolation": self.image_interpolation,
            "label_interpolation": self.label_interpolation,
            "crop": self.crop,
            "crop_margin": list(self.crop_margin),
        }
        if self.target_spacing is not None:
            data["target_spacing"] = list(self.target_spacing)
        return data

    @classmethod
    def from_dict(cls, data: Any, key: str = "preprocessing") -> PreprocessingConfig:
        """Build from a TOML/JSON table; missing keys take their defaults.

        Raises:
            ConfigError: an unknown key or a wrong value, naming the key as
                ``preprocessing.<key>``.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"{key} must be a table of options, not {data!r}")
        known = tuple(cls.__dataclass_fields__)
        _check_known_keys(data, known, key)
        values = dict(data)
        if "normalization" in values:
            values["normalization"] = _normalizations_from_data(
                values["normalization"], f"{key}.normalization"
            )
        return _with_prefix(key, cls, **values)


def _normalizations(value: Any) -> tuple[ChannelNormalization, ...]:
    entries = (value,) if isinstance(value, ChannelNormalization) else value
    if not isinstance(entries, Sequence) or isinstance(entries, str) or not entries:
        raise ConfigError(
            f"normalization must be one or more normalisation tables, not {value!r}"
        )
    for entry in entries:
        if not isinstance(entry, ChannelNormalization):
            raise ConfigError(
                f"normalization entries must be ChannelNormalization, not {entry!r}"
            )
    return tuple(entries)


def _normalizations_from_data(value: Any, key: str) -> tuple[ChannelNormalization, ...]:
    if isinstance(value, Mapping):
        return (ChannelNormalization.from_dict(value, key),)
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise ConfigError(
            f"{key} must be a table or a non-empty list of tables, not {value!r}"
        )
    return tuple(
        ChannelNormalization.from_dict(entry, f"{key}[{index}]")
        for index, entry in enumerate(value)
    )


def _with_prefix(key: str, cls: type, **values: Any) -> Any:
    # Field checks name the bare field; tables read from a file name the full
    # path of the key, so the message points at the line to fix.
    try:
        return cls(**values)
    except ConfigError as err:
        message = str(err)
        if message.startswith(key):
            raise
        raise ConfigError(f"{key}.{message}") from None


def _check_known_keys(data: Mapping, known: Sequence[str], key: str) -> None:
    for name in data:
        if name not in known:
            raise ConfigError(
                f"{key}.{name} is not a known option; known options are "
                f"{', '.join(known)}"
            )


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        options = ", ".join(f'"{c}"' for c in choices)
        raise ConfigError(f"{name} must be one of {options}, not {value!r}")


def _is_number(value: Any) -> bool:
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    return number and math.isfinite(value)


def _is_count(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _items(value: Any, length: int) -> list | None:
    """The entries of a list, tuple or 1D array of ``length``, else ``None``."""
    if isinstance(value, np.ndarray):
        value = value.tolist() if value.ndim == 1 else None
    if isinstance(value, list | tuple) and len(value) == length:
        return list(value)
    return None


def _number_pair(name: str, value: Any) -> tuple[float, float]:
    values = _items(value, 2)
    if values is None or not all(_is_number(v) for v in values):
        raise ConfigError(f"{name} must be two numbers [low, high], not {value!r}")
    return float(values[0]), float(values[1])


def _positive_triple(name: str, value: Any) -> tuple[float, float, float]:
    values = [value] * 3 if _is_number(value) else _items(value, 3)
    if values is None or not all(_is_number(v) and v > 0 for v in values):
        raise ConfigError(
            f"{name} must be one positive number or three, in mm, not {value!r}"
        )
    return float(values[0]), float(values[1]), float(values[2])


def _margin(value: Any) -> tuple[int, int, int]:
    values = [value] * 3 if _is_count(value) else _items(value, 3)
    if values is None or not all(_is_count(v) and v >= 0 for v in values):
        raise ConfigError(
            "crop_margin must be one non-negative integer or three, in voxels, "
            f"not {value!r}"
        )
    return int(values[0]), int(values[1]), int(values[2])


def _owner(scheme_key: str) -> str:
    return next(scheme for scheme, key in _SCHEME_KEYS.items() if key == scheme_key)
