"""Exact dense prediction of whole volumes.

The volume is cut into prediction blocks on one global grid
(:mod:`seg3d.inference.blocks`), each block's segments are read exactly as the
training sampler reads them (:func:`seg3d.sampling.extraction.extract_segments`,
same offsets, same padding beyond the border), and the folded network
(:mod:`seg3d.inference.folded`) predicts the block. Because blocks start on
multiples of every subsampling factor, the probabilities do not depend on the
block size or the memory budget, and each block equals the training network's
forward pass on its segments.

Two modes:

* **block grid** (default): each subsampled pathway output voxel is repeated
  over ``f^3`` prediction voxels, as in training. A voxel's context is centred
  on it only for the centre voxel of each ``f^3`` cell; the others see it off
  by up to ``(f - 1) / 2`` voxels per axis.
* **shift-equivariant**: every subsampled pathway is evaluated at each voxel
  phase, so every voxel's context is centred on it, as the centre voxel of a
  training segment's is. It costs more arithmetic: see
  :func:`seg3d.model.flops.flops_for`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch

from seg3d.device import choose_precision
from seg3d.errors import GeometryMismatchError
from seg3d.inference.blocks import (
    DEFAULT_MAX_MEMORY,
    Block,
    choose_block_shape,
    plan_blocks,
    roi_bounds,
)
from seg3d.inference.folded import FoldedNetwork
from seg3d.inference.folding import fold
from seg3d.model.geometry import SegmentGeometry, Shape3
from seg3d.model.network import DeepMedic
from seg3d.sampling.extraction import extract_segments

logger = logging.getLogger(__name__)

Precision = Literal["auto", "float32", "bfloat16"]

Progress = Callable[[int, int], None]
"""Called with (blocks done, blocks in total) after each block."""


class DensePredictor:
    """Predicts whole volumes with one trained network.

    Folds the network once (batch norm into convolutions), so that one
    predictor serves many volumes.

    Args:
        model: the trained network (not modified).
        device: where to compute, e.g. ``"cpu"`` or ``"cuda"``.
        precision: ``"float32"`` or ``"bfloat16"`` weights and activations,
            or ``"auto"``: bfloat16 where the device computes it fast (see
            :func:`seg3d.device.choose_precision`), else float32.
            Probabilities are always computed in float32 from the logits.
        channels_last: run convolutions in channels-last-3d layout (about twice
            as fast as the default layout for float32 on x86 CPUs).
        shift_equivariant: evaluate subsampled pathways at every voxel phase.
    """

    def __init__(
        self,
        model: DeepMedic,
        *,
        device: torch.device | str = "cpu",
        precision: Precision = "float32",
        channels_last: bool = True,
        shift_equivariant: bool = False,
    ) -> None:
        dtype = choose_precision(precision, device, allow_float16=False)
        self.config = model.config
        self.dtype = dtype
        self.precision: str = str(dtype).removeprefix("torch.")
        self.shift_equivariant = shift_equivariant
        self.network: FoldedNetwork = fold(model).to(
            device, dtype, channels_last=channels_last
        )

    @property
    def element_size(self) -> int:
        return torch.finfo(self.dtype).bits // 8

    def plan(
        self,
        spatial_shape: Sequence[int],
        roi_mask: np.ndarray | None = None,
        *,
        block_shape: int | Sequence[int] | None = None,
        max_memory: int | None = None,
    ) -> list[Block]:
        """The blocks :meth:`predict` computes for a volume.

        Args:
            spatial_shape: the volume's shape (i, j, k).
            roi_mask: ``(I, J, K)`` bool; blocks without ROI voxels are skipped.
            block_shape: the largest block; a multiple of
                ``config.alignment`` per axis. Default: the largest that fits
                ``max_memory``.
            max_memory: activation memory budget in bytes; default: 70 % of
                the free memory on a CUDA device, else
                :data:`~seg3d.inference.blocks.DEFAULT_MAX_MEMORY`.
        """
        bounds = roi_bounds(spatial_shape, self.config.alignment, roi_mask)
        if bounds is None:
            return []
        if block_shape is None:
            block_shape = choose_block_shape(
                self.config,
                [b - a for a, b in zip(*bounds, strict=True)],
                max_memory or self._default_memory(),
                element_size=self.element_size,
                shift_equivariant=self.shift_equivariant,
            )
        return plan_blocks(spatial_shape, block_shape, self.config.alignment, roi_mask)

    def predict(
        self,
        image: np.ndarray,
        roi_mask: np.ndarray | None = None,
        *,
        block_shape: int | Sequence[int] | None = None,
        max_memory: int | None = None,
        out: np.ndarray | None = None,
        progress: Progress | None = None,
    ) -> np.ndarray:
        """Class probabilities for every voxel of a volume.

        Args:
            image: ``(C, I, J, K)`` float32, preprocessed as in training
                (normalised); beyond its border the network reads the training
                padding value.
            roi_mask: ``(I, J, K)`` bool; voxels outside it get background
                probability 1, and blocks without ROI voxels are not computed.
            block_shape: see :meth:`plan`.
            max_memory: see :meth:`plan`.
            out: optional ``(num_classes, I, J, K)`` float32 array to fill (a
                ``np.memmap`` keeps even the result out of memory).
            progress: called after each block.

        Returns:
            ``(num_classes, I, J, K)`` float32 probabilities (``out`` if given).

        Raises:
            ValueError: ``image`` is not ``(C, I, J, K)`` with the model's
                channel count, or ``out`` has the wrong shape.
            GeometryMismatchError: ``roi_mask`` is not on the image's grid.
        """
        spatial_shape = self._check(image, roi_mask, out)
        if out is None:
            out = np.empty((self.config.num_classes, *spatial_shape), np.float32)
        _fill_background(out, (slice(None),) * 3)
        blocks = self.plan(
            spatial_shape, roi_mask, block_shape=block_shape, max_memory=max_memory
        )
        logger.debug(
            "predicting %d blocks of at most %s voxels", len(blocks), _largest(blocks)
        )
        for done, block in enumerate(blocks, start=1):
            self.predict_block(image, block, out)
            if roi_mask is not None:
                _mask_block(out, roi_mask, block.region(spatial_shape))
            if progress is not None:
                progress(done, len(blocks))
        return out

    def predict_block(self, image: np.ndarray, block: Block, out: np.ndarray) -> None:
        """Write one block's probabilities into ``out`` (inside the volume).

        Args:
            image: ``(C, I, J, K)`` float32.
            block: the block.
            out: ``(num_classes, I, J, K)`` float32, written in place.
        """
        geometry = self.geometry(block.shape)
        segments = extract_segments(image, geometry, block.start)
        inputs = [torch.from_numpy(segment)[None] for segment in segments]
        features = self.network.features(
            inputs, shift_equivariant=self.shift_equivariant
        )
        region = block.region(image.shape[1:])
        size_j = region[1].stop - region[1].start
        size_k = region[2].stop - region[2].start
        for start, stop in features.slabs():
            first = block.start[0] + start
            last = min(block.start[0] + stop, region[0].stop)
            if last <= first:
                break
            logits = self.network.head_logits(features, start, stop)
            probabilities = torch.softmax(logits[0].float(), dim=-1)  # (h, J, K, L)
            values = probabilities[: last - first, :size_j, :size_k]
            out[:, first:last, region[1], region[2]] = (
                values.permute(3, 0, 1, 2).cpu().numpy()
            )

    def geometry(self, block_shape: Shape3) -> SegmentGeometry:
        """The reads of one block in this predictor's mode."""
        if self.shift_equivariant:
            return self.config.equivariant_geometry(block_shape)
        return self.config.geometry(block_shape)

    def _check(
        self, image: np.ndarray, roi_mask: np.ndarray | None, out: np.ndarray | None
    ) -> Shape3:
        channels = self.config.in_channels
        if image.ndim != 4 or image.shape[0] != channels:
            raise ValueError(
                f"image must be (C, I, J, K) with C = {channels} (the model's "
                f"channels), not {image.shape}"
            )
        spatial_shape = tuple(image.shape[1:])
        if roi_mask is not None and roi_mask.shape != spatial_shape:
            raise GeometryMismatchError(
                f"the ROI mask has shape {roi_mask.shape} but the image "
                f"{spatial_shape}; give a mask on the image's grid"
            )
        expected = (self.config.num_classes, *spatial_shape)
        if out is not None and (out.shape != expected or out.dtype != np.float32):
            raise ValueError(
                f"out must be {expected} float32, not {out.shape} {out.dtype}"
            )
        return spatial_shape  # type: ignore[return-value]

    def _default_memory(self) -> int:
        device = self.network.device
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            return int(0.7 * free)
        return DEFAULT_MAX_MEMORY


