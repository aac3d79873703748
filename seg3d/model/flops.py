"""Arithmetic a forward pass of the network needs.

Counted: two floating-point operations (a multiply and an add) per
multiply-add of every convolution and every 1x1x1 head layer, the head over
every prediction voxel at full resolution, as the network is defined. Not
counted: biases, batch norm, activations, residual additions, the repetition
of subsampled outputs, the softmax; together they are a few operations per
voxel and channel, under 2 % of the paper network's total.

The folded inference network (:mod:`seg3d.inference.folded`) does slightly less
than this count: it computes a subsampled pathway's share of the first head
layer at that pathway's resolution.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from seg3d.model.config import NetworkConfig


def flops_for(
    config: NetworkConfig,
    output_shape: int | Sequence[int],
    *,
    shift_equivariant: bool = False,
) -> int:
    """Floating-point operations of one forward pass over one prediction block.

    For a whole volume predicted in one block, pass its shape rounded up to a
    multiple of ``config.alignment``: that is the floor for the volume; tiling
    it into smaller blocks adds the recomputed margins (sum the blocks).

    Args:
        config: the architecture.
        output_shape: prediction block shape (i, j, k) in voxels, or one edge.
        shift_equivariant: count the shift-equivariant evaluation, in which
            each subsampled pathway runs once per voxel phase (``f^3`` times);
            needs ``output_shape`` a multiple of every factor.

    Returns:
        Operations of one forward pass for batch size 1.
    """
    geometry = config.geometry(output_shape)
    if shift_equivariant:
        # Checks the shape and the factors; each phase reads output / f + s.
        config.equivariant_geometry(output_shape)
    total = 0
    for place, maps in zip(geometry.pathways, config.pathway_feature_maps, strict=True):
        phases = place.factor**3 if shift_equivariant else 1
        total += phases * _pathway_flops(config, place.input_shape, maps)
    widths = [
        sum(maps[-1] for maps in config.pathway_feature_maps),
        *config.head_widths,
        config.num_classes,
    ]
    macs = sum(a * b for a, b in itertools.pairwise(widths))
    total += 2 * macs * math.prod(geometry.output_shape)
    return total


def flops_per_voxel(config: NetworkConfig, output_shape: int | Sequence[int]) -> float:
    """:func:`flops_for` divided by the number of prediction voxels."""
    return flops_for(config, output_shape) / math.prod(
        config.geometry(output_shape).output_shape
    )


def _pathway_flops(
    config: NetworkConfig, input_shape: Sequence[int], feature_maps: Sequence[int]
) -> int:
    total = 0
    shape = list(input_shape)
    channels = config.in_channels
    for width, kernel in zip(feature_maps, config.kernel_sizes, strict=True):
        shape = [n - (kernel - 1) for n in shape]
        total += 2 * channels * width * kernel**3 * math.prod(shape)
        channels = width
    return total
