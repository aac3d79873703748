"""Prediction blocks on one global grid, and how big they may be.

A volume is predicted block by block. Every block starts at a multiple of the
block shape, itself a multiple of ``config.alignment`` (the least common
multiple of the subsampling factors), counted from voxel 0 of the volume. So
every block starts on a multiple of every factor, and a subsampled pathway
always samples the image on the same global lattice: a voxel's prediction does
not depend on the block it falls in, and so not on the block size or the memory
budget. The last block along an axis is shortened to the next multiple of the
alignment past the volume's end; voxels past the end are computed and dropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from seg3d.errors import ConfigError
from seg3d.inference.folded import HEAD_ROWS
from seg3d.inference.folding import CHANNEL_MULTIPLE, HEAD_MULTIPLE
from seg3d.model.config import NetworkConfig
from seg3d.model.geometry import Shape3

DEFAULT_MAX_MEMORY = 2 * 1024**3
"""Activation memory budget in bytes when none is given (CPU)."""

LIBRARY_WORKSPACE = 192 * 1024**2
"""Memory the convolution and matrix libraries and the allocator's caches take on
top of the activations. Measured on CPU: about 50 MB for a 48^3 block of the
paper network, but up to 145 MiB above the activation estimate for the ``cpu``
profile (bench/bench_large_volume.py), hence this allowance."""


@dataclass(frozen=True)
class Block:
    """One prediction block.

    Attributes:
        start: image index (i, j, k) of its first prediction voxel.
        shape: its prediction shape, a multiple of the alignment per axis; it
            may reach past the volume's end.
    """

    start: Shape3
    shape: Shape3

    def region(self, spatial_shape: Sequence[int]) -> tuple[slice, slice, slice]:
        """The block's voxels that lie inside a volume of ``spatial_shape``."""
        return tuple(  # type: ignore[return-value]
            slice(c0, min(c0 + n, size))
            for c0, n, size in zip(self.start, self.shape, spatial_shape, strict=True)
        )


def plan_blocks(
    spatial_shape: Sequence[int],
    block_shape: int | Sequence[int],
    alignment: int,
    roi_mask: np.ndarray | None = None,
) -> list[Block]:
    """Tile a volume, or its ROI's bounding box, into blocks on the global grid.

    With a ROI mask, tiling starts at the ROI's bounding box (its first corner
    rounded down to a multiple of ``alignment``, so still on the global grid)
    and blocks without a ROI voxel are left out.

    Args:
        spatial_shape: the volume's shape (i, j, k).
        block_shape: the largest block, a multiple of ``alignment`` per axis.
        alignment: ``config.alignment``.
        roi_mask: ``(I, J, K)`` bool, or ``None`` for the whole volume.

    Returns:
        The blocks in i, j, k order; none for an empty ROI.
    """
    shape = _triple(block_shape)
    if any(n < 1 or n % alignment for n in shape):
        raise ValueError(
            f"block_shape must be a positive multiple of {alignment} per axis, "
            f"not {shape}"
        )
    bounds = roi_bounds(spatial_shape, alignment, roi_mask)
    if bounds is None:
        return []
    first, stop = bounds
    starts = [range(a, b, n) for a, b, n in zip(first, stop, shape, strict=True)]
    blocks = []
    for i in starts[0]:
        for j in starts[1]:
            for k in starts[2]:
                start = (i, j, k)
                block = Block(start, _clipped_shape(start, shape, stop, alignment))
                if roi_mask is None or roi_mask[block.region(spatial_shape)].any():
                    blocks.append(block)
    return blocks


