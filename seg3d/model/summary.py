"""A text summary of the network for ``seg3d model`` and ``train --dry-run``."""

from __future__ import annotations

import math
from collections.abc import Sequence

from seg3d.model.config import NetworkConfig
from seg3d.model.flops import flops_for
from seg3d.model.network import DeepMedic


def describe_network(
    config: NetworkConfig, segment: int | Sequence[int] = 25
) -> list[str]:
    """Describe the architecture, sizes and cost, one line per item.

    Args:
        config: the architecture.
        segment: the normal-pathway training segment shape (i, j, k) in voxels,
            or one edge (the paper uses 25).

    Returns:
        Lines of plain text, without trailing newlines.

    Raises:
        ValueError: the segment is too small for the network.
    """
    geometry = config.geometry_for_input(segment)
    model = DeepMedic(config)
    lines = [
        f"DeepMedic: {len(config.factors)} pathways "
        f"({', '.join(f'x{f}' for f in config.factors)}), "
        f"{config.in_channels} input channel(s), {config.num_classes} classes, "
        f"{model.num_parameters():,} parameters",
    ]
    residual = ", ".join(str(n) for n in config.residual_layers) or "none"
    for place, maps in zip(geometry.pathways, config.pathway_feature_maps, strict=True):
        kernels = " ".join(str(k) for k in config.kernel_sizes)
        lines.append(
            f"  x{place.factor} pathway: {len(maps)} unpadded convolutions, kernels "
            f"{kernels}, feature maps {' '.join(str(n) for n in maps)}; "
            f"receptive field {place.receptive_field}^3 voxels"
        )
    widths = [sum(maps[-1] for maps in config.pathway_feature_maps)]
    widths += [*config.head_widths, config.num_classes]
    dropout = " / ".join(f"{rate:g}" for rate in config.head_dropout)
    lines += [
        f"  residual connections at layers: {residual}",
        f"  head (1x1x1): {' -> '.join(str(w) for w in widths)}, "
        f"dropout before each layer {dropout}",
        f"  blocks: {'batch norm, ' if config.batch_norm else ''}"
        f"{'PReLU' if config.activation == 'prelu' else 'ReLU'}, dropout, conv "
        "(the first layer of each pathway reads the image directly)",
        f"Segments for a {_shape(geometry.input_shape)} training segment "
        f"(output = input - {config.shrinkage}):",
    ]
    lines += [f"  {line}" for line in geometry.describe()]
    flops = flops_for(config, geometry.output_shape)
    voxels = math.prod(geometry.output_shape)
    lines.append(
        f"Forward pass: {flops / 1e9:.3g} GFLOP per training segment, "
        f"{flops / voxels / 1e6:.3g} MFLOP per predicted voxel; dense inference "
        f"blocks are multiples of {config.alignment} voxels per axis"
    )
    return lines


def _shape(shape: Sequence[int]) -> str:
    return "x".join(str(n) for n in shape)
