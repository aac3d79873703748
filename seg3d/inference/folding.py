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

import torch
from torch import Tensor, nn

from seg3d.inference.folded import FoldedLayer, FoldedNetwork
from seg3d.model.network import DeepMedic

MIN_FOLD_SCALE = 1e-6
"""Smallest batch-norm scale folded into a residual source (see module doc)."""


def fold(model: DeepMedic, dtype: torch.dtype = torch.float32) -> FoldedNetwork:
    """Fold a trained network's batch norms and head for inference.

    The batch norms' running statistics are used (eval-mode behaviour) whatever
    ``model.training`` is; dropout is dropped. The folding is computed in
    float64; the result is on the CPU, use :meth:`FoldedNetwork.to` to move it.

    Args:
        model: the trained network; it is not modified.
        dtype: the folded network's precision.
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
            head_inputs.append((weight.clone(), in_slope[part].clone()))
        head_bias = first.conv.bias * out_scale + out_shift
        head = [
            _fold_head_layer(block, *_output_affine(model.head, index))
            for index, block in enumerate(model.head)
            if index > 0
        ]
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
        weight=weight.clone(),
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
    """Eval-mode batch norm as ``scale * x + shift``; identity when absent."""
    if not isinstance(norm, nn.BatchNorm3d):
        return _identity(width)
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
