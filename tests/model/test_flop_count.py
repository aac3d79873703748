"""FLOP counting, cross-checked with torch's own FlopCounterMode."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from seg3d.model.config import NetworkConfig
from seg3d.model.flops import flops_for, flops_per_voxel
from seg3d.model.network import DeepMedic

CONFIGS = {
    "tiny": NetworkConfig.profile("tiny"),
    "tiny-x3-x5-residual": NetworkConfig.profile(
        "tiny", subsampling_factors=[3, 5], residual_layers=[3], in_channels=2
    ),
    "single-scale": NetworkConfig.profile("tiny", subsampling_factors=[]),
}


@pytest.mark.parametrize("name", sorted(CONFIGS), ids=sorted(CONFIGS))
@pytest.mark.parametrize("output_shape", [(9, 9, 9), (6, 11, 4)], ids=["9", "uneven"])
def test_flops_equal_torch_flop_counter(name, output_shape):
    config = CONFIGS[name]
    model = DeepMedic(config).eval()
    geometry = config.geometry(output_shape)
    inputs = [
        torch.zeros(1, config.in_channels, *p.input_shape) for p in geometry.pathways
    ]

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(inputs)

    assert flops_for(config, output_shape) == counter.get_total_flops()


def test_paper_network_cost_per_voxel():
    # Per voxel: 27 * (1*30 + 30*30 + 30*40 + 3 * 40*40 + 40*50 + 50*50) multiply-adds
    # in the normal pathway, 1/27 of that in the x3 pathway, 100*150 + 150*150 +
    # 150*2 in the head; the unpadded margins add about 8 % at 600^3.
    config = NetworkConfig()
    convolutions = 27 * 11430
    per_voxel = 2 * (convolutions * (1 + 1 / 27) + 37800)

    assert flops_per_voxel(config, 600) == pytest.approx(per_voxel, rel=0.05)
    assert flops_per_voxel(config, 600) > per_voxel


def test_shift_equivariant_runs_each_subsampled_pathway_per_phase():
    config = CONFIGS["tiny"]
    grid = flops_for(config, 12)
    normal_only = flops_for(NetworkConfig.profile("tiny", subsampling_factors=[]), 12)
    head_extra = 2 * 6 * 8 * 12**3  # the x3 pathway's 6 channels into the head

    context = grid - normal_only - head_extra
    assert flops_for(config, 12, shift_equivariant=True) == grid + 26 * context


def test_shift_equivariant_needs_aligned_blocks():
    with pytest.raises(ValueError, match=r"must be a multiple of every factor"):
        flops_for(CONFIGS["tiny"], 10, shift_equivariant=True)
