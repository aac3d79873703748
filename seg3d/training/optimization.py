"""Optimisers and learning-rate schedules offered by ``seg3d train``."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

import torch

OptimizerName = Literal["adamw", "rmsprop"]
ScheduleName = Literal["cosine", "poly", "plateau", "constant"]


class NesterovRMSprop(torch.optim.Optimizer):
    """RMSProp with Nesterov momentum, the optimiser of the DeepMedic release.

    ``torch.optim.RMSprop`` offers classical momentum only. Here the step is
    ``v <- mu v - lr g / sqrt(E[g^2] + eps)`` followed by
    ``w <- w + mu v - lr g / sqrt(E[g^2] + eps)`` (Sutskever's form of
    Nesterov's look-ahead), with DeepMedic's defaults rho 0.9, eps 1e-4 and
    momentum 0.6. Weight decay is decoupled, as in AdamW.
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float = 1e-3,
        rho: float = 0.9,
        eps: float = 1e-4,
        momentum: float = 0.6,
        weight_decay: float = 0.0,
    ) -> None:
        defaults = dict(
            lr=lr, rho=rho, eps=eps, momentum=momentum, weight_decay=weight_decay
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["square_average"] = torch.zeros_like(param)
                    state["velocity"] = torch.zeros_like(param)
                if group["weight_decay"]:
                    param.mul_(1 - group["lr"] * group["weight_decay"])
                square = state["square_average"]
                square.mul_(group["rho"]).addcmul_(
                    param.grad, param.grad, value=1 - group["rho"]
                )
                update = param.grad / (square + group["eps"]).sqrt() * group["lr"]
                velocity = state["velocity"]
                velocity.mul_(group["momentum"]).sub_(update)
                param.add_(velocity, alpha=group["momentum"]).sub_(update)
        return loss


def make_optimizer(
    name: OptimizerName,
    parameters: Iterable[torch.nn.Parameter],
    learning_rate: float,
    weight_decay: float,
) -> torch.optim.Optimizer:
    if name == "adamw":
        return torch.optim.AdamW(
            parameters, lr=learning_rate, weight_decay=weight_decay
        )
    if name == "rmsprop":
        return NesterovRMSprop(parameters, lr=learning_rate, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}")


def make_schedule(
    name: ScheduleName, optimizer: torch.optim.Optimizer, epochs: int
) -> torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau:
    """A schedule stepped once per epoch (``plateau``: once per validation)."""
    if name == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda e: 0.5 * (1 + math.cos(math.pi * min(e, epochs) / epochs))
        )
    if name == "poly":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda e: max(0.0, 1 - e / epochs) ** 0.9
        )
    if name == "plateau":
        # Halve the rate when validation Dice stalls, as DeepMedic's schedule does.
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=0.5, patience=2
        )
    if name == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: 1.0)
    raise ValueError(f"unknown schedule {name!r}")
