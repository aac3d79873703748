"""Dense whole-volume prediction: exact, seamless, independent of block size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from inference_builders import trained_like

from seg3d.device import cpu_has_fast_bfloat16
from seg3d.errors import ConfigError, GeometryMismatchError
from seg3d.inference.blocks import estimate_block_memory
from seg3d.inference.dense import DensePredictor, predict_dense
from seg3d.model.config import NetworkConfig
from seg3d.model.network import match_residual
from seg3d.sampling.extraction import extract_segments

CONFIG = NetworkConfig.profile("tiny", subsampling_factors=[3, 5], residual_layers=[3])
SHAPE = (37, 41, 29)


@pytest.fixture(scope="module")
def model():
    return trained_like(CONFIG, seed=3)


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).normal(size=(1, *SHAPE)).astype(np.float32)


@pytest.fixture(scope="module")
def reference(model, image):
    """The whole volume in one block."""
    return DensePredictor(model).predict(image, block_shape=60)


def training_forward(model, image, geometry, start):
    """What the training network outputs for the segments of one block."""
    segments = extract_segments(image, geometry, start)
    with torch.no_grad():
        logits = model([torch.from_numpy(s)[None].double() for s in segments])
    return torch.softmax(logits, dim=1)[0].numpy()


@pytest.mark.parametrize(
    "block_shape", [15, (30, 15, 45), (45, 30, 15)], ids=["15", "30-15-45", "45-30-15"]
)
def test_probabilities_do_not_depend_on_block_size(
    model, image, reference, block_shape
):
    probabilities = DensePredictor(model).predict(image, block_shape=block_shape)

    np.testing.assert_allclose(probabilities, reference, atol=1e-5, rtol=0)


def test_memory_budget_changes_blocks_not_probabilities(model, image, reference):
    predictor = DensePredictor(model)
    small = estimate_block_memory(CONFIG, (15, 15, 30))

    blocks = predictor.plan(SHAPE, max_memory=small)
    probabilities = predictor.predict(image, max_memory=small)

    assert len(blocks) > 1
    np.testing.assert_allclose(probabilities, reference, atol=1e-5, rtol=0)


def test_every_block_equals_the_training_forward_pass(model, image, reference):
    predictor = DensePredictor(model)
    blocks = predictor.plan(SHAPE, block_shape=15)
    double = trained_like(CONFIG, seed=3).double()

    assert len(blocks) == 3 * 3 * 2  # corners and borders included
    for block in blocks:
        expected = training_forward(
            double, image, CONFIG.geometry(block.shape), block.start
        )
        region = block.region(SHAPE)
        inside = tuple(slice(0, r.stop - r.start) for r in region)
        np.testing.assert_allclose(
            reference[(slice(None), *region)],
            expected[(slice(None), *inside)],
            atol=1e-5,
            rtol=0,
            err_msg=f"block at {block.start}",
        )


def test_probabilities_sum_to_one(reference):
    np.testing.assert_allclose(reference.sum(axis=0), 1.0, atol=1e-5)
    assert reference.dtype == np.float32
    assert reference.shape == (2, *SHAPE)


def test_roi_skips_blocks_and_sets_background_outside(model, image, reference):
    roi_mask = np.zeros(SHAPE, bool)
    roi_mask[3:20, 5:20, 2:13] = True
    predictor = DensePredictor(model)
    calls = []

    probabilities = predictor.predict(
        image,
        roi_mask,
        block_shape=15,
        progress=lambda done, total: calls.append(total),
    )

    assert calls == [4] * 4  # of 18 blocks, 4 hold ROI voxels
    np.testing.assert_allclose(
        probabilities[:, roi_mask], reference[:, roi_mask], atol=1e-5, rtol=0
    )
    assert np.all(probabilities[0, ~roi_mask] == 1.0)
    assert np.all(probabilities[1, ~roi_mask] == 0.0)


def test_empty_roi_gives_background_everywhere(model, image):
    probabilities = DensePredictor(model).predict(image, np.zeros(SHAPE, bool))

    assert np.all(probabilities[0] == 1.0)


def test_output_can_be_a_memory_map(model, image, reference, tmp_path):
    out = np.lib.format.open_memmap(
        tmp_path / "probabilities.npy", mode="w+", dtype=np.float32, shape=(2, *SHAPE)
    )

    result = DensePredictor(model).predict(image, block_shape=30, out=out)

    assert result is out
    np.testing.assert_allclose(
        np.load(tmp_path / "probabilities.npy"), reference, atol=1e-5
    )


def test_predict_dense_convenience(model, image, reference):
    probabilities = predict_dense(model, image, block_shape=(15, 45, 30))

    np.testing.assert_allclose(probabilities, reference, atol=1e-5, rtol=0)


def test_wrong_channel_count_is_a_clear_error(model, image):
    with pytest.raises(ValueError, match=r"image must be \(C, I, J, K\) with C = 1"):
        DensePredictor(model).predict(np.concatenate([image, image]))


def test_roi_on_another_grid_is_rejected(model, image):
    with pytest.raises(
        GeometryMismatchError, match=r"ROI mask has shape \(37, 41, 28\)"
    ):
        DensePredictor(model).predict(image, np.ones((37, 41, 28), bool))


def test_memory_budget_too_small_is_a_config_error(model, image):
    with pytest.raises(
        ConfigError,
        match=r"max_memory 0.001 MB is too small: the smallest .* \(15\^3 voxels\)",
    ):
        DensePredictor(model).predict(image, max_memory=1000)


def test_block_shape_off_the_grid_is_rejected(model, image):
    with pytest.raises(
        ValueError, match=r"block_shape must be a positive multiple of 15"
    ):
        DensePredictor(model).predict(image, block_shape=20)


# -- shift-equivariant mode ------------------------------------------------------------


@pytest.fixture(scope="module")
def equivariant(model, image):
    return DensePredictor(model, shift_equivariant=True).predict(image, block_shape=60)


def dilated_forward(model, image, start, shape):
    """Every pathway as its convolutions dilated by its factor, at full resolution."""
    config = model.config
    windows = extract_segments(image, config.equivariant_geometry(shape), start)
    features = []
    for pathway, window, factor in zip(
        model.pathways, windows, config.factors, strict=True
    ):
        x = torch.from_numpy(window)[None].double()
        layer_inputs = []
        for index, block in enumerate(pathway.layers, start=1):
            layer_inputs.append(x)
            x = block.activation(block.norm(x))
            x = F.conv3d(x, block.conv.weight, block.conv.bias, dilation=factor)
            if index in pathway.residual_layers:
                x = x + match_residual(layer_inputs[index - 2], x)
        features.append(x)
    x = torch.cat(features, dim=1)
    for block in model.head:
        x = block(x)
    return torch.softmax(x, dim=1)[0].numpy()


def test_equivariant_equals_dilated_pathways(equivariant, image):
    double = trained_like(CONFIG, seed=3).double()

    with torch.no_grad():
        for start in [(0, 0, 0), (30, 15, 15)]:
            expected = dilated_forward(double, image, start, (15, 15, 15))
            region = tuple(
                slice(c, min(c + 15, n)) for c, n in zip(start, SHAPE, strict=True)
            )
            inside = tuple(slice(0, r.stop - r.start) for r in region)
            np.testing.assert_allclose(
                equivariant[(slice(None), *region)],
                expected[(slice(None), *inside)],
                atol=1e-5,
                rtol=0,
            )


def test_equivariant_does_not_depend_on_block_size(model, image, equivariant):
    probabilities = DensePredictor(model, shift_equivariant=True).predict(
        image, block_shape=(30, 45, 15)
    )

    np.testing.assert_allclose(probabilities, equivariant, atol=1e-5, rtol=0)


def test_equivariant_equals_block_grid_where_contexts_are_centred(
    equivariant, reference
):
    # Voxel 7 of every 15: the centre of its x3 cell (7 % 3 == 1) and of its x5
    # cell (7 % 5 == 2), where the block grid's contexts are centred too.
    centres = (slice(None), *(slice(7, None, 15),) * 3)

    np.testing.assert_allclose(equivariant[centres], reference[centres], atol=1e-5)
    assert np.abs(equivariant - reference).max() > 1e-3  # elsewhere they differ


def test_auto_precision_is_bfloat16_only_where_the_cpu_is_fast(model):
    predictor = DensePredictor(model, precision="auto")

    expected = torch.bfloat16 if cpu_has_fast_bfloat16() else torch.float32
    assert predictor.network.dtype == expected
    assert predictor.precision == str(expected).removeprefix("torch.")


def test_bfloat16_predictor_stores_bfloat16(model):
    predictor = DensePredictor(model, precision="bfloat16")

    assert predictor.network.dtype == torch.bfloat16
    assert predictor.element_size == 2


@pytest.mark.parametrize(
    ("precision", "message"),
    [
        ("float16", r"float16 is not offered for prediction; use float32 or"),
        ("fp32", r"--precision 'fp32' is unknown; use auto, float32"),
    ],
    ids=["float16", "unknown"],
)
def test_unsupported_precision_is_a_config_error(model, precision, message):
    with pytest.raises(ConfigError, match=message):
        DensePredictor(model, precision=precision)
