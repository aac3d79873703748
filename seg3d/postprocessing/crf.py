"""Fully connected 3D CRF with mean-field inference, on CPU or GPU.

The model is Krähenbühl and Koltun's dense CRF extended to 3D volumes and
several image channels as Kamnitsas et al. did for DeepMedic: unary
``-log p`` from the network's class probabilities, and a pairwise term between
every two voxels of the region of interest made of a smoothness kernel over
distance and an appearance kernel over distance and intensities (see
:class:`~seg3d.postprocessing.crf_params.CrfParams` and ``docs/crf.md``).

Mean-field inference needs, per iteration, each kernel applied to the current
label distribution ``Q``. The smoothness kernel is separable and is applied by
three banded matrix products (exact up to a 4-sigma cut); the appearance kernel
lives in 3 + C dimensions and is applied through a permutohedral lattice built
once per volume. Each kernel is normalised symmetrically,
``D^-1/2 K D^-1/2`` with ``D`` its row sums (self term included), as in
Krähenbühl's reference implementation; with that normalisation the weights
mean the same on every volume size and spacing.

References:
    P. Krähenbühl, V. Koltun, "Efficient Inference in Fully Connected CRFs with
    Gaussian Edge Potentials", NIPS 2011.
    K. Kamnitsas et al., "Efficient multi-scale 3D CNN with fully connected CRF
    for accurate brain lesion segmentation", Medical Image Analysis 36, 2017.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
import torch

from seg3d.errors import GeometryMismatchError, Seg3dError
from seg3d.postprocessing.crf_params import CrfParams
from seg3d.postprocessing.gaussian import SeparableGaussian
from seg3d.postprocessing.lattice import PermutohedralLattice

logger = logging.getLogger(__name__)

# Probabilities are floored here before the log, as pydensecrf's
# unary_from_softmax does by default, so a voxel the network calls impossible
# can still be changed by a strong enough pairwise term.
PROBABILITY_FLOOR = 1e-5


def apply_crf(
    probabilities: np.ndarray,
    image: np.ndarray,
    spacing: Sequence[float],
    params: CrfParams,
    roi_mask: np.ndarray | None = None,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Refine class probabilities with the dense CRF.

    Only voxels inside ``roi_mask`` take part: they are connected to each other
    (not to voxels outside), the work is done on the mask's bounding box, and
    voxels outside keep their input probabilities.

    Args:
        probabilities: ``(L, I, J, K)`` float class probabilities, background
            first, summing to 1 over L at each voxel.
        image: ``(C, I, J, K)`` float32 intensities on seg3d's normalised scale
            (the network's input, e.g. z-scores).
        spacing: voxel size in mm along i, j, k.
        params: the CRF's parameters.
        roi_mask: ``(I, J, K)`` bool, or ``None`` for the whole volume.
        device: where to compute, e.g. ``"cpu"`` or ``"cuda"``.

    Returns:
        ``(L, I, J, K)`` float32 probabilities after mean-field inference.

    Raises:
        GeometryMismatchError: if the arrays' spatial shapes differ.
        ConfigError: if ``params`` does not fit the number of channels or
            classes.
        Seg3dError: if the probabilities or the image hold NaN or infinity.
    """
    _check_shapes(probabilities, image, roi_mask)
    _check_finite(probabilities, "probabilities")
    _check_finite(image, "image")
    params.check_classes(probabilities.shape[0])
    params.intensity_sigmas_for(image.shape[0])
    result = np.array(probabilities, dtype=np.float32, copy=True)
    box, mask = _roi_box(roi_mask, probabilities.shape[1:])
    if box is None:
        logger.warning("the ROI mask is empty; the CRF left the probabilities as is")
        return result

    start = time.perf_counter()
    mask_tensor = None if mask is None else torch.as_tensor(mask, device=device)
    refined = mean_field(
        _crop(probabilities, box, device),
        _crop(image, box, device),
        spacing,
        params,
        mask_tensor,
    )
    refined = refined.cpu().numpy()
    if mask is None:
        result[(slice(None), *box)] = refined
    else:
        result[(slice(None), *box)][:, mask] = refined[:, mask]
    logger.info(
        "CRF: %d iterations over %s voxels in %.1f s",
        params.iterations,
        "x".join(str(s.stop - s.start) for s in box),
        time.perf_counter() - start,
    )
    return result


