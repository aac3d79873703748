"""What was done to one case, in enough detail to do it again and to undo it.

A record is plain data: :meth:`PreprocessingRecord.to_dict` gives lists,
numbers and strings that JSON and TOML hold exactly (Python writes the shortest
decimal that reads back as the same float), so a record written beside a
prediction or inside a checkpoint restores the same grid.

Grids, in the order preprocessing passes through them:

- the *original* grid: the input file's shape and affine, in its axis order;
- the *canonical* grid: the same voxels with axes permuted and flipped to the
  closest RAS+ orientation (:class:`~seg3d.io.Reorientation`);
- the *resampled* grid: the canonical grid resampled to the target spacing
  (the canonical grid itself when there is no resampling);
- the *processed* grid: the crop box ``[crop_start, crop_stop)`` of the
  resampled grid, on which the network sees the case.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from seg3d.errors import ConfigError
from seg3d.io.orientation import Reorientation
from seg3d.io.volume import Affine, Spacing, SpatialShape
from seg3d.preprocessing.config import PreprocessingConfig

RECORD_VERSION = 1
_INFORMATIONAL_KEYS = ("original_spacing", "resampled_spacing")


@dataclass(frozen=True)
class ChannelStatistics:
    """The numbers one channel was normalised with.

    The channel becomes ``(clip(x, clip_low, clip_high) - offset) / scale``:

    - ``"zscore"``: no clipping, ``offset`` = mean, ``scale`` = standard
      deviation over ``region``;
    - ``"percentile"``: ``clip_low``/``clip_high`` are the percentile values,
      ``offset``/``scale`` the mean and standard deviation of the clipped
      intensities over ``region``;
    - ``"ct_window"``: the window, ``offset`` its centre, ``scale`` its half
      width, so the window maps onto [-1, 1];
    - ``"none"``: ``offset`` 0 and ``scale`` 1, no clipping.

    Attributes:
        scheme: the normalisation scheme.
        region: the voxels the statistics were measured over: ``"roi"``,
            ``"nonzero"``, ``"all"``, or ``"fixed"`` where nothing was measured.
        offset: subtracted after clipping, in input intensity units.
        scale: divided by after subtracting; positive.
        clip_low: lower clip bound, or ``None``.
        clip_high: upper clip bound, or ``None``.
    """

    scheme: str
    region: str
    offset: float
    scale: float
    clip_low: float | None = None
    clip_high: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data; absent clip bounds are left out (TOML has no null)."""
        data: dict[str, Any] = {
            "scheme": self.scheme,
            "region": self.region,
            "offset": float(self.offset),
            "scale": float(self.scale),
        }
        if self.clip_low is not None:
            data["clip_low"] = float(self.clip_low)
        if self.clip_high is not None:
            data["clip_high"] = float(self.clip_high)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChannelStatistics:
        return cls(
            scheme=str(data["scheme"]),
            region=str(data["region"]),
            offset=float(data["offset"]),
            scale=float(data["scale"]),
            clip_low=_optional_float(data.get("clip_low")),
            clip_high=_optional_float(data.get("clip_high")),
        )


