"""Receptive fields, checked voxel by voxel against real forward passes.

One image voxel is perturbed and the prediction voxels that change are compared
with the set the geometry predicts: the normal pathway's box around each
prediction voxel, and for each subsampled pathway the lattice ``c0 + offset +
f * m`` it reads, within ``f * s / 2`` of the centre of the repeated cell the
prediction voxel falls in (``s`` the pathway's shrinkage).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seg3d.model.config import NetworkConfig
from seg3d.model.network import DeepMedic
from seg3d.sampling.extraction import extract_segments

CASES = {
    "x3": (NetworkConfig.profile("tiny"), (7, 8, 9)),
    "x3-x5-residual": (
        NetworkConfig.profile("tiny", subsampling_factors=[3, 5], residual_layers=[3]),
        (9, 10, 6),
    ),
    "kernels-5-1-3-3": (
        NetworkConfig.profile("tiny", kernel_sizes=[5, 1, 3, 3]),
        (6, 6, 6),
    ),
}
C0 = (20, 22, 21)


def predict(model, config, image, output_shape):
    geometry = config.geometry(output_shape)
    segments = extract_segments(image, geometry, C0)
    with torch.no_grad():
        logits = model([torch.from_numpy(s)[None].double() for s in segments])
    return logits[0].numpy()


def expected_changes(config, output_shape, voxel):
    """Prediction voxels whose inputs include image ``voxel``, by the geometry."""
    geometry = config.geometry(output_shape)
    grids = np.meshgrid(*(np.arange(n) for n in output_shape), indexing="ij")
    half = config.shrinkage // 2
    normal = np.ones(output_shape, bool)
    for axis in range(3):
        normal &= np.abs(C0[axis] + grids[axis] - voxel[axis]) <= half
    changed = normal
    for place in geometry.pathways[1:]:
        f = place.factor
        reads = np.ones(output_shape, bool)
        for axis in range(3):
            cell = (grids[axis] + place.crop[axis]) // f
            centre = C0[axis] + f * cell - place.crop[axis] + (f - 1) // 2
            on_lattice = (voxel[axis] - C0[axis] - place.offset[axis]) % f == 0
            reads &= on_lattice & (np.abs(voxel[axis] - centre) <= f * half)
        changed = changed | reads
    return changed


@pytest.mark.parametrize("name", sorted(CASES), ids=sorted(CASES))
def test_changed_outputs_are_exactly_the_receptive_fields(name):
    config, output_shape = CASES[name]
    torch.manual_seed(1)
    model = DeepMedic(config).double().eval()
    rng = np.random.default_rng(0)
    image = rng.normal(size=(1, 48, 50, 46))
    reference = predict(model, config, image, output_shape)
    tested = 0

    # Inside the prediction, near its corner, off every lattice, and voxels
    # that only a subsampled pathway reads (its second read along each axis).
    shifts = [(2, 3, 1), (-1, -1, -1), (-10, 2, 9)]
    shifts += [
        tuple(o + p.factor * m for o, m in zip(p.offset, (1, 2, 1), strict=True))
        for p in config.geometry(output_shape).pathways[1:]
    ]
    for shift in shifts:
        voxel = tuple(c + d for c, d in zip(C0, shift, strict=True))
        perturbed = image.copy()
        perturbed[(0, *voxel)] += 10.0

        changed = np.abs(predict(model, config, perturbed, output_shape) - reference)
        observed = changed.max(axis=0) > 1e-9
        expected = expected_changes(config, output_shape, voxel)
        np.testing.assert_array_equal(observed, expected, err_msg=f"voxel {voxel}")
        tested += int(expected.any())
    assert tested >= 3  # the perturbations reach the prediction


@pytest.mark.parametrize("name", sorted(CASES), ids=sorted(CASES))
def test_receptive_field_sizes(name):
    config, output_shape = CASES[name]
    geometry = config.geometry(output_shape)

    for place in geometry.pathways:
        # The cells of f^3 voxels its s + 1 input voxels per axis stand for.
        assert place.receptive_field == place.factor * (config.shrinkage + 1)
