"""The network's architecture as a frozen, validated configuration.

A :class:`NetworkConfig` is plain data: it round-trips through a dict (and so
through TOML and checkpoints) and is validated once, on construction. Every
size the rest of seg3d needs (segment shapes, offsets, receptive fields) comes
from :mod:`seg3d.model.geometry` through :meth:`NetworkConfig.geometry`.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from seg3d.config import from_dict as config_from_dict
from seg3d.config import to_dict as config_to_dict
from seg3d.errors import ConfigError
from seg3d.model import geometry
from seg3d.model.geometry import SegmentGeometry

Activation = Literal["prelu", "relu"]

PAPER_FEATURE_MAPS = (30, 30, 40, 40, 40, 40, 50, 50)


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture of a DeepMedic-style multi-scale 3D CNN.

    The defaults are the network of Kamnitsas et al., Medical Image Analysis
    2017: a normal pathway and one pathway fed with the input subsampled by 3,
    eight unpadded 3x3x3 convolutions each, two 150-channel 1x1x1 layers and a
    1x1x1 classifier, 50% dropout before the last two layers.

    Attributes:
        in_channels: image channels (modalities) the network reads.
        num_classes: output classes, background included.
        feature_maps: output channels of each convolution of the normal pathway.
        kernel_sizes: kernel edge of each convolution (odd), shared by all
            pathways; one per entry of ``feature_maps``.
        subsampling_factors: one odd factor per extra pathway, e.g. ``(3,)``
            (paper) or ``(3, 5)`` (later reference release); ``()`` for a
            single-scale network.
        subsampled_feature_maps: per extra pathway, its channels per layer
            (same depth as the normal pathway); ``()`` means "the same as the
            normal pathway" for every extra pathway.
        residual_layers: 1-based layer indices ``L`` whose output gets the
            input of layer ``L - 1`` added (cropped to the centre, zero-padded
            on channels when it has fewer), e.g. ``(4, 6, 8)``; ``()`` in the
            paper.
        head_widths: channels of the 1x1x1 layers after the pathways are
            concatenated, before the classifier.
        head_dropout: dropout rate before each head layer and before the
            classifier (``len(head_widths) + 1`` rates).
        batch_norm: batch norm before each activation (every layer but the
            first of each pathway).
        activation: ``"prelu"`` (one slope per channel, as in the paper) or
            ``"relu"``.
    """

    in_channels: int = 1
    num_classes: int = 2
    feature_maps: tuple[int, ...] = PAPER_FEATURE_MAPS
    kernel_sizes: tuple[int, ...] = (3,) * 8
    subsampling_factors: tuple[int, ...] = (3,)
    subsampled_feature_maps: tuple[tuple[int, ...], ...] = ()
    residual_layers: tuple[int, ...] = ()
    head_widths: tuple[int, ...] = (150, 150)
    head_dropout: tuple[float, ...] = (0.0, 0.5, 0.5)
    batch_norm: bool = True
    activation: Activation = "prelu"

    def __post_init__(self) -> None:
        for check in _CHECKS:
            check(self)

    # -- conversion -----------------------------------------------------------

    @classmethod
    def from_dict(
        cls, values: Mapping[str, Any], *, where: str = "network"
    ) -> NetworkConfig:
        """Build a config from plain data (a TOML table or a checkpoint entry).

        Args:
            values: keys are field names; lists are accepted for tuples.
                Missing keys take their defaults.
            where: the table name used in error messages, e.g. ``"network"``.

        Raises:
            ConfigError: an unknown key, a value of the wrong type, or an
                inconsistent architecture; the message names the key.
        """
        if not isinstance(values, Mapping):
            raise ConfigError(f"[{where}] must be a table, not {type(values).__name__}")
        try:
            return config_from_dict(cls, dict(values), where)
        except InvalidFieldError as err:
            # The checks' messages start with the field name.
            raise InvalidFieldError(f"{where}.{err}") from None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, ints, floats, str, bool) for TOML and checkpoints."""
        return config_to_dict(self)

    @classmethod
    def profile(cls, name: str, **overrides: Any) -> NetworkConfig:
        """A named architecture, optionally with some fields replaced.

        Profiles: ``"paper"`` (the default network), ``"multiscale"`` (the paper
        network with x3 and x5 pathways and residual connections at layers 4, 6
        and 8, as in the later reference release), ``"cpu"`` (narrower and
        shallower, trains in minutes on two CPU cores) and ``"tiny"`` (for
        tests).
        """
        if name not in PROFILES:
            raise ConfigError(
                f"unknown network profile {name!r}; choose one of {', '.join(PROFILES)}"
            )
        return cls.from_dict({**PROFILES[name], **overrides})

    # -- derived sizes ----------------------------------------------------------

    @property
    def num_layers(self) -> int:
        return len(self.feature_maps)

    @property
    def factors(self) -> tuple[int, ...]:
        """Subsampling factor of every pathway, the normal one (1) first."""
        return (1, *self.subsampling_factors)

    @property
    def pathway_feature_maps(self) -> tuple[tuple[int, ...], ...]:
        """Channels per layer of every pathway, the normal one first."""
        extra = self.subsampled_feature_maps or (self.feature_maps,) * len(
            self.subsampling_factors
        )
        return (self.feature_maps, *extra)

    @property
    def pathway_kernels(self) -> tuple[tuple[int, ...], ...]:
        return (self.kernel_sizes,) * len(self.factors)

    @property
    def shrinkage(self) -> int:
        """Voxels per axis the pathways remove: output = input - shrinkage."""
        return geometry.shrinkage(self.kernel_sizes)

    @property
    def alignment(self) -> int:
        """Least common multiple of the factors: the step of aligned segments."""
        return math.lcm(*self.factors)

    def geometry(self, output_shape: int | Sequence[int]) -> SegmentGeometry:
        """Every pathway's input for a prediction of ``output_shape`` voxels."""
        return geometry.segment_geometry(
            output_shape, self.pathway_kernels, self.factors
        )

    def geometry_for_input(self, input_shape: int | Sequence[int]) -> SegmentGeometry:
        """Geometry for a normal-pathway segment of ``input_shape`` (e.g. 25^3)."""
        return geometry.geometry_for_input(
            input_shape, self.pathway_kernels, self.factors
        )

    def equivariant_geometry(
        self, output_shape: int | Sequence[int]
    ) -> SegmentGeometry:
        """Reads of the shift-equivariant evaluation of ``output_shape`` voxels.

        See :func:`seg3d.model.geometry.equivariant_geometry`.
        """
        return geometry.equivariant_geometry(
            output_shape, self.pathway_kernels, self.factors
        )


