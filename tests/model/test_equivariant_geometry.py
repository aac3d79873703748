"""Reads of the shift-equivariant evaluation (seg3d.model.geometry)."""

from __future__ import annotations

import pytest

from seg3d.model.config import NetworkConfig


def test_every_pathway_reads_a_centred_full_resolution_window():
    config = NetworkConfig.profile("multiscale")

    geometry = config.equivariant_geometry((15, 30, 45))

    assert geometry.output_shape == (15, 30, 45)
    for place, factor in zip(geometry.pathways, config.factors, strict=True):
        assert place.factor == 1  # contiguous reads
        assert place.offset == (-8 * factor,) * 3
        assert place.input_shape == tuple(n + 16 * factor for n in (15, 30, 45))
        assert place.receptive_field == 16 * factor + 1


def test_normal_pathway_reads_as_in_the_block_grid():
    config = NetworkConfig()

    equivariant = config.equivariant_geometry(12).pathways[0]
    grid = config.geometry(12).pathways[0]

    assert (equivariant.offset, equivariant.input_shape) == (
        grid.offset,
        grid.input_shape,
    )


def test_block_must_be_a_multiple_of_every_factor():
    with pytest.raises(ValueError, match=r"\(15, 15, 10\) must be a multiple of every"):
        NetworkConfig.profile("multiscale").equivariant_geometry((15, 15, 10))