def mean_field(
    probabilities: torch.Tensor,
    image: torch.Tensor,
    spacing: Sequence[float],
    params: CrfParams,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean-field inference on tensors, all on one device.

    Args:
        probabilities: ``(L, I, J, K)`` float32 class probabilities.
        image: ``(C, I, J, K)`` float32 normalised intensities.
        spacing: voxel size in mm along i, j, k.
        params: the CRF's parameters.
        mask: ``(I, J, K)`` bool voxels taking part, or ``None`` for all.

    Returns:
        ``(L, I, J, K)`` float32 label distributions ``Q``; outside ``mask``
        they are undefined (zero).
    """
    num_classes, *spatial_shape = probabilities.shape
    inside = None if mask is None else mask.reshape(-1).nonzero().squeeze(1)
    kernels = _Kernels(image, spacing, params, inside)
    # (L, N) over the N voxels taking part.
    log_unary = _gather(probabilities.clamp_min(PROBABILITY_FLOOR).log(), inside)
    compatibility = None
    if params.compatibility is not None:
        compatibility = torch.tensor(params.compatibility, device=log_unary.device)

    q = torch.softmax(log_unary, dim=0)
    for _ in range(params.iterations):
        messages = kernels(q)  # (L, N): sum_m w_m normalised K_m Q
        if compatibility is None:
            # Potts: -sum_{m != l} messages_m = messages_l - a per-voxel
            # constant, which the softmax ignores.
            q = torch.softmax(log_unary + messages, dim=0)
        else:
            q = torch.softmax(log_unary - compatibility @ messages, dim=0)
    return _scatter(q, inside, (num_classes, *spatial_shape))


class _Kernels:
    """Both normalised kernels, weighted and summed, built once per volume.

    The kernels are linear and the label distributions sum to one at every
    voxel, so the last class's messages are the messages of a constant 1 less
    the other classes' ones: filtering L - 1 classes is enough (half the work
    for two classes).
    """

    def __init__(
        self,
        image: torch.Tensor,
        spacing: Sequence[float],
        params: CrfParams,
        inside: torch.Tensor | None,
    ) -> None:
        self.spatial_shape = tuple(image.shape[1:])
        self.inside = inside
        device = image.device
        num_points = image[0].numel() if inside is None else inside.numel()
        ones = torch.ones(1, num_points, device=device)

        self.smoothness = None
        if params.smoothness_weight > 0:
            self.smoothness = SeparableGaussian(
                self.spatial_shape, spacing, params.smoothness_sigma_mm, device
            )
            ones_volume = _scatter(ones, inside, (1, *self.spatial_shape))
            self.smoothness_norm = _norm(_gather(self.smoothness(ones_volume), inside))
            # The weight rides on the norm applied after filtering.
            self.smoothness_out = params.smoothness_weight * self.smoothness_norm

        self.appearance = None
        if params.appearance_weight > 0:
            features = _appearance_features(image, spacing, params, inside)
            self.appearance = PermutohedralLattice(features)
            self.appearance_norm = _norm(self.appearance.filter(ones))
            self.appearance_out = params.appearance_weight * self.appearance_norm
            logger.debug(
                "CRF lattice: %d points, %d vertices in %d dimensions",
                self.appearance.num_points,
                self.appearance.num_vertices,
                self.appearance.num_features,
            )
        self.of_ones = None

    def __call__(self, q: torch.Tensor) -> torch.Tensor:
        """Messages ``(L, N)``: both kernels, weighted, applied to ``(L, N)`` q."""
        messages = torch.empty_like(q)
        if self.of_ones is None:
            # The last row is free until the end: filter the constant 1 there
            # now, alongside the classes, rather than in a pass of its own.
            messages[-1] = 1.0
            q = torch.cat([q[:-1], messages[-1:]])
            self._apply(q, out=messages)
            self.of_ones = messages[-1:].clone()
        else:
            self._apply(q[:-1], out=messages[:-1])
        torch.sub(self.of_ones, messages[:-1].sum(0, keepdim=True), out=messages[-1:])
        return messages

    def _apply(self, q: torch.Tensor, out: torch.Tensor) -> None:
        """Write both kernels' weighted messages for ``(K, N)`` q into ``out``."""
        out.zero_()
        if self.smoothness is not None:
            shape = (q.shape[0], *self.spatial_shape)
            dense = _scatter(q * self.smoothness_norm, self.inside, shape)
            filtered = _gather(self.smoothness(dense), self.inside)
            out.addcmul_(filtered, self.smoothness_out)
        if self.appearance is not None:
            filtered = self.appearance.filter(q * self.appearance_norm)
            out.addcmul_(filtered, self.appearance_out)


