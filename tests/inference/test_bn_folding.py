"""The folded inference network computes the eval-mode network's function."""

from __future__ import annotations

import copy

import pytest
import torch
from inference_builders import trained_like

from seg3d.inference.folding import fold
from seg3d.model.config import NetworkConfig

CONFIGS = {
    "tiny": NetworkConfig.profile("tiny"),
    "x3-x5-residual": NetworkConfig.profile(
        "tiny", subsampling_factors=[3, 5], residual_layers=[2, 3, 4]
    ),
    "residual-widening": NetworkConfig.profile(
        "tiny", feature_maps=[3, 5, 4, 7], residual_layers=[3, 4], in_channels=2
    ),
    "narrow-context": NetworkConfig.profile(
        "tiny",
        subsampled_feature_maps=[[2, 3, 5, 3]],
        head_widths=[8, 6],
        head_dropout=[0.0, 0.5, 0.5],
    ),
    "relu-no-norm": NetworkConfig.profile("tiny", activation="relu", batch_norm=False),
    "single-scale": NetworkConfig.profile("tiny", subsampling_factors=[]),
}


def segments(config, normal_shape, batch=2, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    geometry = config.geometry_for_input(normal_shape)
    return [
        torch.randn(
            batch, config.in_channels, *p.input_shape, generator=generator, dtype=dtype
        )
        for p in geometry.pathways
    ]


def eval_probabilities(model, inputs):
    with torch.no_grad():
        return torch.softmax(model.double()(inputs), dim=1)


@pytest.mark.parametrize("name", sorted(CONFIGS), ids=sorted(CONFIGS))
@pytest.mark.parametrize(
    "normal_shape", [(21, 21, 21), (23, 19, 26)], ids=["aligned", "cropped"]
)
@pytest.mark.parametrize("channels_last", [False, True], ids=["ncdhw", "ndhwc"])
def test_folded_equals_eval_forward(name, normal_shape, channels_last):
    config = CONFIGS[name]
    model = trained_like(config)
    inputs = segments(config, normal_shape)
    expected = eval_probabilities(model, inputs)

    folded = fold(model, torch.float64).to(channels_last=channels_last)
    probabilities = folded(inputs).permute(0, 4, 1, 2, 3)

    torch.testing.assert_close(probabilities.double(), expected, atol=1e-6, rtol=0)


def test_channels_are_padded_without_changing_the_function():
    config = CONFIGS["residual-widening"]
    model = trained_like(config)
    inputs = segments(config, (23, 19, 26))
    expected = eval_probabilities(model, inputs)

    padded = fold(model, torch.float64)
    plain = fold(model, torch.float64, channel_multiple=1, head_multiple=1)

    assert [layer.weight.shape[:2] for layer in padded.pathways[0]] == [
        (8, 8),
        (8, 8),
        (8, 8),
        (8, 8),
    ]
    assert padded.head[-1].weight.shape == (16, 16)
    assert [layer.weight.shape[0] for layer in plain.pathways[0]] == [3, 5, 4, 7]
    for folded in (padded, plain):
        probabilities = folded(inputs).permute(0, 4, 1, 2, 3).double()
        torch.testing.assert_close(probabilities, expected, atol=1e-6, rtol=0)


def test_folding_leaves_no_batch_norm_pass():
    folded = fold(trained_like(CONFIGS["x3-x5-residual"]))

    for layers in folded.pathways:
        assert all(layer.pre_scale is None for layer in layers)
    assert [layer.residual_scale is not None for layer in folded.pathways[0]] == [
        False,
        True,
        True,
        True,
    ]


def test_a_vanishing_scale_at_a_residual_source_is_applied_explicitly():
    # Layer 4 adds the output of layer 2, normalised by layer 3's batch norm;
    # with a zero weight the fold cannot be undone, so that norm stays explicit.
    config = NetworkConfig.profile("tiny", residual_layers=[4])
    model = trained_like(config)
    with torch.no_grad():
        model.pathways[0].layers[2].norm.weight[1] = 0.0
    inputs = segments(config, 21)
    expected = eval_probabilities(model, inputs)

    folded = fold(model, torch.float64)

    assert folded.pathways[0][2].pre_scale is not None
    assert folded.pathways[1][2].pre_scale is None
    probabilities = folded(inputs).permute(0, 4, 1, 2, 3)
    torch.testing.assert_close(probabilities.double(), expected, atol=1e-6, rtol=0)


def test_float32_folding_is_within_float_rounding():
    config = CONFIGS["x3-x5-residual"]
    model = trained_like(config)
    inputs = segments(config, (23, 19, 26))
    expected = eval_probabilities(model, inputs)

    probabilities = fold(model)([x.float() for x in inputs]).permute(0, 4, 1, 2, 3)

    torch.testing.assert_close(probabilities.double(), expected, atol=1e-4, rtol=0)


def test_head_slabs_give_the_same_logits_as_one_slab():
    config = CONFIGS["x3-x5-residual"]
    folded = fold(trained_like(config))
    features = folded.features(segments(config, (38, 23, 23), batch=1))

    whole = folded.head_logits(features, 0, 30)
    slabs = list(features.slabs(rows=15 * 15 * 2))
    parts = [folded.head_logits(features, start, stop) for start, stop in slabs]

    assert slabs == [(0, 15), (15, 30)]
    torch.testing.assert_close(torch.cat(parts, dim=1), whole)


def test_folding_does_not_modify_the_model():
    model = trained_like(CONFIGS["tiny"])
    state = {k: v.clone() for k, v in model.state_dict().items()}

    fold(model)

    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key])


def test_sync_batch_norm_folds_like_batch_norm():
    # Distributed training converts BatchNorm3d to SyncBatchNorm; in eval mode
    # it uses its running statistics and needs no process group.
    config = CONFIGS["x3-x5-residual"]
    model = trained_like(config)
    synced = torch.nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(model))
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in synced.modules())
    inputs = segments(config, 21)

    expected = fold(model, torch.float64)(inputs)
    folded = fold(synced, torch.float64)(inputs)

    torch.testing.assert_close(folded, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        folded.permute(0, 4, 1, 2, 3).double(),
        eval_probabilities(synced.eval(), inputs),
        atol=1e-6,
        rtol=0,
    )


def test_an_unknown_norm_is_refused_not_dropped():
    model = trained_like(CONFIGS["tiny"])
    block = model.pathways[0].layers[1]
    block.norm = torch.nn.InstanceNorm3d(block.conv.in_channels)

    with pytest.raises(ValueError, match=r"cannot fold a InstanceNorm3d: only batch"):
        fold(model)


def test_bfloat16_stays_close_to_float32():
    config = CONFIGS["tiny"]
    folded = fold(trained_like(config))
    inputs = segments(config, 21, dtype=torch.float32)

    reference = folded(inputs)
    low = folded.to(dtype=torch.bfloat16)(inputs)

    assert low.dtype == torch.float32
    torch.testing.assert_close(low, reference, atol=0.05, rtol=0)


def test_wrong_inputs_name_the_expected_shapes():
    config = CONFIGS["tiny"]
    inputs = segments(config, 21)

    with pytest.raises(ValueError, match=r"block-grid inputs for a normal segment"):
        fold(trained_like(config))([inputs[0], inputs[0]])
