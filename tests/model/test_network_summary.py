"""The text summary printed by `seg3d model` and `seg3d train --dry-run`."""

from __future__ import annotations

import pytest

from seg3d.model.config import NetworkConfig
from seg3d.model.flops import flops_for
from seg3d.model.network import DeepMedic
from seg3d.model.summary import describe_network


def test_paper_summary_states_sizes_fields_and_parameters():
    config = NetworkConfig()

    text = "\n".join(describe_network(config, 25))

    assert f"{DeepMedic(config).num_parameters():,} parameters" in text
    assert "x1 pathway: 8 unpadded convolutions" in text
    assert "receptive field 17^3" in text
    assert "receptive field 51^3" in text
    assert "x3: input 19x19x19 (covers 57x57x57 image voxels), output 3x3x3" in text
    assert "output = input - 16" in text
    assert "head (1x1x1): 100 -> 150 -> 150 -> 2" in text
    gflop = flops_for(config, 9) / 1e9
    assert f"{gflop:.3g} GFLOP per training segment" in text


def test_summary_lists_every_pathway_and_residuals():
    config = NetworkConfig.profile("multiscale")

    lines = describe_network(config, (25, 25, 19))

    assert sum("pathway:" in line for line in lines) == 3
    assert any("residual connections at layers: 4, 6, 8" in line for line in lines)
    assert any("multiples of 15 voxels" in line for line in lines)


def test_summary_of_a_too_small_segment_says_the_minimum():
    with pytest.raises(ValueError, match=r"use at least 17"):
        describe_network(NetworkConfig(), 15)
