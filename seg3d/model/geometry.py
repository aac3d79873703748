"""Segment sizes, alignment and receptive fields of the multi-scale network.

This is the only place that knows how big each pathway's input must be for a
given output, and which image voxel every pathway input voxel looks at. The
sampler cuts training segments with it, dense inference tiles volumes with it,
and the network checks its own shapes against it.

Coordinates: let ``c0`` be the image index (per axis) of the first voxel of the
prediction. Pathway ``p`` with subsampling factor ``f`` reads image voxels
``c0 + offset_p + f * m`` for its input voxels ``m = 0 .. input_p - 1``. Its
output is repeated ``f`` times along each axis and ``crop_p`` voxels are dropped
at the start, so that its output voxel ``n`` lands on prediction voxels
``f * n - crop_p .. f * n - crop_p + f - 1``, whose centre its receptive field
is centred on (for odd ``f``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Shape3 = tuple[int, int, int]


def _triple(value: int | Sequence[int], name: str) -> Shape3:
    values = (value,) * 3 if isinstance(value, int) else tuple(int(v) for v in value)
    if len(values) != 3:
        raise ValueError(f"{name} must be one int or three, not {value!r}")
    return values  # type: ignore[return-value]


def shrinkage(kernel_sizes: Sequence[int]) -> int:
    """How many voxels a stack of unpadded convolutions removes along an axis."""
    for size in kernel_sizes:
        if size < 1 or size % 2 == 0:
            raise ValueError(f"kernel sizes must be odd and positive, not {size}")
    return sum(size - 1 for size in kernel_sizes)


@dataclass(frozen=True)
class PathwayGeometry:
    """Where one pathway reads its input and where its output lands.

    Attributes:
        factor: subsampling factor (1 for the normal pathway).
        input_shape: input segment shape in the pathway's own voxels.
        output_shape: output shape in the pathway's own voxels, before the
            output is repeated ``factor`` times to the normal resolution.
        offset: per axis, image index of input voxel 0 relative to the first
            prediction voxel ``c0``.
        crop: per axis, voxels dropped at the start after repetition.
        receptive_field: edge of the receptive field of one output voxel, in
            image voxels.
    """

    factor: int
    input_shape: Shape3
    output_shape: Shape3
    offset: Shape3
    crop: Shape3
    receptive_field: int

    @property
    def context_shape(self) -> Shape3:
        """Extent of the input in image voxels (``input * factor``)."""
        return tuple(n * self.factor for n in self.input_shape)

    def image_span(self, output_start: Sequence[int]) -> tuple[Shape3, Shape3]:
        """First image index and past-the-end index read for a prediction block.

        Args:
            output_start: image index ``c0`` of the first prediction voxel.
        """
        first = tuple(
            int(c) + o for c, o in zip(output_start, self.offset, strict=True)
        )
        stop = tuple(
            f0 + self.factor * (n - 1) + 1
            for f0, n in zip(first, self.input_shape, strict=True)
        )
        return first, stop  # type: ignore[return-value]


@dataclass(frozen=True)
class SegmentGeometry:
    """Input shapes of all pathways for one prediction shape.

    Attributes:
        output_shape: shape of the prediction (normal-resolution voxels).
        pathways: the normal pathway first, then one per subsampling factor.
    """

    output_shape: Shape3
    pathways: tuple[PathwayGeometry, ...]

    @property
    def input_shape(self) -> Shape3:
        """Shape of the normal-resolution input segment."""
        return self.pathways[0].input_shape

    @property
    def factors(self) -> tuple[int, ...]:
        return tuple(p.factor for p in self.pathways)

    @property
    def margin(self) -> Shape3:
        """Image voxels of context needed before the first prediction voxel."""
        return tuple(-min(p.offset[a] for p in self.pathways) for a in range(3))

    def describe(self) -> list[str]:
        lines = []
        for pathway in self.pathways:
            lines.append(
                f"x{pathway.factor}: input {_fmt(pathway.input_shape)} "
                f"(covers {_fmt(pathway.context_shape)} image voxels), "
                f"output {_fmt(pathway.output_shape)}, receptive field "
                f"{pathway.receptive_field}^3"
            )
        return lines


def segment_geometry(
    output_shape: int | Sequence[int],
    pathway_kernels: Sequence[Sequence[int]],
    factors: Sequence[int],
) -> SegmentGeometry:
    """Compute every pathway's input for a prediction of ``output_shape``.

    Args:
        output_shape: prediction shape in normal-resolution voxels.
        pathway_kernels: per pathway (normal first), the kernel edge of each
            unpadded convolution.
        factors: per pathway, the subsampling factor; the first must be 1 and
            the others odd, so that a repeated output voxel has a centre voxel.
    """
    output = _triple(output_shape, "output_shape")
    if min(output) < 1:
        raise ValueError(f"output_shape must be positive, not {output}")
    if len(pathway_kernels) != len(factors):
        raise ValueError("need one kernel list per pathway factor")
    if factors[0] != 1:
        raise ValueError(f"the first pathway has factor 1, not {factors[0]}")
    pathways = tuple(
        _pathway(output, kernels, factor)
        for kernels, factor in zip(pathway_kernels, factors, strict=True)
    )
    return SegmentGeometry(output, pathways)


def geometry_for_input(
    input_shape: int | Sequence[int],
    pathway_kernels: Sequence[Sequence[int]],
    factors: Sequence[int],
) -> SegmentGeometry:
    """Geometry whose normal-pathway input is ``input_shape`` (e.g. 25^3)."""
    shape = _triple(input_shape, "input_shape")
    shrink = shrinkage(pathway_kernels[0])
    output = tuple(n - shrink for n in shape)
    if min(output) < 1:
        raise ValueError(
            f"segment {shape} is too small for a network that removes {shrink} "
            f"voxels per axis; use at least {shrink + 1}"
        )
    return segment_geometry(output, pathway_kernels, factors)


def equivariant_geometry(
    output_shape: int | Sequence[int],
    pathway_kernels: Sequence[Sequence[int]],
    factors: Sequence[int],
) -> SegmentGeometry:
    """Reads of the shift-equivariant evaluation of a prediction block.

    There every pathway is evaluated at every voxel phase: a pathway with factor
    ``f`` acts as its convolutions dilated by ``f`` over the full-resolution
    grid, so that prediction voxel ``v`` gets the pathway output computed from
    image voxels ``v + f * t``, ``t = -s/2 .. s/2`` (``s`` the pathway's
    shrinkage), centred on ``v`` for every ``v``, as the centre voxel of a
    training segment is. Each pathway then reads a contiguous window.

    Args:
        output_shape: prediction shape; every axis a multiple of every factor,
            so that each of the ``f^3`` phases has the same number of voxels.
        pathway_kernels: per pathway, the kernel edge of each convolution.
        factors: per pathway, the subsampling factor (the first is 1).

    Returns:
        A geometry whose pathways describe reads at step 1: ``factor`` is 1,
        ``input_shape`` is ``output_shape + f * s``, ``offset`` is ``-f * s/2``,
        ``crop`` is 0, and ``receptive_field`` is the dilated extent
        ``f * s + 1``. The phase ``r`` (per axis, ``0 <= r < f``) of pathway
        ``p`` is its window sliced ``[r::f]``, cut to ``output / f + s``.
    """
    output = _triple(output_shape, "output_shape")
    if len(pathway_kernels) != len(factors):
        raise ValueError("need one kernel list per pathway factor")
    if any(n % f for n in output for f in factors):
        raise ValueError(
            f"output_shape {output} must be a multiple of every factor {list(factors)}"
        )
    pathways = []
    for kernels, factor in zip(pathway_kernels, factors, strict=True):
        shrink = shrinkage(kernels)
        pathways.append(
            PathwayGeometry(
                factor=1,
                input_shape=tuple(n + factor * shrink for n in output),
                output_shape=output,
                offset=(-factor * (shrink // 2),) * 3,
                crop=(0, 0, 0),
                receptive_field=factor * shrink + 1,
            )
        )
    return SegmentGeometry(output, tuple(pathways))


def _pathway(output: Shape3, kernels: Sequence[int], factor: int) -> PathwayGeometry:
    if factor < 1 or (factor > 1 and factor % 2 == 0):
        raise ValueError(f"subsampling factors must be 1 or odd, not {factor}")
    shrink = shrinkage(kernels)
    half = shrink // 2
    own_output = tuple(math.ceil(n / factor) for n in output)
    crop = tuple((m * factor - n) // 2 for m, n in zip(own_output, output, strict=True))
    offset = tuple((factor - 1) // 2 - c - factor * half for c in crop)
    return PathwayGeometry(
        factor=factor,
        input_shape=tuple(m + shrink for m in own_output),  # type: ignore[arg-type]
        output_shape=own_output,  # type: ignore[arg-type]
        offset=offset,  # type: ignore[arg-type]
        crop=crop,  # type: ignore[arg-type]
        receptive_field=factor * (shrink + 1),
    )


def _fmt(shape: Sequence[int]) -> str:
    return "x".join(str(n) for n in shape)
