"""The DeepMedic multi-scale 3D CNN (Kamnitsas et al., MedIA 2017).

Every pathway is a stack of unpadded convolutions. The normal pathway reads the
image at full resolution; each extra pathway reads it subsampled by its factor
(the caller cuts that input with strided slicing, no smoothing, see
:mod:`seg3d.sampling.extraction`), and its output is repeated back to full
resolution and cropped onto the normal pathway's output grid as
:mod:`seg3d.model.geometry` says. The pathway outputs are concatenated and go
through 1x1x1 layers and a 1x1x1 classifier.

Each layer is a pre-activation block, batch norm -> PReLU -> dropout -> conv,
except the first layer of each pathway, which convolves the normalised image
directly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from seg3d.model.config import NetworkConfig
from seg3d.model.geometry import SegmentGeometry


class ConvBlock(nn.Module):
    """Batch norm -> activation -> dropout -> unpadded convolution.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: odd kernel edge (1 for the head's 1x1x1 layers).
        pre_activation: whether batch norm and activation precede the
            convolution; ``False`` for the first layer of a pathway.
        config: gives batch norm on/off and the activation.
        dropout: dropout rate applied to the convolution's input.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        pre_activation: bool,
        config: NetworkConfig,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm: nn.Module = nn.Identity()
        self.activation: nn.Module = nn.Identity()
        if pre_activation:
            if config.batch_norm:
                self.norm = nn.BatchNorm3d(in_channels)
            self.activation = (
                nn.PReLU(in_channels) if config.activation == "prelu" else nn.ReLU()
            )
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.dropout(self.activation(self.norm(x))))