@dataclass(frozen=True, eq=False)
class PreprocessingRecord:
    """Everything needed to repeat one case's preprocessing and to undo it.

    Records compare equal when their :meth:`to_dict` forms are equal.

    Attributes:
        case_id: the case the record was made for, for messages.
        config: the configuration the case was preprocessed with.
        reorientation: the axis permutation and flips from the original to the
            canonical grid; it also holds the original spatial shape.
        original_affine: 4x4 float64 voxel-to-RAS+ mm affine of the input.
        resampled_shape: ``(I, J, K)`` of the resampled canonical grid.
        resampled_affine: 4x4 float64 affine of the resampled canonical grid.
        crop_start: first voxel of the crop box in resampled canonical voxels.
        crop_stop: past-the-end voxel of the crop box, likewise.
        statistics: per channel, the normalisation actually applied.
    """

    case_id: str
    config: PreprocessingConfig
    reorientation: Reorientation
    original_affine: Affine
    resampled_shape: SpatialShape
    resampled_affine: Affine
    crop_start: SpatialShape
    crop_stop: SpatialShape
    statistics: tuple[ChannelStatistics, ...]

    def __post_init__(self) -> None:
        for name in ("original_affine", "resampled_affine"):
            affine = np.array(getattr(self, name), dtype=np.float64)
            if affine.shape != (4, 4):
                raise ValueError(f"{name} must be 4x4, not {affine.shape}")
            object.__setattr__(self, name, affine)
        for name in ("resampled_shape", "crop_start", "crop_stop"):
            object.__setattr__(self, name, _int_triple(getattr(self, name)))
        object.__setattr__(self, "statistics", tuple(self.statistics))

        inside = all(
            0 <= start < stop <= size
            for start, stop, size in zip(
                self.crop_start, self.crop_stop, self.resampled_shape, strict=True
            )
        )
        if not inside:
            raise ValueError(
                f"crop box {self.crop_start}..{self.crop_stop} does not lie inside "
                f"the resampled grid {self.resampled_shape}"
            )

    @property
    def original_shape(self) -> SpatialShape:
        """``(I, J, K)`` of the input, in its own axis order."""
        return self.reorientation.source_shape

    @property
    def original_spacing(self) -> Spacing:
        return _spacing(self.original_affine)

    @property
    def canonical_shape(self) -> SpatialShape:
        return self.reorientation.canonical_shape

    @property
    def canonical_affine(self) -> Affine:
        return self.reorientation.canonical_affine(self.original_affine)

    @property
    def resampled_spacing(self) -> Spacing:
        return _spacing(self.resampled_affine)

    @property
    def is_resampled(self) -> bool:
        """Whether the resampled grid differs from the canonical grid."""
        return self.resampled_shape != self.canonical_shape or not np.array_equal(
            self.resampled_affine, self.canonical_affine
        )

    @property
    def processed_shape(self) -> SpatialShape:
        """``(I, J, K)`` of the cropped grid the network sees."""
        shape = np.subtract(self.crop_stop, self.crop_start)
        return int(shape[0]), int(shape[1]), int(shape[2])

    @property
    def processed_affine(self) -> Affine:
        """Affine of the cropped grid: the resampled one shifted to the crop."""
        shift = np.eye(4)
        shift[:3, 3] = self.crop_start
        return self.resampled_affine @ shift

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON; the spacings are informational, recomputed from
        the affines when read back."""
        return {
            "version": RECORD_VERSION,
            "case_id": self.case_id,
            "config": self.config.to_dict(),
            "reorientation": self.reorientation.to_dict(),
            "original_affine": self.original_affine.tolist(),
            "original_spacing": list(self.original_spacing),
            "resampled_shape": list(self.resampled_shape),
            "resampled_affine": self.resampled_affine.tolist(),
            "resampled_spacing": list(self.resampled_spacing),
            "crop_start": list(self.crop_start),
            "crop_stop": list(self.crop_stop),
            "statistics": [entry.to_dict() for entry in self.statistics],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PreprocessingRecord:
        """Read a record written by :meth:`to_dict`.

        Raises:
            ConfigError: a key is missing or unknown, or the record comes from
                another record version.
        """
        version = data.get("version")
        if version != RECORD_VERSION:
            raise ConfigError(
                f"preprocessing record version {version!r} is not supported; this "
                f"seg3d reads version {RECORD_VERSION}; preprocess the case again"
            )
        known = {*cls.__dataclass_fields__, "version", *_INFORMATIONAL_KEYS}
        for key in data:
            if key not in known:
                raise ConfigError(f"preprocessing record key {key!r} is not known")
        try:
            return cls(
                case_id=str(data["case_id"]),
                config=PreprocessingConfig.from_dict(data["config"]),
                reorientation=Reorientation.from_dict(data["reorientation"]),
                original_affine=np.array(data["original_affine"], dtype=np.float64),
                resampled_shape=data["resampled_shape"],
                resampled_affine=np.array(data["resampled_affine"], dtype=np.float64),
                crop_start=data["crop_start"],
                crop_stop=data["crop_stop"],
                statistics=[ChannelStatistics.from_dict(s) for s in data["statistics"]],
            )
        except KeyError as err:
            raise ConfigError(
                f"preprocessing record has no {err.args[0]!r}; it is incomplete"
            ) from err

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PreprocessingRecord):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


def _spacing(affine: Affine) -> Spacing:
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    return float(zooms[0]), float(zooms[1]), float(zooms[2])


def _int_triple(values: Any) -> SpatialShape:
    triple = tuple(int(v) for v in values)
    if len(triple) != 3:
        raise ValueError(f"expected three integers, not {values!r}")
    return triple  # type: ignore[return-value]


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
