"""Cutting one training sample: a segment per pathway and the label target.

Where each pathway reads comes from :mod:`seg3d.model.geometry` only: for a
prediction block whose first voxel is image index ``c0``, pathway ``p`` with
factor ``f`` reads image voxels ``c0 + offset_p + f * m`` (strided slicing, no
smoothing), and the target is ``label[c0 : c0 + output_shape]``, so that network
output voxel ``(i, j, k)`` is the prediction for target voxel ``(i, j, k)``.
Voxels beyond the volume read :data:`~seg3d.sampling.padding.PAD_VALUE` (image)
and :data:`~seg3d.sampling.padding.LABEL_PAD_VALUE` (target).

Flips and in-plane transposes are not applied to cut segments but folded into
the reading itself: the sample is read from the transformed volume, so it is
exactly the sample of that volume, on every pathway, even when a pathway's
context is not centred on the target (e.g. a x5 pathway for a 9^3 output).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from seg3d.model.geometry import SegmentGeometry, Shape3
from seg3d.sampling.padding import LABEL_PAD_VALUE, PAD_VALUE

Region = tuple[slice, slice, slice]
"""The part of a segment that lies inside the volume (its last three axes)."""


@dataclass(frozen=True)
class SpatialTransform:
    """An exact symmetry of the voxel grid: axis flips, then an i-j transpose.

    The transformed volume is ``W = T(F(V))``: ``F`` reverses the flipped axes
    of ``V``, ``T`` swaps axes i and j when ``transpose_ij`` is set. Together
    they give every flip and every 90-degree rotation in the i-j plane.

    Attributes:
        flips: per axis (i, j, k), whether it is reversed.
        transpose_ij: whether axes i and j are swapped after flipping; needs a
            geometry whose segments are square in the i-j plane.
    """

    flips: tuple[bool, bool, bool] = (False, False, False)
    transpose_ij: bool = False

    @classmethod
    def from_flips_and_rotation(
        cls, flip_axes: Sequence[int] = (), quarter_turns: int = 0
    ) -> SpatialTransform:
        """The transform ``np.rot90(np.flip(V, flip_axes), quarter_turns, (0, 1))``.

        Args:
            flip_axes: spatial axes (0 = i, 1 = j, 2 = k) flipped first.
            quarter_turns: then rotations by 90 degrees in the i-j plane, in
                numpy's ``rot90`` direction (from axis i towards axis j).
        """
        flips = [axis in flip_axes for axis in range(3)]
        # np.rot90 by k quarter turns equals flipping these axes, then
        # transposing i and j for odd k.
        turn_flips = {0: (), 1: (1,), 2: (0, 1), 3: (0,)}[quarter_turns % 4]
        for axis in turn_flips:
            flips[axis] = not flips[axis]
        return cls(tuple(flips), quarter_turns % 2 == 1)  # type: ignore[arg-type]

    @property
    def is_identity(self) -> bool:
        return not any(self.flips) and not self.transpose_ij

    def apply(self, array: np.ndarray) -> np.ndarray:
        """Transform a whole volume (a view): the reference for what samples see.

        Args:
            array: ``(..., I, J, K)``; the last three axes are spatial.
        """
        axes = [array.ndim - 3 + a for a in range(3) if self.flips[a]]
        flipped = np.flip(array, axes) if axes else array
        return flipped.swapaxes(-3, -2) if self.transpose_ij else flipped

    def output_start_after(
        self,
        output_start: Sequence[int],
        output_shape: Sequence[int],
        spatial_shape: Sequence[int],
    ) -> Shape3:
        """Where a prediction block lands in the transformed volume.

        Args:
            output_start: first voxel ``c0`` of the block in the original volume.
            output_shape: the block's shape (i, j, k) in the original volume.
            spatial_shape: the original volume's shape (i, j, k).

        Returns:
            The block's first voxel in ``self.apply(volume)``.
        """
        start = [
            size - c0 - n if flipped else c0
            for c0, n, size, flipped in zip(
                output_start, output_shape, spatial_shape, self.flips, strict=True
            )
        ]
        if self.transpose_ij:
            start[0], start[1] = start[1], start[0]
        return tuple(int(s) for s in start)  # type: ignore[return-value]


IDENTITY = SpatialTransform()


def extract_segments(
    image: np.ndarray,
    geometry: SegmentGeometry,
    output_start: Sequence[int],
    transform: SpatialTransform = IDENTITY,
) -> list[np.ndarray]:
    """Cut every pathway's input segment for one prediction block.

    Args:
        image: ``(C, I, J, K)`` float32 normalised intensities (an ``np.memmap``
            works: only the segment's voxels are read).
        geometry: segment sizes and offsets of every pathway.
        output_start: image index ``c0`` (i, j, k) of the block's first
            prediction voxel; may lie partly outside the volume.
        transform: read the segments of ``transform.apply(image)`` for the
            block covering the same voxels.

    Returns:
        One new ``(C, *pathway.input_shape)`` float32 array per pathway, normal
        pathway first; voxels beyond the volume hold ``PAD_VALUE``.
    """
    channels = image.shape[0]
    segments = [
        np.empty((channels, *pathway.input_shape), dtype=np.float32)
        for pathway in geometry.pathways
    ]
    extract_segments_into(segments, image, geometry, output_start, transform)
    return segments


def extract_segments_into(
    segments: Sequence[np.ndarray],
    image: np.ndarray,
    geometry: SegmentGeometry,
    output_start: Sequence[int],
    transform: SpatialTransform = IDENTITY,
) -> list[Region | None]:
    """:func:`extract_segments` writing into given arrays (e.g. batch slots).

    Args:
        segments: per pathway, a writable ``(C, *pathway.input_shape)`` array.
        image: ``(C, I, J, K)`` normalised intensities.
        geometry: segment sizes and offsets of every pathway.
        output_start: image index ``c0`` of the block's first prediction voxel.
        transform: as in :func:`extract_segments`.

    Returns:
        Per pathway, the region of its segment that lies inside the volume, or
        ``None`` if the segment lies wholly outside it.
    """
    source, start = _transformed_source(image, geometry, output_start, transform)
    flips = _source_flips(transform)
    regions = []
    for pathway, segment in zip(geometry.pathways, segments, strict=True):
        first, step = _window(
            start, geometry.output_shape, pathway.offset, pathway.factor, flips
        )
        regions.append(_read_window(source, first, step, segment, PAD_VALUE))
    return regions


def extract_target(
    class_map: np.ndarray,
    geometry: SegmentGeometry,
    output_start: Sequence[int],
    transform: SpatialTransform = IDENTITY,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Cut the label target of one prediction block.

    Args:
        class_map: ``(I, J, K)`` integer class indices (0 = background).
        geometry: gives the block's shape, ``geometry.output_shape``.
        output_start: image index ``c0`` of the block's first voxel.
        transform: as in :func:`extract_segments`.
        out: optional writable ``output_shape`` int64 array to fill.

    Returns:
        ``output_shape`` int64 class indices; ``LABEL_PAD_VALUE`` beyond the
        volume.
    """
    if out is None:
        out = np.empty(geometry.output_shape, dtype=np.int64)
    source, start = _transformed_source(class_map, geometry, output_start, transform)
    flips = _source_flips(transform)
    first, step = _window(start, geometry.output_shape, (0, 0, 0), 1, flips)
    _read_window(source, first, step, out, LABEL_PAD_VALUE)
    return out


def is_square_in_plane(geometry: SegmentGeometry) -> bool:
    """Whether every pathway reads the same pattern along i and along j."""
    return (
        all(
            p.input_shape[0] == p.input_shape[1] and p.offset[0] == p.offset[1]
            for p in geometry.pathways
        )
        and geometry.output_shape[0] == geometry.output_shape[1]
    )


def _transformed_source(
    array: np.ndarray,
    geometry: SegmentGeometry,
    output_start: Sequence[int],
    transform: SpatialTransform,
) -> tuple[np.ndarray, Shape3]:
    # T(F(V)) equals F'(T(V)) with the i and j flips exchanged, so a transpose
    # becomes a free view of the volume and the flips become negative strides.
    start = tuple(int(c) for c in output_start)
    if len(start) != 3:
        raise ValueError(f"output_start must have three indices, not {output_start!r}")
    if not transform.transpose_ij:
        return array, start  # type: ignore[return-value]
    if not is_square_in_plane(geometry):
        raise ValueError(
            "an i-j transpose needs segments square in the i-j plane, not output "
            f"shape {geometry.output_shape}"
        )
    return array.swapaxes(-3, -2), (start[1], start[0], start[2])


def _source_flips(transform: SpatialTransform) -> tuple[bool, bool, bool]:
    flip_i, flip_j, flip_k = transform.flips
    return (
        (flip_j, flip_i, flip_k) if transform.transpose_ij else (flip_i, flip_j, flip_k)
    )


def _window(
    output_start: Shape3,
    output_shape: Shape3,
    offset: Shape3,
    factor: int,
    flips: tuple[bool, bool, bool],
) -> tuple[Shape3, Shape3]:
    """First source index and step per axis of a pathway's reads."""
    first = []
    step = []
    for c0, n, off, flipped in zip(
        output_start, output_shape, offset, flips, strict=True
    ):
        if flipped:
            # In the flipped volume the block starts at S - c0 - n; mapping its
            # reads back gives c0 + n - 1 - offset - factor * m, independent of S.
            first.append(c0 + n - 1 - off)
            step.append(-factor)
        else:
            first.append(c0 + off)
            step.append(factor)
    return tuple(first), tuple(step)  # type: ignore[return-value]


def _read_window(
    source: np.ndarray, first: Shape3, step: Shape3, out: np.ndarray, fill: float
) -> Region | None:
    """Copy ``source[..., first + step * m]`` into ``out``, filling outside."""
    sources = []
    region = []
    for f0, s, n, size in zip(
        first, step, out.shape[-3:], source.shape[-3:], strict=True
    ):
        if s > 0:
            m_lo = max(0, -(f0 // s))
            m_hi = min(n, (size - 1 - f0) // s + 1)
        else:
            m_lo = max(0, -((size - 1 - f0) // -s))
            m_hi = min(n, f0 // -s + 1)
        if m_hi <= m_lo:
            out[...] = fill
            return None
        stop = f0 + s * m_hi
        sources.append(slice(f0 + s * m_lo, stop if stop >= 0 else None, s))
        region.append(slice(m_lo, m_hi))
    if any(
        r.start > 0 or r.stop < n for r, n in zip(region, out.shape[-3:], strict=True)
    ):
        out[...] = fill
    out[(..., *region)] = source[(..., *sources)]
    return tuple(region)  # type: ignore[return-value]
