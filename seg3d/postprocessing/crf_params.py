"""The dense CRF's parameters: a frozen, validated configuration.

Read from a TOML table such as::

    [crf]
    iterations = 5
    smoothness_weight = 3.0
    smoothness_sigma_mm = 3.0              # one number or [i, j, k]
    appearance_weight = 5.0
    appearance_sigma_mm = [17.0, 12.0, 10.0]
    intensity_sigmas = 0.1                 # normalised units; one, or one per channel

What each parameter means, the intensity scale and how DeepMedic's settings
translate are in ``docs/crf.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from seg3d import config
from seg3d.errors import ConfigError

# Defaults in the spirit of the example DeepMedic's authors ship with their 3D
# CRF (positional std 3 with weight 3; bilateral stds 17, 12, 10 with weight 5;
# bilateral intensity stds 4.5 and 3.5 on a 0-255 scale spanning z-scores
# -3.1..3.1, i.e. about 0.1 z), with voxels read as 1 mm.
DEFAULT_ITERATIONS = 5
DEFAULT_SMOOTHNESS_WEIGHT = 3.0
DEFAULT_SMOOTHNESS_SIGMA_MM = (3.0, 3.0, 3.0)
DEFAULT_APPEARANCE_WEIGHT = 5.0
DEFAULT_APPEARANCE_SIGMA_MM = (17.0, 12.0, 10.0)
DEFAULT_INTENSITY_SIGMA = 0.1


@dataclass(frozen=True)
class CrfParams:
    """Parameters of the fully connected CRF (Krähenbühl and Koltun, in 3D).

    The pairwise energy between voxels x and y with labels l and m is
    ``mu(l, m) * (w_s k_s(x, y) + w_a k_a(x, y))`` with
    ``k_s = exp(-sum_a d_a^2 / 2 s_a^2)`` over the distance ``d`` in mm along
    each axis, and ``k_a = exp(-sum_a d_a^2 / 2 t_a^2 - sum_c e_c^2 / 2 r_c^2)``
    over distances and intensity differences ``e``. Both kernels are
    normalised as in Krähenbühl's reference implementation (see
    ``docs/crf.md``), so the weights compare directly with the unary
    ``-log p``.

    Attributes:
        iterations: mean-field iterations (at least 1).
        smoothness_weight: ``w_s`` (0 switches the kernel off).
        smoothness_sigma_mm: ``s``, in mm along i, j, k (one number for all).
        appearance_weight: ``w_a`` (0 switches the kernel off).
        appearance_sigma_mm: ``t``, in mm along i, j, k (one number for all).
        intensity_sigmas: ``r``, one per image channel or one for all, in the
            units of seg3d's normalised intensities (1 = one standard deviation
            of a z-scored channel).
        compatibility: ``mu`` as an L x L symmetric matrix (row and column
            per class, background first); ``None`` for Potts,
            ``mu(l, m) = [l != m]``.
    """

    iterations: int = DEFAULT_ITERATIONS
    smoothness_weight: float = DEFAULT_SMOOTHNESS_WEIGHT
    # Any length is accepted here so that validation, not type conversion,
    # reports a wrong count.
    smoothness_sigma_mm: float | tuple[float, ...] = DEFAULT_SMOOTHNESS_SIGMA_MM
    appearance_weight: float = DEFAULT_APPEARANCE_WEIGHT
    appearance_sigma_mm: float | tuple[float, ...] = DEFAULT_APPEARANCE_SIGMA_MM
    intensity_sigmas: float | tuple[float, ...] = (DEFAULT_INTENSITY_SIGMA,)
    compatibility: tuple[tuple[float, ...], ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int):
            raise ConfigError(f"iterations must be an integer, not {self.iterations!r}")
        if self.iterations < 1:
            raise ConfigError(f"iterations must be at least 1, not {self.iterations}")
        for name in ("smoothness_weight", "appearance_weight"):
            _set(self, name, _non_negative(name, getattr(self, name)))
        for name in ("smoothness_sigma_mm", "appearance_sigma_mm"):
            _set(self, name, _positive_numbers(name, getattr(self, name), 3))
        _set(
            self,
            "intensity_sigmas",
            _positive_numbers("intensity_sigmas", self.intensity_sigmas, None),
        )
        if self.compatibility is not None:
            _set(self, "compatibility", _compatibility(self.compatibility))

    @classmethod
    def from_dict(cls, data: dict[str, Any], section: str = "crf") -> CrfParams:
        """Parameters from a plain table (e.g. TOML's ``[crf]``), keys checked."""
        return config.from_dict(cls, data, section)

    def to_dict(self) -> dict[str, Any]:
        """Plain TOML/JSON-able values; :meth:`from_dict` reads them back."""
        return config.to_dict(self)

    def intensity_sigmas_for(self, num_channels: int) -> tuple[float, ...]:
        """One intensity sigma per channel, checking their number."""
        if len(self.intensity_sigmas) == 1:
            return self.intensity_sigmas * num_channels
        if len(self.intensity_sigmas) != num_channels:
            raise ConfigError(
                f"intensity_sigmas has {len(self.intensity_sigmas)} values but the "
                f"image has {num_channels} channels; give one value or "
                f"{num_channels}"
            )
        return self.intensity_sigmas

    def check_classes(self, num_classes: int) -> None:
        """Raise :class:`ConfigError` if ``compatibility`` is not L x L."""
        if self.compatibility is not None and len(self.compatibility) != num_classes:
            size = len(self.compatibility)
            raise ConfigError(
                f"compatibility is {size} x {size} but the probabilities have "
                f"{num_classes} classes; give a {num_classes} x {num_classes} matrix"
            )


def _set(params: CrfParams, name: str, value: Any) -> None:
    object.__setattr__(params, name, value)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number, not {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be finite, not {value!r}")
    return float(value)


def _non_negative(name: str, value: Any) -> float:
    number = _number(name, value)
    if number < 0:
        raise ConfigError(f"{name} must be >= 0, not {value!r}")
    return number


def _positive_numbers(name: str, value: Any, count: int | None) -> tuple[float, ...]:
    """A positive number or a list of them, as a tuple (of ``count`` if given)."""
    values = list(value) if isinstance(value, list | tuple) else [value]
    numbers = tuple(_number(name, v) for v in values)
    if not numbers or any(n <= 0 for n in numbers):
        raise ConfigError(f"{name} must be positive, not {value!r}")
    if count is not None:
        if len(numbers) == 1:
            numbers *= count
        elif len(numbers) != count:
            raise ConfigError(
                f"{name} must be one number or {count} (along i, j, k), not {value!r}"
            )
    return numbers


def _compatibility(value: Any) -> tuple[tuple[float, ...], ...]:
    rows = [list(row) if isinstance(row, list | tuple) else None for row in value]
    size = len(rows)
    if size < 2 or any(row is None or len(row) != size for row in rows):
        raise ConfigError(
            f"compatibility must be a square matrix with a row per class, not {value!r}"
        )
    matrix = tuple(tuple(_number("compatibility", v) for v in row) for row in rows)
    for i in range(size):
        for j in range(i):
            if matrix[i][j] != matrix[j][i]:
                raise ConfigError(
                    f"compatibility must be symmetric; entry [{i}][{j}] is "
                    f"{matrix[i][j]} but [{j}][{i}] is {matrix[j][i]}"
                )
    return matrix
