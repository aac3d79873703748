"""The trained network in its fast inference form.

:func:`seg3d.inference.folding.fold` builds a :class:`FoldedNetwork` from a
:class:`~seg3d.model.network.DeepMedic`; it computes the same eval-mode
function with fewer passes over memory:

* batch norm is folded into the convolutions (see :mod:`~.folding`);
* the head runs as matrix products over voxels in rows, ``(N, C)``, and slab
  by slab along axis i, so its 150-channel temporaries stay small;
* subsampled pathways join the head at low resolution: the first head layer is
  linear in the concatenated pathway outputs and repetition commutes with it,
  so each subsampled pathway's share of that layer is computed on its own
  voxels (``f^3`` times fewer) and broadcast-added. Neither the repeated
  tensor nor the concatenation is ever built.

It also offers the shift-equivariant evaluation, in which every subsampled
pathway is evaluated at each of its ``f^3`` voxel phases (equivalent to its
convolutions dilated by ``f`` over the full grid).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from seg3d.model.config import NetworkConfig
from seg3d.model.geometry import SegmentGeometry

HEAD_ROWS = 32768
"""Voxels per head slab: keeps the ``(rows, 150)`` temporaries in cache."""


@dataclass(frozen=True)
class FoldedLayer:
    """One folded layer: optional explicit affine, activation, conv, residual.

    Attributes:
        weight: ``(C_out, C_in, k, k, k)`` convolution weight, or
            ``(C_in, C_out)`` for a head layer (voxel rows times weight).
        bias: ``(C_out,)``.
        slope: ``(C_in,)`` activation slope on the input (0 for ReLU), or
            ``None`` for a layer that reads the image directly.
        pre_scale: ``(C_in,)`` batch-norm scale applied explicitly before the
            activation, or ``None`` where it was folded away.
        pre_shift: ``(C_in,)`` the matching shift, or ``None``.
        residual_scale: ``(C_res,)`` per-channel scale of the residual added
            to the first ``C_res`` output channels, or ``None``.
    """

    weight: Tensor
    bias: Tensor
    slope: Tensor | None = None
    pre_scale: Tensor | None = None
    pre_shift: Tensor | None = None
    residual_scale: Tensor | None = None

    def to(
        self, device: torch.device | str | None, dtype: torch.dtype | None
    ) -> FoldedLayer:
        moved = {
            name: None if value is None else value.to(device=device, dtype=dtype)
            for name, value in vars(self).items()
        }
        return FoldedLayer(**moved)


@dataclass(frozen=True)
class PathwayFeatures:
    """The pathways' outputs for one batch of segments, before the head.

    Attributes:
        geometry: the reads that produced them (block-grid or
            shift-equivariant geometry).
        outputs: per pathway, its stored output: ``(B, C_p, I, J, K)`` for the
            normal pathway and in shift-equivariant mode; the pathway's own
            ``(B, C_p, m_i, m_j, m_k)`` voxels for subsampled pathways in
            block-grid mode.
        shift_equivariant: the mode.
    """

    geometry: SegmentGeometry
    outputs: list[Tensor]
    shift_equivariant: bool

    def slabs(self, rows: int = HEAD_ROWS) -> Iterator[tuple[int, int]]:
        """Ranges of prediction planes along i holding about ``rows`` voxels.

        Slab edges fall on multiples of every factor (the shift-equivariant
        geometry's factors are 1), so that in aligned blocks a subsampled
        pathway's share is a plain broadcast.
        """
        size_i, size_j, size_k = self.geometry.output_shape
        step = math.lcm(*self.geometry.factors)
        planes = max(step, rows // (size_j * size_k) // step * step)
        for start in range(0, size_i, planes):
            yield start, min(start + planes, size_i)


class FoldedNetwork:
    """Eval-mode DeepMedic with batch norm folded and a matrix-product head.

    Built by :func:`seg3d.inference.folding.fold`; computes the source
    network's eval-mode logits to float rounding.

    Attributes:
        config: the architecture.
        pathways: per pathway, its folded layers.
        head_inputs: per pathway, the first head layer's ``(C_p, W)`` weight
            rows and ``(C_p,)`` activation slope for that pathway's output.
        head_bias: ``(W,)`` bias of the first head layer.
        head: the remaining head layers, the classifier last.
        channels_last: run the convolutions in channels-last-3d layout.
    """

    def __init__(
        self,
        config: NetworkConfig,
        pathways: Sequence[Sequence[FoldedLayer]],
        head_inputs: Sequence[tuple[Tensor, Tensor]],
        head_bias: Tensor,
        head: Sequence[FoldedLayer],
        channels_last: bool = False,
    ) -> None:
        self.config = config
        self.pathways = [list(layers) for layers in pathways]
        self.head_inputs = list(head_inputs)
        self.head_bias = head_bias
        self.head = list(head)
        self.channels_last = channels_last

    @property
    def dtype(self) -> torch.dtype:
        return self.head_bias.dtype

    @property
    def device(self) -> torch.device:
        return self.head_bias.device

    def to(
        self,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        channels_last: bool | None = None,
    ) -> FoldedNetwork:
        """A copy on another device, in another precision or memory layout."""
        if channels_last is None:
            channels_last = self.channels_last
        pathways = [[layer.to(device, dtype) for layer in p] for p in self.pathways]
        if channels_last:
            pathways = [[_channels_last(layer) for layer in p] for p in pathways]
        return FoldedNetwork(
            self.config,
            pathways,
            [
                (w.to(device=device, dtype=dtype), s.to(device=device, dtype=dtype))
                for w, s in self.head_inputs
            ],
            self.head_bias.to(device=device, dtype=dtype),
            [layer.to(device, dtype) for layer in self.head],
            channels_last,
        )

    @torch.inference_mode()
    def __call__(
        self, inputs: Sequence[Tensor], *, shift_equivariant: bool = False
    ) -> Tensor:
        """Class probabilities for the central block of the given segments.

        Args:
            inputs: per pathway, ``(B, C, i, j, k)``. Block-grid mode: the
                segments of :meth:`NetworkConfig.geometry_for_input`
                (subsampled ones already subsampled). Shift-equivariant mode:
                the full-resolution windows of
                :meth:`NetworkConfig.equivariant_geometry`.
            shift_equivariant: evaluate subsampled pathways at every phase.

        Returns:
            ``(B, I, J, K, num_classes)`` float32 probabilities, channels last.
        """
        features = self.features(inputs, shift_equivariant=shift_equivariant)
        slabs = [
            torch.softmax(self.head_logits(features, start, stop).float(), -1)
            for start, stop in features.slabs()
        ]
        return torch.cat(slabs, dim=1)

    @torch.inference_mode()
    def features(
        self, inputs: Sequence[Tensor], *, shift_equivariant: bool = False
    ) -> PathwayFeatures:
        """Run the pathways; the head then runs slab by slab on the result.

        Args:
            inputs: as for :meth:`__call__`.
            shift_equivariant: evaluate subsampled pathways at every phase.

        Raises:
            ValueError: the inputs do not fit the geometry.
        """
        geometry = self._check(inputs, shift_equivariant)
        inputs = [self._prepare(x) for x in inputs]
        outputs = [run_pathway(self.pathways[0], inputs[0])]
        for index, x in enumerate(inputs[1:], start=1):
            if shift_equivariant:
                outputs.append(self._all_phases(x, index))
            else:
                outputs.append(run_pathway(self.pathways[index], x))
        return PathwayFeatures(geometry, outputs, shift_equivariant)

    @torch.inference_mode()
    def head_logits(self, features: PathwayFeatures, start: int, stop: int) -> Tensor:
        """Logits of the prediction planes ``start:stop`` along axis i.

        Args:
            features: the pathways' outputs for one batch of segments.
            start: first plane (axis i of the prediction block).
            stop: past-the-end plane.

        Returns:
            ``(B, stop - start, J, K, num_classes)`` logits, network dtype.
        """
        normal = features.outputs[0][:, :, start:stop]
        hidden = self._head_share(normal, 0, self.head_bias)  # (B, h, J, K, W)
        for index, low in enumerate(features.outputs[1:], start=1):
            if features.shift_equivariant:
                hidden += self._head_share(low[:, :, start:stop], index)
            else:
                crop = features.geometry.pathways[index].crop
                self._add_repeated(hidden, low, index, crop, start)
        shape = hidden.shape
        rows = hidden.view(-1, shape[-1])  # (N, W)
        for layer in self.head:
            rows = torch.addmm(layer.bias, F.prelu(rows, layer.slope), layer.weight)
        # Padded classes (see folding) are dropped.
        return rows[:, : self.config.num_classes].view(*shape[:-1], -1)

    def _prepare(self, x: Tensor) -> Tensor:
        x = x.to(device=self.device, dtype=self.dtype)
        extra = self.pathways[0][0].weight.shape[1] - x.shape[1]
        if extra > 0:  # image channels padded with zero weights (see folding)
            x = F.pad(x, (0, 0, 0, 0, 0, 0, 0, extra))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        return x

    def _head_share(
        self, features: Tensor, index: int, bias: Tensor | None = None
    ) -> Tensor:
        """Pathway ``index``'s share of the first head layer, ``(B, i, j, k, W)``."""
        weight, slope = self.head_inputs[index]
        rows = F.prelu(features, slope).permute(0, 2, 3, 4, 1)  # (B, i, j, k, C)
        shape = rows.shape
        rows = rows.reshape(-1, shape[-1])  # a view in channels-last layout
        if bias is None:
            return (rows @ weight).view(*shape[:-1], -1)
        return torch.addmm(bias, rows, weight).view(*shape[:-1], -1)

    def _add_repeated(
        self, hidden: Tensor, low: Tensor, index: int, crop: Sequence[int], start: int
    ) -> None:
        """Add a subsampled pathway's share, repeated and cropped, to ``hidden``.

        Args:
            hidden: ``(B, h, J, K, W)`` for prediction planes ``start:start+h``;
                modified in place.
            low: ``(B, C_p, m_i, m_j, m_k)`` the pathway's output.
            index: the pathway.
            crop: voxels dropped at the start of each axis after repetition.
            start: first prediction plane of ``hidden`` along i.
        """
        f = self.config.factors[index]
        batch, height, size_j, size_k, width = hidden.shape
        first = (start + crop[0]) // f
        last = -(-(start + height + crop[0]) // f)
        share = self._head_share(low[:, :, first:last], index)  # (B, h', m_j, m_k, W)
        if (
            not any(crop)
            and start % f == 0
            and (height, size_j, size_k) == tuple(f * n for n in share.shape[1:4])
        ):
            # A broadcast view: the repeated tensor is never materialised.
            m_i, m_j, m_k = share.shape[1:4]
            grid = hidden.view(batch, m_i, f, m_j, f, m_k, f, width)
            grid += share[:, :, None, :, None, :, None, :]
            return
        for axis in (1, 2, 3):
            share = share.repeat_interleave(f, dim=axis)
        skip = start + crop[0] - first * f
        hidden += share[
            :,
            skip : skip + height,
            crop[1] : crop[1] + size_j,
            crop[2] : crop[2] + size_k,
        ]

    def _all_phases(self, window: Tensor, index: int) -> Tensor:
        """Pathway ``index`` at each of the ``f^3`` voxel phases, interleaved.

        The phases are stacked on the batch axis and run as one batch.

        Args:
            window: ``(B, C, I + f s, J + f s, K + f s)`` full-resolution input,
                ``s`` the shrinkage.
            index: the pathway.

        Returns:
            ``(B, C_p, I, J, K)``: the pathway's stored output at every voxel
            (a channels-last view).
        """
        f = self.config.factors[index]
        shrink = self.config.shrinkage
        batch = window.shape[0]
        extent = [(n - f * shrink) // f + shrink for n in window.shape[2:]]
        phases = [
            window[
                :,
                :,
                ri : ri + f * extent[0] : f,
                rj : rj + f * extent[1] : f,
                rk : rk + f * extent[2] : f,
            ]
            for ri, rj, rk in itertools.product(range(f), repeat=3)
        ]
        out = run_pathway(self.pathways[index], self._prepare(torch.cat(phases)))
        m_i, m_j, m_k = out.shape[2:]
        out = out.view(f, f, f, batch, -1, m_i, m_j, m_k)  # (ri, rj, rk, B, C, m...)
        # Output voxel n of phase r is prediction voxel f * n + r.
        out = out.permute(3, 5, 0, 6, 1, 7, 2, 4).reshape(
            batch, m_i * f, m_j * f, m_k * f, -1
        )
        return out.permute(0, 4, 1, 2, 3)

    def _check(
        self, inputs: Sequence[Tensor], shift_equivariant: bool
    ) -> SegmentGeometry:
        config = self.config
        if len(inputs) != len(config.factors):
            raise ValueError(
                f"need {len(config.factors)} inputs (one per pathway), "
                f"not {len(inputs)}"
            )
        normal = tuple(inputs[0].shape[2:])
        if shift_equivariant:
            geometry = config.equivariant_geometry(
                [n - config.shrinkage for n in normal]
            )
        else:
            geometry = config.geometry_for_input(normal)
        expected = [
            (inputs[0].shape[0], config.in_channels, *p.input_shape)
            for p in geometry.pathways
        ]
        found = [tuple(x.shape) for x in inputs]
        if found != expected:
            mode = "shift-equivariant" if shift_equivariant else "block-grid"
            raise ValueError(
                f"{mode} inputs for a normal segment of {normal} must be "
                f"{expected}, not {found}"
            )
        return geometry


def run_pathway(layers: Sequence[FoldedLayer], x: Tensor) -> Tensor:
    """Run one folded pathway.

    Args:
        layers: the pathway's folded layers.
        x: ``(B, C, i, j, k)`` input segment.

    Returns:
        ``(B, C_last, i - s, j - s, k - s)``, normalised for the head.
    """
    sources = {
        index - 2
        for index, layer in enumerate(layers, start=1)
        if layer.residual_scale is not None
    }
    kept = {0: x} if 0 in sources else {}
    for index, layer in enumerate(layers, start=1):
        if layer.pre_scale is not None and layer.pre_shift is not None:
            shape = (1, -1, 1, 1, 1)
            x = torch.addcmul(
                layer.pre_shift.view(shape), x, layer.pre_scale.view(shape)
            )
        if layer.slope is not None:
            x = F.prelu(x, layer.slope)
        x = F.conv3d(x, layer.weight, layer.bias)
        if layer.residual_scale is not None:
            source = _centre(kept.pop(index - 2), x.shape[2:])
            k = layer.residual_scale.numel()
            x[:, :k].addcmul_(source[:, :k], layer.residual_scale.view(-1, 1, 1, 1))
        if index in sources:
            kept[index] = x
    return x


def _centre(x: Tensor, shape: Sequence[int]) -> Tensor:
    """The central ``shape`` voxels of ``x`` ``(B, C, i, j, k)``."""
    first = [(n - m) // 2 for n, m in zip(x.shape[2:], shape, strict=True)]
    return x[
        :,
        :,
        first[0] : first[0] + shape[0],
        first[1] : first[1] + shape[1],
        first[2] : first[2] + shape[2],
    ]


def _channels_last(layer: FoldedLayer) -> FoldedLayer:
    return replace(
        layer, weight=layer.weight.contiguous(memory_format=torch.channels_last_3d)
    )
