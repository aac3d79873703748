"""Folding a trained network into its fast inference form.

A layer is ``conv_l(PReLU_l(BN_l(y_{l-1})))`` and ``y_{l-1}`` is the output of
``conv_{l-1}``, so the per-channel affine map of eval-mode ``BN_l`` can be
multiplied into ``conv_{l-1}``'s weights and bias: every tensor of the folded
network is stored already normalised, ``ŷ = a * y + c``, and no batch-norm pass
is left. (It cannot go into ``conv_l``: the PReLU in between is not linear.)

A residual connection adds an earlier, un-normalised tensor ``y_j`` to a layer's
output. It is recovered from the stored ``ŷ_j`` by the inverse map: the
division by ``a_j`` becomes one per-channel scale applied while adding
(``addcmul``, the same single pass as a plain add) and the constant joins the
bias. Where that inverse is ill-conditioned (a batch-norm scale below
:data:`MIN_FOLD_SCALE`), that one batch norm is applied explicitly instead.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from seg3d.inference.folded import FoldedLayer, FoldedNetwork
from seg3d.model.network import DeepMedic

MIN_FOLD_SCALE = 1e-6
"""Smallest batch-norm scale folded into a residual source (see module doc)."""

CHANNEL_MULTIPLE = 8
"""Convolution channels are padded to this (the AVX2 float32 vector width)."""

HEAD_MULTIPLE = 16
"""Head widths and classes are padded to this."""


def fold(
    model: DeepMedic,
    dtype: torch.dtype = torch.float32,
    *,
    channel_multiple: int = CHANNEL_MULTIPLE,
    head_multiple: int = HEAD_MULTIPLE,
) -> FoldedNetwork:
    """Fold a trained network's batch norms and head for inference.

    The batch norms' running statistics are used (eval-mode behaviour) whatever
    ``model.training`` is; dropout is dropped. The folding is computed in
    float64; the result is on the CPU, use :meth:`FoldedNetwork.to` to move it.

    Channel counts are padded with zero weights to multiples of
    ``channel_multiple`` (image and convolutions) and ``head_multiple`` (head
    widths, classes): the function is unchanged, and on x86 CPUs the padded
    layers run faster than the unpadded ones despite the extra arithmetic
    (measured in ``bench/bench_network.py``: a 4-channel first layer padded to 8
    ran 3 times faster, a 150-wide head layer padded to 160 about 1.3 times).

    Args:
        model: the trained network; it is not modified.
        dtype: the folded network's precision.
        channel_multiple: pad convolution channels to a multiple of this.
        head_multiple: pad head widths and classes to a multiple of this.
    """
    model = copy.deepcopy(model).cpu().double()
    with torch.no_grad():
        first = model.head[0]
        in_norm = _affine(first.norm, first.conv.in_channels)
        in_slope = _slope(first.activation, first.conv.in_channels)
        # The first head layer's output is normalised by the next layer's norm.
        out_scale, out_shift = _output_affine(model.head, 0)
        pathways = []
        head_inputs = []
        start = 0
        for pathway in model.pathways:
            part = slice(start, start + pathway.layers[-1].conv.out_channels)
            start = part.stop
            pathways.append(
                _fold_pathway(pathway, (in_norm[0][part], in_norm[1][part]))
            )
            weight = first.conv.weight[:, part, 0, 0, 0] * out_scale[:, None]
            head_inputs.append((weight.t().clone(), in_slope[part].clone()))
        head_bias = first.conv.bias * out_scale + out_shift
        head = [
            _fold_head_layer(block, *_output_affine(model.head, index))
            for index, block in enumerate(model.head)
            if index > 0
        ]
    pathways, head_inputs = _pad_pathways(pathways, head_inputs, channel_multiple)
    head_inputs, head_bias, head = _pad_head(
        head_inputs, head_bias, head, head_multiple
    )
    folded = FoldedNetwork(model.config, pathways, head_inputs, head_bias, head)
    return folded.to(dtype=dtype)


def _fold_pathway(
    pathway: nn.Module, last_norm: tuple[Tensor, Tensor]
) -> list[FoldedLayer]:
    """Fold one pathway; ``last_norm`` is the head's batch norm of its output."""
    blocks = list(pathway.layers)
    residual_layers = pathway.residual_layers
    sources = {layer - 2 for layer in residual_layers}
    channels = blocks[0].conv.in_channels
    # stored[l] = (a, c): tensor l is kept as a * y_l + c (y_0 is the image).
    stored = [_identity(channels)]
    pending: tuple[Tensor, Tensor] | None = None  # a norm left to apply explicitly
    folded = []
    for index, block in enumerate(blocks, start=1):
        width = block.conv.out_channels
        norm = _affine(blocks[index].norm, width) if index < len(blocks) else last_norm
        explicit = index in sources and bool(norm[0].abs().min() < MIN_FOLD_SCALE)
        scale, shift = (_identity(width)) if explicit else norm
        weight = block.conv.weight * scale.view(-1, 1, 1, 1, 1)
        bias = block.conv.bias * scale + shift
        residual_scale = None
        if index in residual_layers:
            # y_l = conv + y_j, and y_j = (stored_j - c_j) / a_j.
            source_scale, source_shift = stored[index - 2]
            k = min(width, source_scale.numel())
            residual_scale = scale[:k] / source_scale[:k]
            bias[:k] -= residual_scale * source_shift[:k]
        folded.append(
            FoldedLayer(
                weight=weight.clone(),
                bias=bias.clone(),
                slope=None
                if index == 1
                else _slope(block.activation, block.conv.in_channels),
                pre_scale=None if pending is None else pending[0].clone(),
                pre_shift=None if pending is None else pending[1].clone(),
                residual_scale=residual_scale,
            )
        )
        stored.append((scale, shift))
        pending = norm if explicit else None
    return folded


