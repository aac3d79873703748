"""Networks that look trained: random batch-norm statistics and slopes."""

from __future__ import annotations

import torch

from seg3d.model.config import NetworkConfig
from seg3d.model.network import DeepMedic


def trained_like(config: NetworkConfig, seed: int = 0) -> DeepMedic:
    """A network in eval mode whose batch norms and PReLUs are far from init.

    Running means and variances, batch-norm weights of both signs and biases
    are drawn at random, so that folding them is actually exercised.
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = DeepMedic(config)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm3d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(n, generator=generator))
                sign = torch.where(torch.rand(n, generator=generator) < 0.2, -1.0, 1.0)
                module.weight.copy_(sign * (0.5 + torch.rand(n, generator=generator)))
                module.bias.copy_(0.5 * torch.randn(n, generator=generator))
            elif isinstance(module, torch.nn.PReLU):
                module.weight.copy_(
                    0.5 * torch.rand(module.weight.shape, generator=generator)
                )
    return model.eval()
