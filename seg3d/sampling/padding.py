"""The one border convention of training and inference.

A segment whose context reaches past the volume reads :data:`PAD_VALUE` there.
Images reach the sampler normalised (z-scores inside the ROI), so 0 is the mean
intensity: the network sees "average tissue" beyond the border rather than the
extreme value that a raw-intensity zero would be. DeepMedic pads the same way.
Training (:func:`seg3d.sampling.extract_segments`, which fills out-of-volume
voxels itself) and dense inference (which may pad the whole volume once with
:func:`pad_for_geometry`) must agree on this value, so both import it from here.

Target voxels outside the volume get :data:`LABEL_PAD_VALUE`, equal to the
default ``ignore_index`` of :class:`torch.nn.CrossEntropyLoss`: there is no
ground truth there, and inference never keeps predictions there, so those
voxels take no part in the loss. A Dice loss must mask them out explicitly.
Voxels inside the volume but outside the ROI keep their label.
"""

from __future__ import annotations

import numpy as np

from seg3d.model.geometry import SegmentGeometry, Shape3

PAD_VALUE: float = 0.0
"""Image value beyond the volume border (the mean of a z-scored image)."""

LABEL_PAD_VALUE: int = -100
"""Target class index beyond the volume border; the loss ignores it."""


def context_margins(geometry: SegmentGeometry) -> tuple[Shape3, Shape3]:
    """Image voxels read before the first and after the last prediction voxel.

    The maximum over all pathways, per axis. A prediction block whose first
    voxel is ``c0`` reads image indices ``c0 - before`` to
    ``c0 + output_shape - 1 + after``, whatever the pathway.

    Args:
        geometry: the segment geometry.

    Returns:
        ``(before, after)``, each three non-negative voxel counts (i, j, k).
    """
    before = []
    after = []
    for axis in range(3):
        last_output = geometry.output_shape[axis] - 1
        starts = [p.offset[axis] for p in geometry.pathways]
        ends = [
            p.offset[axis] + p.factor * (p.input_shape[axis] - 1)
            for p in geometry.pathways
        ]
        before.append(max(0, -min(starts)))
        after.append(max(0, max(ends) - last_output))
    return tuple(before), tuple(after)  # type: ignore[return-value]


def pad_for_geometry(
    array: np.ndarray,
    geometry: SegmentGeometry,
    *,
    value: float = PAD_VALUE,
    whole_blocks: bool = True,
) -> tuple[np.ndarray, Shape3]:
    """Pad a volume so that every prediction block reads only inside the array.

    After padding, the block whose first prediction voxel is image index ``c0``
    reads pathway ``p`` at padded indices ``c0 + before + offset_p + f_p * m``.
    These lie inside the padded array for every block that lies inside the
    volume and, with ``whole_blocks``, for the blocks ``c0 = 0, n, 2n, ...``
    (``n = geometry.output_shape``) that cover it, the last one overhanging.

    Args:
        array: ``(..., I, J, K)``: the last three axes are padded, leading axes
            (channels) are not. Any dtype that holds ``value``.
        geometry: the segment geometry the blocks are cut with.
        value: fill value; :data:`PAD_VALUE` for normalised images.
        whole_blocks: also pad the end of each axis up to a whole number of
            output blocks.

    Returns:
        The padded array (a new array, same dtype) and ``before``, the index
        shift per axis: padded index = image index + ``before``.
    """
    before, after = context_margins(geometry)
    spatial_shape = array.shape[-3:]
    if whole_blocks:
        after = tuple(
            a + (-size) % n
            for a, size, n in zip(
                after, spatial_shape, geometry.output_shape, strict=True
            )
        )
    widths = [(0, 0)] * (array.ndim - 3) + list(zip(before, after, strict=True))
    padded = np.pad(array, widths, mode="constant", constant_values=value)
    return padded, before