PROFILES: dict[str, dict[str, Any]] = {
    "paper": {},
    "multiscale": {"subsampling_factors": [3, 5], "residual_layers": [4, 6, 8]},
    # About 4x fewer operations per output voxel than the paper network and a
    # 13^3 / 39^3 receptive field: enough for the bundled sample data on CPU.
    "cpu": {
        "feature_maps": [16, 16, 24, 24, 32, 32],
        "kernel_sizes": [3] * 6,
        "head_widths": [64, 64],
        "head_dropout": [0.0, 0.2, 0.2],
    },
    "tiny": {
        "feature_maps": [4, 4, 6, 6],
        "kernel_sizes": [3] * 4,
        "head_widths": [8],
        "head_dropout": [0.0, 0.0],
    },
}


# -- validation: one rule per function, each naming the field --------------------


class InvalidFieldError(ConfigError):
    """A field's value breaks a rule; the message starts with the field name."""


def _check_counts(config: NetworkConfig) -> None:
    for name in ("in_channels", "num_classes"):
        if getattr(config, name) < 1:
            raise InvalidFieldError(
                f"{name} must be at least 1, not {getattr(config, name)}"
            )
    if config.num_classes < 2:
        raise InvalidFieldError(
            f"num_classes must be at least 2 (background and one class), "
            f"not {config.num_classes}"
        )


def _check_layers(config: NetworkConfig) -> None:
    if not config.feature_maps:
        raise InvalidFieldError("feature_maps must list at least one layer")
    if len(config.kernel_sizes) != len(config.feature_maps):
        raise InvalidFieldError(
            f"kernel_sizes must have one entry per layer ({len(config.feature_maps)}), "
            f"not {len(config.kernel_sizes)}"
        )
    for name in ("feature_maps", "head_widths"):
        if any(n < 1 for n in getattr(config, name)):
            raise InvalidFieldError(
                f"{name} must be positive, not {getattr(config, name)}"
            )
    if any(k < 1 or k % 2 == 0 for k in config.kernel_sizes):
        raise InvalidFieldError(f"kernel_sizes must be odd, not {config.kernel_sizes}")


def _check_pathways(config: NetworkConfig) -> None:
    factors = config.subsampling_factors
    if any(f < 3 or f % 2 == 0 for f in factors):
        raise InvalidFieldError(
            f"subsampling_factors must be odd and at least 3 (so that a subsampled "
            f"voxel has a centre), not {factors}"
        )
    if len(set(factors)) != len(factors):
        raise InvalidFieldError(f"subsampling_factors must differ, not {factors}")
    extra = config.subsampled_feature_maps
    if extra and len(extra) != len(factors):
        raise InvalidFieldError(
            f"subsampled_feature_maps must list one pathway per subsampling factor "
            f"({len(factors)}), not {len(extra)}"
        )
    for maps in extra:
        if len(maps) != config.num_layers or min(maps) < 1:
            raise InvalidFieldError(
                f"subsampled_feature_maps entries must have {config.num_layers} "
                f"positive values (one per layer), not {list(maps)}"
            )


def _check_residuals(config: NetworkConfig) -> None:
    layers = config.residual_layers
    if any(not 2 <= layer <= config.num_layers for layer in layers):
        raise InvalidFieldError(
            f"residual_layers are 1-based layers from 2 to {config.num_layers} "
            f"(layer L adds the input of layer L-1), not {list(layers)}"
        )
    if len(set(layers)) != len(layers):
        raise InvalidFieldError(f"residual_layers must not repeat, not {list(layers)}")


def _check_head(config: NetworkConfig) -> None:
    rates = config.head_dropout
    if len(rates) != len(config.head_widths) + 1:
        raise InvalidFieldError(
            f"head_dropout must have one rate per head layer plus the classifier "
            f"({len(config.head_widths) + 1}), not {len(rates)}"
        )
    if any(not 0.0 <= rate < 1.0 for rate in rates):
        raise InvalidFieldError(
            f"head_dropout rates must be in [0, 1), not {list(rates)}"
        )
    if config.activation not in typing.get_args(Activation):
        raise InvalidFieldError(
            f"activation must be 'prelu' or 'relu', not {config.activation!r}"
        )


_CHECKS = (_check_counts, _check_layers, _check_pathways, _check_residuals, _check_head)
