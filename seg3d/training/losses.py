"""Losses over segment predictions: cross-entropy, soft Dice, or their sum."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

LossName = Literal["cross_entropy", "dice", "cross_entropy+dice"]


IGNORE_INDEX = -100
"""Target value of voxels that take no part in the loss (beyond the volume)."""


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """One minus the mean soft Dice over foreground classes, pooled over the batch.

    Args:
        logits: ``(B, N, I, J, K)`` scores for ``N`` classes.
        target: ``(B, I, J, K)`` int64 class indices; voxels equal to
            :data:`IGNORE_INDEX` are left out.

    Pooling over the whole batch (rather than per segment) keeps segments that
    hold no foreground from pulling the loss to an arbitrary value.
    """
    num_classes = logits.shape[1]
    valid = (target != IGNORE_INDEX).unsqueeze(1).float()  # (B, 1, I, J, K)
    probabilities = logits.float().softmax(dim=1) * valid
    one_hot = F.one_hot(target.clamp(min=0), num_classes).permute(0, 4, 1, 2, 3)
    one_hot = one_hot.float() * valid  # (B, N, I, J, K)
    dims = (0, 2, 3, 4)
    intersection = (probabilities * one_hot).sum(dims)  # (N,)
    total = probabilities.sum(dims) + one_hot.sum(dims)  # (N,)
    dice = (2 * intersection + 1.0) / (total + 1.0)
    return 1.0 - dice[1:].mean() if num_classes > 1 else 1.0 - dice.mean()


def segmentation_loss(
    logits: torch.Tensor, target: torch.Tensor, name: LossName
) -> torch.Tensor:
    """The training loss ``name`` of ``logits`` ``(B, N, I, J, K)`` against
    ``target`` ``(B, I, J, K)`` class indices."""
    if name == "cross_entropy":
        return F.cross_entropy(logits.float(), target, ignore_index=IGNORE_INDEX)
    if name == "dice":
        return soft_dice_loss(logits, target)
    if name == "cross_entropy+dice":
        return F.cross_entropy(
            logits.float(), target, ignore_index=IGNORE_INDEX
        ) + soft_dice_loss(logits, target)
    raise ValueError(f"unknown loss {name!r}")
