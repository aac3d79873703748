"""The permutohedral lattice and the separable Gaussian, each on its own."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seg3d.postprocessing import gaussian, lattice
from seg3d.postprocessing.gaussian import SeparableGaussian
from seg3d.postprocessing.lattice import PermutohedralLattice


def exact_gaussian_filter(features: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``out_i = sum_j exp(-|f_i - f_j|^2 / 2) values_j``; features (d, N)."""
    squared = ((features[:, :, None] - features[:, None, :]) ** 2).sum(0)
    return np.exp(-0.5 * squared) @ values


def random_features(d: int, count: int, seed: int, ties: bool = False) -> torch.Tensor:
    features = torch.rand(d, count, generator=torch.Generator().manual_seed(seed)) * 6
    # Values on a coarse grid put many points exactly on shared simplex faces.
    return torch.round(features * 2) / 2 if ties else features


@pytest.mark.parametrize("d", [1, 2, 3, 5, 7], ids=lambda d: f"d{d}")
@pytest.mark.parametrize("ties", [False, True], ids=["generic", "ties"])
def test_three_ways_of_numbering_vertices_give_the_same_filter(monkeypatch, d, ties):
    features = random_features(d, 600, seed=d, ties=ties)
    values = torch.rand(2, 600, generator=torch.Generator().manual_seed(1))
    table = PermutohedralLattice(features)
    monkeypatch.setattr(lattice, "_TABLE_MIN_ENTRIES", 0)
    monkeypatch.setattr(lattice, "_TABLE_ENTRIES_PER_POINT", 0)
    sort = PermutohedralLattice(features)
    rows = PermutohedralLattice(features, pack_keys=False)
    assert table.num_vertices == sort.num_vertices == rows.num_vertices
    torch.testing.assert_close(table.filter(values), sort.filter(values))
    torch.testing.assert_close(table.filter(values), rows.filter(values))


@pytest.mark.parametrize("d", [2, 3, 5], ids=lambda d: f"d{d}")
def test_filter_approximates_the_gaussian(d):
    # Dense points (about 1 per unit cube), where the lattice is at its best.
    features = random_features(d, 3**d * 20, seed=0) / 2
    values = np.ones((features.shape[1], 1))
    exact = exact_gaussian_filter(features.double().numpy(), values)[:, 0]
    fast = PermutohedralLattice(features).filter(torch.ones(1, features.shape[1]))
    ratio = fast.numpy()[0] / exact
    # The lattice's kernel integrates like the Gaussian up to a constant near 1
    # and varies from point to point by the interpolation error.
    assert 0.6 < np.median(ratio) < 1.4
    assert ratio.std() / np.median(ratio) < 0.2


def test_filter_is_linear_and_channels_are_independent():
    features = random_features(4, 300, seed=3)
    grid = PermutohedralLattice(features)
    generator = torch.Generator().manual_seed(4)
    a, b = (
        torch.rand(1, 300, generator=generator),
        torch.rand(1, 300, generator=generator),
    )
    together = grid.filter(torch.cat([a, b]))
    torch.testing.assert_close(together, torch.cat([grid.filter(a), grid.filter(b)]))
    torch.testing.assert_close(
        grid.filter(2 * a + b), 2 * grid.filter(a) + grid.filter(b)
    )


def test_sort_points_is_stable_on_both_paths():
    keys = torch.tensor([5, 3, 5, 3, 3, 0, 5], dtype=torch.int64)
    order, ordered = lattice._sort_points(keys)
    assert order.tolist() == [5, 1, 3, 4, 0, 2, 6]
    assert ordered.tolist() == [0, 3, 3, 3, 5, 5, 5]
    too_wide = keys + 2**60  # too many bits to append the index
    order, _ = lattice._sort_points(too_wide)
    assert order.tolist() == [5, 1, 3, 4, 0, 2, 6]


def test_features_must_be_a_matrix():
    with pytest.raises(ValueError, match=r"features must be \(d, N\)"):
        PermutohedralLattice(torch.zeros(3))


def direct_gaussian_sum(values, spacing, sigma_mm):
    """The unnormalised Gaussian as a dense sum per axis, cut beyond the
    voxel that reaches 4 sigma."""
    out = values.astype(np.float64)
    for axis, (step, sigma) in enumerate(zip(spacing, sigma_mm, strict=True), start=1):
        index = np.arange(values.shape[axis])
        offset = index[:, None] - index[None, :]
        matrix = np.exp(-0.5 * (offset * step / sigma) ** 2)
        matrix[np.abs(offset) > np.ceil(4 * sigma / step)] = 0.0
        out = np.moveaxis(np.tensordot(matrix, out, axes=([1], [axis])), 0, axis)
    return out


@pytest.mark.parametrize("tiled", [False, True], ids=["one-tile", "tiled"])
def test_separable_gaussian_matches_the_direct_sum(monkeypatch, tiled):
    if tiled:
        monkeypatch.setattr(gaussian, "_MAX_UNTILED", 8)
        monkeypatch.setattr(gaussian, "_TILE", 5)
    shape, spacing, sigma = (9, 23, 17), (1.2, 0.8, 2.5), (3.0, 2.0, 4.0)
    values = np.random.default_rng(0).random((2, *shape)).astype(np.float32)
    fast = SeparableGaussian(shape, spacing, sigma)(torch.from_numpy(values))
    expected = direct_gaussian_sum(values, spacing, sigma)
    np.testing.assert_allclose(fast.numpy(), expected, rtol=1e-5)