def _appearance_features(
    image: torch.Tensor,
    spacing: Sequence[float],
    params: CrfParams,
    inside: torch.Tensor | None,
) -> torch.Tensor:
    """``(3 + C, N)`` float32 positions and intensities divided by their sigmas."""
    num_channels, *spatial_shape = image.shape
    device = image.device
    # Position in mm, then divided by sigma, each rounded to float32: the way a
    # user of the reference implementation would build its features.
    axes = [
        torch.arange(size, device=device, dtype=torch.float32) * step / sigma
        for size, step, sigma in zip(
            spatial_shape, spacing, params.appearance_sigma_mm, strict=True
        )
    ]
    positions = torch.stack(torch.meshgrid(*axes, indexing="ij")).reshape(3, -1)
    intensity_sigmas = torch.tensor(
        params.intensity_sigmas_for(num_channels), device=device
    )
    intensities = image.reshape(num_channels, -1) / intensity_sigmas[:, None]
    features = torch.cat([positions, intensities])  # (3 + C, I * J * K)
    return features if inside is None else features[:, inside]


def _crop(array: np.ndarray, box: tuple[slice, ...], device) -> torch.Tensor:
    """``(X, I, J, K)`` array cut to ``box``, as float32 on ``device``."""
    cropped = np.ascontiguousarray(array[(slice(None), *box)], dtype=np.float32)
    return torch.from_numpy(cropped).to(device)


def _norm(row_sums: torch.Tensor) -> torch.Tensor:
    # The reference's guard against division by zero, kept for equal results.
    return torch.rsqrt(row_sums + 1e-20)


def _gather(volume: torch.Tensor, inside: torch.Tensor | None) -> torch.Tensor:
    """``(L, I, J, K)`` -> ``(L, N)`` values of the voxels taking part."""
    flat = volume.reshape(volume.shape[0], -1)
    return flat if inside is None else flat[:, inside]


def _scatter(
    values: torch.Tensor, inside: torch.Tensor | None, shape: Sequence[int]
) -> torch.Tensor:
    """``(L, N)`` -> ``(L, I, J, K)`` with zeros where voxels take no part."""
    if inside is None:
        return values.reshape(shape)
    volume = values.new_zeros(shape[0], int(np.prod(shape[1:])))
    volume[:, inside] = values
    return volume.reshape(shape)


def _check_shapes(
    probabilities: np.ndarray, image: np.ndarray, roi_mask: np.ndarray | None
) -> None:
    if probabilities.ndim != 4 or probabilities.shape[0] < 2:
        raise ValueError(
            f"probabilities must be (L, I, J, K) with L >= 2, not {probabilities.shape}"
        )
    if image.ndim != 4:
        raise ValueError(f"image must be (C, I, J, K), not {image.shape}")
    shapes = {"probabilities": probabilities.shape[1:], "image": image.shape[1:]}
    if roi_mask is not None:
        shapes["roi_mask"] = roi_mask.shape
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise GeometryMismatchError(
            f"the CRF needs one voxel grid, but the spatial shapes differ: {listed}"
        )


def _check_finite(array: np.ndarray, name: str) -> None:
    finite = np.isfinite(array).reshape(array.shape[0], -1).all(1)
    if not finite.all():
        channels = ", ".join(str(c) for c in np.flatnonzero(~finite))
        raise Seg3dError(
            f"the CRF's {name} hold NaN or infinite values (channel {channels}); "
            "check the files they came from"
        )


def _roi_box(
    roi_mask: np.ndarray | None, spatial_shape: Sequence[int]
) -> tuple[tuple[slice, ...] | None, np.ndarray | None]:
    """Bounding box of the ROI and the mask inside it (None where all is in)."""
    if roi_mask is None:
        return tuple(slice(0, size) for size in spatial_shape), None
    roi_mask = np.asarray(roi_mask, dtype=bool)
    if not roi_mask.any():
        return None, None
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        indices = np.flatnonzero(roi_mask.any(axis=other))
        box.append(slice(int(indices[0]), int(indices[-1]) + 1))
    mask = roi_mask[tuple(box)]
    return tuple(box), None if mask.all() else mask
