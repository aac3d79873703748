"""Separable Gaussian filtering of volumes with anisotropic voxels, in torch."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

# Kernel taps beyond this many standard deviations are dropped; what they
# would add is below exp(-4^2 / 2) = 3.4e-4 of the centre tap.
TRUNCATE = 4.0

# Output positions computed per matrix product along an axis. Longer axes are
# cut into tiles of this length (plus the kernel's reach on each side), so the
# work per voxel stays near the kernel width rather than the axis length.
_TILE = 64
_MAX_UNTILED = 384


class SeparableGaussian:
    """Unnormalised Gaussian filter over a fixed spatial shape and spacing.

    Computes ``out(x) = sum_y exp(-sum_a (x_a - y_a)^2 / 2 sigma_a^2) in(y)``
    with distances in mm, the self term included (its weight is 1) and voxels
    beyond the volume counting as zero. The three 1D passes are banded matrix
    products, which run as BLAS calls on CPU and GPU alike.
    """

    def __init__(
        self,
        spatial_shape: Sequence[int],
        spacing: Sequence[float],
        sigma_mm: Sequence[float],
        device: torch.device | str = "cpu",
    ) -> None:
        """Build the three banded matrices.

        Args:
            spatial_shape: ``(I, J, K)`` of the volumes to filter.
            spacing: voxel size in mm along i, j, k.
            sigma_mm: the Gaussian's standard deviation in mm along i, j, k.
            device: where the filter runs.
        """
        self.spatial_shape = tuple(int(n) for n in spatial_shape)
        self._passes = [
            _AxisPass(length, step / sigma, device)
            for length, step, sigma in zip(
                self.spatial_shape, spacing, sigma_mm, strict=True
            )
        ]

    def __call__(self, values: torch.Tensor) -> torch.Tensor:
        """Filter ``(L, I, J, K)`` float32 values; returns the same shape."""
        channels = values.shape[0]
        size_i, size_j, size_k = self.spatial_shape
        out = self._passes[0](values.reshape(channels, size_i, size_j * size_k))
        out = self._passes[1](out.reshape(channels * size_i, size_j, size_k))
        out = self._passes[2](out.reshape(channels * size_i * size_j, size_k, 1))
        return out.reshape(values.shape)


class _AxisPass:
    """The 1D Gaussian along the middle axis of a ``(P, n, Q)`` array."""

    def __init__(self, length: int, step_in_sigmas: float, device) -> None:
        self.length = length
        self.radius = max(0, math.ceil(TRUNCATE / step_in_sigmas))
        # A short axis is one tile, filtered by a square band matrix without
        # padding; a long one is cut into tiles whose windows reach `radius`
        # voxels beyond each end.
        self.tiled = length > _MAX_UNTILED
        self.tile = _TILE if self.tiled else length
        self.num_tiles = math.ceil(length / self.tile)
        reach = self.radius if self.tiled else 0
        window = self.tile + 2 * reach
        # Row t of the band holds the weights output t gives the window's inputs.
        offset = (
            torch.arange(window, dtype=torch.float64)[None, :]
            - torch.arange(self.tile, dtype=torch.float64)[:, None]
            - reach
        )
        band = torch.exp(-0.5 * (offset * step_in_sigmas) ** 2)
        band[offset.abs() > self.radius] = 0.0
        self.band = band.float().to(device)  # (tile, window)

    def __call__(self, values: torch.Tensor) -> torch.Tensor:
        outer, length, inner = values.shape
        if not self.tiled:
            if inner == 1:
                # Along the last axis a row-vector product is BLAS-friendlier.
                return (values.squeeze(2) @ self.band.T).unsqueeze(2)
            return torch.matmul(self.band, values)
        padded_length = self.num_tiles * self.tile + 2 * self.radius
        after = padded_length - length - self.radius
        padded = F.pad(values, (0, 0, self.radius, after))  # (P, n_pad, Q)
        window = self.tile + 2 * self.radius
        # Overlapping windows as a view: (P, tiles, window, Q), no copy.
        windows = padded.as_strided(
            (outer, self.num_tiles, window, inner),
            (padded_length * inner, self.tile * inner, inner, 1),
        )
        if inner == 1:
            out = windows.squeeze(3) @ self.band.T  # (P, tiles, tile)
        else:
            out = torch.matmul(self.band, windows)  # (P, tiles, tile, Q)
        out = out.reshape(outer, self.num_tiles * self.tile, inner)
        return out[:, :length]
