"""Prediction blocks on one global grid, and block sizes from a memory budget."""

from __future__ import annotations

import numpy as np
import pytest

from seg3d.errors import ConfigError
from seg3d.inference.blocks import (
    choose_block_shape,
    estimate_block_memory,
    plan_blocks,
)
from seg3d.model.config import NetworkConfig

SHAPE = (50, 37, 23)


@pytest.mark.parametrize(
    ("block_shape", "alignment"),
    [(6, 3), ((15, 30, 45), 15), ((3, 9, 24), 3)],
    ids=["6-x3", "15-30-45-x15", "uneven-x3"],
)
def test_blocks_cover_every_voxel_once_on_the_grid(block_shape, alignment):
    blocks = plan_blocks(SHAPE, block_shape, alignment)
    covered = np.zeros(SHAPE, int)

    for block in blocks:
        covered[block.region(SHAPE)] += 1
        assert all(c0 % alignment == 0 for c0 in block.start)
        assert all(n % alignment == 0 for n in block.shape)
        # Only the last block along an axis overhangs, by less than the alignment.
        for c0, n, size in zip(block.start, block.shape, SHAPE, strict=True):
            assert c0 + n <= size or c0 + n - size < alignment

    assert np.all(covered == 1)


def test_blocks_without_roi_voxels_are_left_out():
    roi_mask = np.zeros(SHAPE, bool)
    roi_mask[13, 2, 20] = True

    blocks = plan_blocks(SHAPE, 12, 3, roi_mask)

    # Tiling starts at the ROI's first voxel rounded down to the grid.
    assert [(b.start, b.shape) for b in blocks] == [((12, 0, 18), (3, 3, 3))]


def test_blocks_tile_the_roi_bounding_box_only():
    roi_mask = np.zeros(SHAPE, bool)
    roi_mask[20:31, 4:9, 5:6] = True
    covered = np.zeros(SHAPE, int)

    blocks = plan_blocks(SHAPE, 6, 3, roi_mask)

    for block in blocks:
        covered[block.region(SHAPE)] += 1
    assert covered.max() == 1
    assert np.all(covered[roi_mask] == 1)
    assert [b.start[0] for b in blocks][:1] == [18]
    assert plan_blocks(SHAPE, 6, 3, np.zeros(SHAPE, bool)) == []


def test_block_shape_must_be_aligned():
    with pytest.raises(
        ValueError, match=r"multiple of 15 per axis, not \(15, 15, 20\)"
    ):
        plan_blocks(SHAPE, (15, 15, 20), 15)


@pytest.mark.parametrize("equivariant", [False, True], ids=["grid", "equivariant"])
def test_chosen_blocks_fit_the_budget_and_grow_with_it(equivariant):
    config = NetworkConfig()
    volume = (240, 240, 155)
    sizes = []

    for budget in (2**28, 2**30, 2**32):
        shape = choose_block_shape(
            config, volume, budget, shift_equivariant=equivariant
        )
        estimate = estimate_block_memory(config, shape, shift_equivariant=equivariant)
        assert estimate <= budget
        assert all(n % 3 == 0 for n in shape)
        sizes.append(np.prod(shape))

    assert sizes == sorted(sizes)
    assert sizes[0] < sizes[-1]


def test_a_large_budget_gives_one_block_and_blocks_are_even():
    config = NetworkConfig.profile("tiny")

    assert choose_block_shape(config, (20, 31, 9), 2**34) == (21, 33, 9)
    # 100 voxels in blocks of at most ~75: two blocks of 51 rather than 75 + 25.
    shape = choose_block_shape(
        config, (100, 9, 9), estimate_block_memory(config, (75, 9, 9))
    )
    assert shape[0] == 51


def test_bfloat16_halves_activation_memory_roughly():
    config = NetworkConfig()

    full = estimate_block_memory(config, 96, element_size=4)
    half = estimate_block_memory(config, 96, element_size=2)

    assert 0.5 < half / full < 0.7  # the float32 input segments stay


def test_a_budget_below_the_smallest_block_is_rejected():
    with pytest.raises(ConfigError, match=r"max_memory 0.01 MB is too small"):
        choose_block_shape(NetworkConfig(), (100, 100, 100), 10_000)