def roi_bounds(
    spatial_shape: Sequence[int], alignment: int, roi_mask: np.ndarray | None = None
) -> tuple[Shape3, Shape3] | None:
    """First voxel (on the grid) and past-the-end voxel of the region to predict.

    Args:
        spatial_shape: the volume's shape (i, j, k).
        alignment: ``config.alignment``; the first voxel is a multiple of it.
        roi_mask: ``(I, J, K)`` bool, or ``None`` for the whole volume.

    Returns:
        ``(first, stop)`` per axis, or ``None`` for an empty ROI.
    """
    if roi_mask is None:
        return (0, 0, 0), tuple(int(n) for n in spatial_shape)
    first = []
    stop = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        present = np.flatnonzero(roi_mask.any(axis=others))
        if present.size == 0:
            return None
        first.append(int(present[0]) // alignment * alignment)
        stop.append(int(present[-1]) + 1)
    return tuple(first), tuple(stop)  # type: ignore[return-value]


def estimate_block_memory(
    config: NetworkConfig,
    output_shape: int | Sequence[int],
    *,
    element_size: int = 4,
    shift_equivariant: bool = False,
) -> int:
    """Peak activation memory of predicting one block, in bytes (an estimate).

    Counts the input segments, the largest pair of consecutive pathway
    activations (a convolution's input and output, plus a residual source held
    for later and the outputs of pathways already run) and the head's slab
    temporaries, plus :data:`LIBRARY_WORKSPACE`. The image and the output array
    are not included. Measured peaks on CPU (float32, paper network) were
    within this estimate for blocks of 48^3 to 96^3 (by up to a third for the
    larger ones).

    Args:
        config: the architecture.
        output_shape: prediction block shape (i, j, k).
        element_size: bytes per activation value (4 float32, 2 bfloat16).
        shift_equivariant: estimate the shift-equivariant evaluation.
    """
    output = _triple(output_shape)
    geometry = (
        config.equivariant_geometry(output)
        if shift_equivariant
        else config.geometry(output)
    )
    # float32 numpy segments plus their tensor copy in the network's layout.
    inputs = sum(
        config.in_channels * math.prod(p.input_shape) * (4 + element_size)
        for p in geometry.pathways
    )
    held = 0
    peak = 0
    for index, maps in enumerate(config.pathway_feature_maps):
        factor = config.factors[index]
        if shift_equivariant and factor > 1:
            own = [n // factor + config.shrinkage for n in output]
            result = maps[-1] * math.prod(output)  # the interleaved phases
        else:
            own = list(geometry.pathways[index].input_shape)
            result = 0
        pathway_peak, last = _pathway_peak(config, own, maps)
        if shift_equivariant and factor > 1:
            pathway_peak *= factor**3  # the phases run as one batch
        peak = max(peak, held + result + pathway_peak)
        held += max(result, last)
    # Slabs hold HEAD_ROWS voxels, or at least one aligned step of planes.
    step = math.lcm(*geometry.factors)
    rows = min(math.prod(output), max(HEAD_ROWS, step * output[1] * output[2]))
    widest = _round_up(max(config.head_widths, default=1), HEAD_MULTIPLE)
    head = rows * (3 * widest + _round_up(config.num_classes, HEAD_MULTIPLE))
    peak = max(peak, held + head)
    return LIBRARY_WORKSPACE + inputs + peak * element_size


def choose_block_shape(
    config: NetworkConfig,
    spatial_shape: Sequence[int],
    max_memory: int,
    *,
    element_size: int = 4,
    shift_equivariant: bool = False,
) -> Shape3:
    """The largest block shape whose estimated memory fits ``max_memory``.

    Shrinks the longest axis, one alignment step at a time, from a single block
    covering the volume; then evens the blocks out so that the last one along
    each axis is not a sliver.

    Args:
        config: the architecture.
        spatial_shape: the volume's shape (i, j, k).
        max_memory: activation memory budget in bytes.
        element_size: bytes per activation value.
        shift_equivariant: size blocks for the shift-equivariant evaluation.

    Raises:
        ConfigError: even the smallest block does not fit ``max_memory``.
    """
    step = config.alignment
    shape = [_round_up(size, step) for size in spatial_shape]

    def fits(candidate: Sequence[int]) -> bool:
        estimate = estimate_block_memory(
            config,
            candidate,
            element_size=element_size,
            shift_equivariant=shift_equivariant,
        )
        return estimate <= max_memory

    while not fits(shape):
        longest = int(np.argmax(shape))
        if shape[longest] == step:
            smallest = estimate_block_memory(
                config,
                step,
                element_size=element_size,
                shift_equivariant=shift_equivariant,
            )
            raise ConfigError(
                f"max_memory {max_memory / 1e6:.3g} MB is too small: the smallest "
                f"prediction block ({step}^3 voxels) needs about "
                f"{smallest / 1e6:.3g} MB; allow more memory"
            )
        shape[longest] -= step
    counts = [math.ceil(size / n) for size, n in zip(spatial_shape, shape, strict=True)]
    return tuple(  # type: ignore[return-value]
        _round_up(math.ceil(size / count), step)
        for size, count in zip(spatial_shape, counts, strict=True)
    )


def _pathway_peak(
    config: NetworkConfig, input_shape: Sequence[int], feature_maps: Sequence[int]
) -> tuple[int, int]:
    """Peak values alive while running one pathway, and its output's size."""
    shape = list(input_shape)
    # The folded network pads channels with zeros (see seg3d.inference.folding).
    channels = _round_up(config.in_channels, CHANNEL_MULTIPLE)
    current = channels * math.prod(shape)
    sources = {layer - 2 for layer in config.residual_layers}
    kept = current if 0 in sources else 0
    peak = 0
    for index, (width, kernel) in enumerate(
        zip(feature_maps, config.kernel_sizes, strict=True), start=1
    ):
        shape = [n - (kernel - 1) for n in shape]
        produced = _round_up(width, CHANNEL_MULTIPLE) * math.prod(shape)
        # The activation makes a copy of the input before the convolution.
        peak = max(peak, kept + 2 * current + produced)
        if index in sources:
            kept = produced
        current = produced
    return peak, current


def _clipped_shape(
    start: Shape3, shape: Shape3, spatial_shape: Sequence[int], alignment: int
) -> Shape3:
    return tuple(  # type: ignore[return-value]
        min(n, _round_up(size - c0, alignment))
        for c0, n, size in zip(start, shape, spatial_shape, strict=True)
    )


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


def _triple(value: int | Sequence[int]) -> Shape3:
    shape = (value,) * 3 if isinstance(value, int) else tuple(int(v) for v in value)
    if len(shape) != 3:
        raise ValueError(f"expected one int or three, not {value!r}")
    return shape  # type: ignore[return-value]