def predict_dense(
    model: DeepMedic,
    image: np.ndarray,
    roi_mask: np.ndarray | None = None,
    *,
    device: torch.device | str = "cpu",
    precision: Precision = "float32",
    shift_equivariant: bool = False,
    block_shape: int | Sequence[int] | None = None,
    max_memory: int | None = None,
) -> np.ndarray:
    """Class probabilities for a whole volume; see :class:`DensePredictor`.

    Args:
        model: the trained network.
        image: ``(C, I, J, K)`` float32, preprocessed as in training.
        roi_mask: ``(I, J, K)`` bool, or ``None`` for the whole volume.
        device: where to compute.
        precision: ``"auto"``, ``"float32"`` or ``"bfloat16"``.
        shift_equivariant: evaluate subsampled pathways at every voxel phase.
        block_shape: largest prediction block (multiple of ``config.alignment``).
        max_memory: activation memory budget in bytes.

    Returns:
        ``(num_classes, I, J, K)`` float32 probabilities.
    """
    predictor = DensePredictor(
        model, device=device, precision=precision, shift_equivariant=shift_equivariant
    )
    return predictor.predict(
        image, roi_mask, block_shape=block_shape, max_memory=max_memory
    )


def _fill_background(out: np.ndarray, region: tuple[slice, ...]) -> None:
    out[(slice(None), *region)] = 0.0
    out[(0, *region)] = 1.0


def _mask_block(
    out: np.ndarray, roi_mask: np.ndarray, region: tuple[slice, ...]
) -> None:
    outside = ~roi_mask[region]
    if outside.any():
        view = out[(slice(None), *region)]  # (L, i, j, k) view of the block
        view[:, outside] = 0.0
        view[0, outside] = 1.0


def _largest(blocks: Sequence[Block]) -> str:
    if not blocks:
        return "0"
    shape = max((b.shape for b in blocks), key=math.prod)
    return "x".join(str(n) for n in shape)