class Pathway(nn.Module):
    """One pathway: a stack of :class:`ConvBlock`, with optional residuals.

    Args:
        in_channels: image channels.
        feature_maps: output channels of each layer.
        config: kernel sizes, residual layers, batch norm, activation.
    """

    def __init__(
        self, in_channels: int, feature_maps: Sequence[int], config: NetworkConfig
    ) -> None:
        super().__init__()
        widths = [in_channels, *feature_maps]
        self.layers = nn.ModuleList(
            ConvBlock(
                widths[n],
                widths[n + 1],
                config.kernel_sizes[n],
                pre_activation=n > 0,
                config=config,
            )
            for n in range(len(feature_maps))
        )
        self.residual_layers = frozenset(config.residual_layers)

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(B, C, i, j, k)`` to ``(B, C_last, i - s, j - s, k - s)``."""
        layer_inputs = []
        for index, layer in enumerate(self.layers, start=1):
            layer_inputs.append(x)
            x = layer(x)
            if index in self.residual_layers:
                x = x + match_residual(layer_inputs[index - 2], x)
        return x


def match_residual(earlier: Tensor, later: Tensor) -> Tensor:
    """Crop ``earlier`` to the centre of ``later`` and match its channels.

    Missing channels are zeros and surplus channels are dropped, so that a
    residual connection may join layers of different widths (as DeepMedic
    does when 30 channels meet 40).

    Args:
        earlier: ``(B, C1, i1, j1, k1)``, the larger spatial shape.
        later: ``(B, C2, i2, j2, k2)``.

    Returns:
        ``(B, C2, i2, j2, k2)``.
    """
    margins = [
        (a - b) // 2 for a, b in zip(earlier.shape[2:], later.shape[2:], strict=True)
    ]
    crop = (
        slice(None),
        slice(0, later.shape[1]),
        *(slice(m, m + n) for m, n in zip(margins, later.shape[2:], strict=True)),
    )
    cropped = earlier[crop]
    missing = later.shape[1] - cropped.shape[1]
    if missing > 0:
        zeros = cropped.new_zeros((cropped.shape[0], missing, *cropped.shape[2:]))
        cropped = torch.cat([cropped, zeros], dim=1)
    return cropped


def upsample_to_output(
    x: Tensor, factor: int, crop: Sequence[int], output_shape: Sequence[int]
) -> Tensor:
    """Repeat a subsampled pathway's output ``factor`` times and crop it.

    Args:
        x: ``(B, C, m_i, m_j, m_k)`` pathway output.
        factor: the pathway's subsampling factor.
        crop: voxels dropped at the start of each axis after repetition.
        output_shape: the normal pathway's output shape (i, j, k).

    Returns:
        ``(B, C, *output_shape)``.
    """
    for axis in (2, 3, 4):
        x = x.repeat_interleave(factor, dim=axis)
    return x[
        :,
        :,
        crop[0] : crop[0] + output_shape[0],
        crop[1] : crop[1] + output_shape[1],
        crop[2] : crop[2] + output_shape[2],
    ]


class DeepMedic(nn.Module):
    """DeepMedic: a normal pathway, subsampled pathways and a 1x1x1 head.

    Args:
        config: the architecture; ``NetworkConfig()`` is the paper network.

    Attributes:
        config: the architecture, kept so that checkpoints can rebuild it.
    """

    def __init__(self, config: NetworkConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or NetworkConfig()
        self.pathways = nn.ModuleList(
            Pathway(config.in_channels, maps, config)
            for maps in config.pathway_feature_maps
        )
        widths = [
            sum(maps[-1] for maps in config.pathway_feature_maps),
            *config.head_widths,
            config.num_classes,
        ]
        self.head = nn.ModuleList(
            ConvBlock(
                widths[n],
                widths[n + 1],
                1,
                pre_activation=True,
                config=config,
                dropout=config.head_dropout[n],
            )
            for n in range(len(widths) - 1)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He initialisation of every convolution; zero biases."""
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Class logits for the central block of the given segments.

        Args:
            inputs: one float tensor per pathway (normal pathway first), each
                ``(B, C, i, j, k)``; the subsampled ones already subsampled and
                of the shapes :meth:`NetworkConfig.geometry_for_input` gives
                for the normal segment's shape.

        Returns:
            ``(B, num_classes, I, J, K)`` logits, ``(I, J, K)`` the normal
            segment's shape minus ``config.shrinkage``.

        Raises:
            ValueError: wrong number of inputs or shapes that do not fit.
        """
        geometry = self.check_inputs(inputs)
        features = [self.pathways[0](inputs[0])]
        for pathway, place, x in zip(
            self.pathways[1:], geometry.pathways[1:], inputs[1:], strict=True
        ):
            features.append(
                upsample_to_output(
                    pathway(x), place.factor, place.crop, geometry.output_shape
                )
            )
        x = torch.cat(features, dim=1)  # (B, sum of last widths, I, J, K)
        for layer in self.head:
            x = layer(x)
        return x

    def check_inputs(self, inputs: Sequence[Tensor]) -> SegmentGeometry:
        """The geometry the inputs imply; raise if any input does not fit it."""
        config = self.config
        if len(inputs) != len(config.factors):
            raise ValueError(
                f"DeepMedic with factors {list(config.factors)} needs "
                f"{len(config.factors)} inputs (one per pathway), not {len(inputs)}"
            )
        for x in inputs:
            if x.ndim != 5 or x.shape[1] != config.in_channels:
                raise ValueError(
                    f"pathway inputs must be (B, {config.in_channels}, i, j, k), "
                    f"not {tuple(x.shape)}"
                )
        geometry = config.geometry_for_input(tuple(inputs[0].shape[2:]))
        for place, x in zip(geometry.pathways[1:], inputs[1:], strict=True):
            expected = (inputs[0].shape[0], config.in_channels, *place.input_shape)
            if tuple(x.shape) != expected:
                raise ValueError(
                    f"the x{place.factor} pathway input must be {expected} for a "
                    f"normal segment of {tuple(inputs[0].shape[2:])}, "
                    f"not {tuple(x.shape)}"
                )
        return geometry

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
