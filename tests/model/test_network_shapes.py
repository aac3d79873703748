"""DeepMedic: shapes against the geometry, input checks, initialisation."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from seg3d.model.config import NetworkConfig
from seg3d.model.network import DeepMedic, match_residual

CONFIGS = {
    "tiny-x3": NetworkConfig.profile("tiny"),
    "tiny-x3-x5": NetworkConfig.profile("tiny", subsampling_factors=[3, 5]),
    "tiny-residual": NetworkConfig.profile(
        "tiny", subsampling_factors=[3, 5], residual_layers=[2, 3, 4]
    ),
    "single-scale": NetworkConfig.profile("tiny", subsampling_factors=[]),
    "narrow-context": NetworkConfig.profile(
        "tiny", subsampled_feature_maps=[[2, 3, 5, 3]], activation="relu"
    ),
    "kernels-5-1": NetworkConfig.profile(
        "tiny", kernel_sizes=[5, 1, 3, 3], batch_norm=False
    ),
}


def inputs_for(config, segment, batch=2, dtype=torch.float32):
    geometry = config.geometry_for_input(segment)
    return [
        torch.randn(batch, config.in_channels, *place.input_shape, dtype=dtype)
        for place in geometry.pathways
    ]


@pytest.mark.parametrize("name", sorted(CONFIGS), ids=sorted(CONFIGS))
@pytest.mark.parametrize(
    "segment", [(25, 25, 25), (26, 31, 19)], ids=["cube-25", "uneven"]
)
def test_output_is_input_minus_shrinkage_and_pathways_match_geometry(name, segment):
    torch.manual_seed(0)
    config = CONFIGS[name]
    model = DeepMedic(config).eval()
    geometry = config.geometry_for_input(segment)
    seen = {}
    for index, pathway in enumerate(model.pathways):
        pathway.register_forward_hook(
            lambda _m, _i, out, index=index: seen.__setitem__(index, out.shape[2:])
        )

    with torch.no_grad():
        logits = model(inputs_for(config, segment))

    expected = tuple(n - config.shrinkage for n in segment)
    assert tuple(logits.shape) == (2, config.num_classes, *expected)
    assert geometry.output_shape == expected
    for index, place in enumerate(geometry.pathways):
        assert tuple(seen[index]) == place.output_shape


def test_paper_network_maps_25_to_9():
    config = NetworkConfig()

    with torch.no_grad():
        logits = DeepMedic(config).eval()(inputs_for(config, 25, batch=1))

    assert tuple(logits.shape[2:]) == (9, 9, 9)


def test_wrong_number_of_inputs_is_a_clear_error():
    config = CONFIGS["tiny-x3"]
    inputs = inputs_for(config, 21)

    with pytest.raises(ValueError, match=r"needs 2 inputs \(one per pathway\), not 1"):
        DeepMedic(config)(inputs[:1])


def test_wrong_subsampled_shape_names_the_expected_shape():
    config = CONFIGS["tiny-x3"]
    inputs = inputs_for(config, 21)
    inputs[1] = inputs[1][:, :, 1:]

    with pytest.raises(
        ValueError, match=r"x3 pathway input must be \(2, 1, 13, 13, 13\)"
    ):
        DeepMedic(config)(inputs)


def test_wrong_channel_count_is_a_clear_error():
    config = CONFIGS["tiny-x3"]
    inputs = [x.repeat(1, 2, 1, 1, 1) for x in inputs_for(config, 21)]

    with pytest.raises(ValueError, match=r"must be \(B, 1, i, j, k\), not \(2, 2,"):
        DeepMedic(config)(inputs)


def test_too_small_segment_says_the_minimum():
    config = CONFIGS["tiny-x3"]

    with pytest.raises(ValueError, match=r"use at least 9"):
        DeepMedic(config)([torch.zeros(1, 1, 8, 8, 8), torch.zeros(1, 1, 9, 9, 9)])


def test_parameter_count_matches_the_architecture():
    config = NetworkConfig()
    convs = 0
    channels = [1, *config.feature_maps]
    for c_in, c_out in itertools.pairwise(channels):
        convs += c_in * c_out * 27 + c_out
    # Batch norm (2 per channel) and PReLU (1 per channel) on layers 2..8.
    pre_activation = 3 * sum(config.feature_maps[:-1])
    head = [100, 150, 150, 2]
    head_params = sum(a * b + b + 3 * a for a, b in itertools.pairwise(head))

    expected = 2 * (convs + pre_activation) + head_params
    assert DeepMedic(config).num_parameters() == expected


def test_first_layers_read_the_image_without_norm_or_activation():
    model = DeepMedic(NetworkConfig())

    for pathway in model.pathways:
        assert isinstance(pathway.layers[0].norm, torch.nn.Identity)
        assert isinstance(pathway.layers[0].activation, torch.nn.Identity)
        assert isinstance(pathway.layers[1].norm, torch.nn.BatchNorm3d)
        assert isinstance(pathway.layers[1].activation, torch.nn.PReLU)
    rates = [getattr(block.dropout, "p", 0.0) for block in model.head]
    assert rates == [0.0, 0.5, 0.5]


def test_he_initialisation():
    torch.manual_seed(0)
    model = DeepMedic(NetworkConfig())
    conv = model.pathways[0].layers[5].conv  # 40 -> 40, 3x3x3: 43,200 weights

    fan_in = conv.in_channels * 27
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.02)
    assert torch.count_nonzero(conv.bias) == 0


@pytest.mark.parametrize(
    ("earlier", "later"), [(3, 5), (5, 3), (4, 4)], ids=["pad", "drop", "same"]
)
def test_residual_is_centre_cropped_and_matched_on_channels(earlier, later):
    source = torch.arange(earlier * 7**3, dtype=torch.float32).view(1, earlier, 7, 7, 7)
    target = torch.zeros(1, later, 3, 3, 3)

    matched = match_residual(source, target)

    assert matched.shape == target.shape
    kept = min(earlier, later)
    torch.testing.assert_close(matched[:, :kept], source[:, :kept, 2:5, 2:5, 2:5])
    assert torch.count_nonzero(matched[:, kept:]) == 0


def test_residual_layers_change_the_function():
    torch.manual_seed(0)
    plain = DeepMedic(CONFIGS["tiny-x3"]).eval()
    residual = DeepMedic(NetworkConfig.profile("tiny", residual_layers=[4])).eval()
    residual.load_state_dict(plain.state_dict())
    inputs = inputs_for(CONFIGS["tiny-x3"], 21)

    with torch.no_grad():
        assert not torch.allclose(plain(inputs), residual(inputs))