def _fold_head_layer(block: nn.Module, scale: Tensor, shift: Tensor) -> FoldedLayer:
    weight = block.conv.weight[:, :, 0, 0, 0] * scale[:, None]  # (C_out, C_in)
    return FoldedLayer(
        weight=weight.t().clone(),  # (C_in, C_out): rows @ weight
        bias=(block.conv.bias * scale + shift).clone(),
        slope=_slope(block.activation, block.conv.in_channels),
    )


def _output_affine(head: nn.ModuleList, index: int) -> tuple[Tensor, Tensor]:
    """The norm applied to head layer ``index``'s output (identity at the end)."""
    width = head[index].conv.out_channels
    if index + 1 < len(head):
        return _affine(head[index + 1].norm, width)
    return _identity(width)


def _affine(norm: nn.Module, width: int) -> tuple[Tensor, Tensor]:
    """Eval-mode batch norm as ``scale * x + shift``; identity when absent.

    Any batch norm (``BatchNorm3d``, or ``SyncBatchNorm`` from distributed
    training) folds the same way from its running statistics. Another kind of
    norm raises rather than being dropped silently.
    """
    if isinstance(norm, nn.Identity):
        return _identity(width)
    if not isinstance(norm, _BatchNorm):
        raise ValueError(
            f"cannot fold a {type(norm).__name__}: only batch norm (BatchNorm3d, "
            "SyncBatchNorm) or no norm (Identity) can be folded for inference"
        )
    if norm.running_var is None or norm.running_mean is None:
        raise ValueError("batch norm without running statistics cannot be folded")
    scale = torch.rsqrt(norm.running_var + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight
    shift = -norm.running_mean * scale
    if norm.bias is not None:
        shift = shift + norm.bias
    return scale, shift


def _slope(activation: nn.Module, width: int) -> Tensor:
    """Per-channel negative slope: PReLU's weights, or zeros for ReLU."""
    if isinstance(activation, nn.PReLU):
        return activation.weight.detach().expand(width).clone()
    return torch.zeros(width, dtype=torch.float64)


def _identity(width: int) -> tuple[Tensor, Tensor]:
    return torch.ones(width, dtype=torch.float64), torch.zeros(
        width, dtype=torch.float64
    )


# -- zero padding of channel counts ---------------------------------------------------


def _pad_pathways(
    pathways: list[list[FoldedLayer]],
    head_inputs: list[tuple[Tensor, Tensor]],
    multiple: int,
) -> tuple[list[list[FoldedLayer]], list[tuple[Tensor, Tensor]]]:
    """Pad every convolution's input and output channels with zero weights."""
    padded_pathways = []
    padded_inputs = []
    for layers, (weight, slope) in zip(pathways, head_inputs, strict=True):
        padded = []
        for layer in layers:
            c_out, c_in = layer.weight.shape[:2]
            out_pad, in_pad = _extra(c_out, multiple), _extra(c_in, multiple)
            padded.append(
                replace(
                    layer,
                    weight=F.pad(
                        layer.weight, (0, 0, 0, 0, 0, 0, 0, in_pad, 0, out_pad)
                    ),
                    bias=F.pad(layer.bias, (0, out_pad)),
                    slope=_pad(layer.slope, in_pad),
                    pre_scale=_pad(layer.pre_scale, in_pad, 1.0),
                    pre_shift=_pad(layer.pre_shift, in_pad),
                )
            )
        extra = _extra(weight.shape[0], multiple)
        padded_pathways.append(padded)
        padded_inputs.append((F.pad(weight, (0, 0, 0, extra)), _pad(slope, extra)))
    return padded_pathways, padded_inputs


def _pad_head(
    head_inputs: list[tuple[Tensor, Tensor]],
    head_bias: Tensor,
    head: list[FoldedLayer],
    multiple: int,
) -> tuple[list[tuple[Tensor, Tensor]], Tensor, list[FoldedLayer]]:
    """Pad the head's widths and the classes with zero weights."""
    extra = _extra(head_bias.numel(), multiple)
    head_inputs = [(F.pad(w, (0, extra)), s) for w, s in head_inputs]
    head_bias = F.pad(head_bias, (0, extra))
    padded = []
    for layer in head:
        c_in, c_out = layer.weight.shape
        in_pad, out_pad = _extra(c_in, multiple), _extra(c_out, multiple)
        padded.append(
            replace(
                layer,
                weight=F.pad(layer.weight, (0, out_pad, 0, in_pad)),
                bias=F.pad(layer.bias, (0, out_pad)),
                slope=_pad(layer.slope, in_pad),
            )
        )
    return head_inputs, head_bias, padded


def _extra(size: int, multiple: int) -> int:
    return -size % multiple


def _pad(values: Tensor | None, extra: int, fill: float = 0.0) -> Tensor | None:
    return None if values is None else F.pad(values, (0, extra), value=fill)
