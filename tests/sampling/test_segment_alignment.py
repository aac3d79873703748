"""Network output voxel (i, j, k) predicts target voxel (i, j, k), on every pathway.

The image's channels are its own voxel coordinates and the label is a known
function of position, so every segment voxel says where it was read and every
target voxel can be checked against the position the geometry predicts.
"""

import numpy as np
import pytest
import torch
from sampling_builders import (
    NUM_CLASSES,
    coordinate_image,
    position_label,
    tiny_geometry,
)

from seg3d.model.config import NetworkConfig
from seg3d.model.geometry import PathwayGeometry
from seg3d.model.network import DeepMedic
from seg3d.sampling import (
    LABEL_PAD_VALUE,
    PAD_VALUE,
    AugmentationConfig,
    SamplingConfig,
    SegmentSampler,
    context_margins,
    extract_segments,
    extract_target,
    pad_for_geometry,
)

SHAPE = (24, 22, 20)
# Block starts: inside, touching each border, and partly outside the volume.
OUTPUT_STARTS = {
    "inside": (8, 7, 6),
    "low_corner": (-4, -4, -4),
    "high_corner": (19, 17, 15),
    "mixed": (0, 13, -2),
}
GEOMETRIES = {
    "cubic_x1_x3_x5": dict(input_shape=17, factors=(1, 3, 5)),
    "anisotropic_x1_x3_x5": dict(input_shape=(13, 15, 18), factors=(1, 3, 5)),
    "x1_x5": dict(input_shape=(16, 17, 19), factors=(1, 5)),
}


def _decode(values: np.ndarray) -> np.ndarray:
    """Coordinates from a ``(3, ...)`` coordinate-image read; -1 where padded."""
    return np.rint(values).astype(int) - 1


def _centre_outputs(segment: np.ndarray, pathway: PathwayGeometry, output_shape):
    """What a network whose layers pass on their centre tap would predict.

    Output voxel ``n`` of a stack of unpadded convolutions is centred on input
    voxel ``n + shrink / 2``; the pathway output is then repeated ``factor``
    times and cropped as the geometry says.
    """
    half = [
        (i - o) // 2
        for i, o in zip(pathway.input_shape, pathway.output_shape, strict=True)
    ]
    out = segment[
        :,
        half[0] : half[0] + pathway.output_shape[0],
        half[1] : half[1] + pathway.output_shape[1],
        half[2] : half[2] + pathway.output_shape[2],
    ]
    for axis in (1, 2, 3):
        out = np.repeat(out, pathway.factor, axis=axis)
    crop = pathway.crop
    return out[
        :,
        crop[0] : crop[0] + output_shape[0],
        crop[1] : crop[1] + output_shape[1],
        crop[2] : crop[2] + output_shape[2],
    ]


def _inside(position: np.ndarray) -> np.ndarray:
    shape = np.asarray(SHAPE).reshape(3, 1, 1, 1)
    return np.all((position >= 0) & (position < shape), axis=0)


@pytest.mark.parametrize("start", OUTPUT_STARTS.values(), ids=OUTPUT_STARTS.keys())
@pytest.mark.parametrize("sizes", GEOMETRIES.values(), ids=GEOMETRIES.keys())
def test_every_pathway_predicts_the_target_voxel_geometry_names(sizes, start):
    geometry = tiny_geometry(**sizes)
    image = coordinate_image(SHAPE)
    label_map = position_label(*np.indices(SHAPE))
    segments = extract_segments(image, geometry, start)
    target = extract_target(label_map, geometry, start)

    # The target is the label block itself: target voxel t is image voxel c0 + t.
    voxel = np.indices(geometry.output_shape) + np.reshape(start, (3, 1, 1, 1))
    inside = _inside(voxel)
    np.testing.assert_array_equal(target[inside], position_label(*voxel)[inside])
    assert np.all(target[~inside] == LABEL_PAD_VALUE)

    for pathway, segment in zip(geometry.pathways, segments, strict=True):
        assert segment.shape == (3, *pathway.input_shape)
        read = _decode(_centre_outputs(segment, pathway, geometry.output_shape))
        # Geometry: prediction voxel t takes pathway output n = (t + crop) // f,
        # whose receptive field is centred on c0 + f * n - crop + (f - 1) // 2.
        f = pathway.factor
        crop = np.reshape(pathway.crop, (3, 1, 1, 1))
        expected = (
            np.reshape(start, (3, 1, 1, 1))
            + f * ((np.indices(geometry.output_shape) + crop) // f)
            - crop
            + (f - 1) // 2
        )
        inside = _inside(expected)
        np.testing.assert_array_equal(read[:, inside], expected[:, inside])
        assert np.all(read[:, ~inside] == -1)
        # The receptive-field centre is never more than half a block away.
        assert np.abs(expected - voxel).max() <= (f - 1) // 2
        if f == 1:
            np.testing.assert_array_equal(position_label(*read)[inside], target[inside])


@pytest.mark.parametrize("factor", [3, 5], ids=["x3", "x5"])
def test_centre_voxel_of_each_odd_segment_is_the_target_centre(factor):
    # Output 15^3 makes both the x3 (5 + 8 = 13) and x5 (3 + 8 = 11) inputs odd.
    geometry = tiny_geometry(input_shape=23, factors=(1, factor))
    shape = (40, 40, 40)
    image = coordinate_image(shape)
    start = (12, 10, 9)
    segments = extract_segments(image, geometry, start)
    target = extract_target(position_label(*np.indices(shape)), geometry, start)

    target_centre = np.add(start, np.asarray(geometry.output_shape) // 2)
    for segment in segments:
        middle = np.asarray(segment.shape[1:]) // 2
        assert np.all(np.asarray(segment.shape[1:]) % 2 == 1)
        read = _decode(segment[(slice(None), *middle)])
        np.testing.assert_array_equal(read, target_centre)
    centre_label = target[tuple(np.asarray(geometry.output_shape) // 2)]
    assert centre_label == position_label(*target_centre)


# Blocks on the 9^3 tiling grid, the last ones overhanging the 24x22x20 volume,
# and one that lies inside the volume off the grid.
TILING_STARTS = {"first": (0, 0, 0), "last": (18, 18, 18), "off_grid": (15, 13, 11)}


@pytest.mark.parametrize("start", TILING_STARTS.values(), ids=TILING_STARTS.keys())
def test_segments_equal_slices_of_the_padded_volume(start):
    geometry = tiny_geometry()
    image = np.random.default_rng(3).normal(size=(2, *SHAPE)).astype(np.float32)
    padded, before = pad_for_geometry(image, geometry)

    for pathway, segment in zip(
        geometry.pathways, extract_segments(image, geometry, start), strict=True
    ):
        first = [
            c + b + o for c, b, o in zip(start, before, pathway.offset, strict=True)
        ]
        f = pathway.factor
        stop = [
            s + f * (n - 1) + 1 for s, n in zip(first, pathway.input_shape, strict=True)
        ]
        expected = padded[
            :, first[0] : stop[0] : f, first[1] : stop[1] : f, first[2] : stop[2] : f
        ]
        np.testing.assert_array_equal(segment, expected)


def test_padding_covers_whole_blocks_and_uses_the_shared_values():
    geometry = tiny_geometry()
    before, after = context_margins(geometry)
    # x5 pathway reads offset -18 .. -18 + 5 * 9 = 27 around a 9-voxel block.
    assert before == (18, 18, 18)
    assert after == (27 - 8, 27 - 8, 27 - 8)
    image = np.ones((1, *SHAPE), dtype=np.float32)
    padded, shift = pad_for_geometry(image, geometry)
    whole_blocks = [-(-n // 9) * 9 for n in SHAPE]
    assert padded.shape[1:] == tuple(
        b + n + a for b, n, a in zip(before, whole_blocks, after, strict=True)
    )
    assert shift == before
    assert padded[0, 0, 0, 0] == PAD_VALUE
    assert PAD_VALUE == 0.0


@pytest.mark.parametrize("factors", [(3,), (5,), (3, 5)], ids=["x3", "x5", "x3_x5"])
def test_real_network_output_voxel_predicts_the_target_voxel(coordinate_case, factors):
    # A DeepMedic whose every convolution passes on its centre tap per channel:
    # its logits are then, per pathway, the coordinates that pathway read at
    # the centre of each output voxel's receptive field. Samples are flipped
    # and turned, so that alignment is checked under augmentation too.
    pathways = 1 + len(factors)
    config = NetworkConfig(
        in_channels=3,
        num_classes=3 * pathways,
        feature_maps=(3, 3, 3, 3),
        kernel_sizes=(3, 3, 3, 3),
        subsampling_factors=factors,
        head_widths=(3 * pathways,),
        head_dropout=(0.0, 0.0),
        batch_norm=False,
        activation="relu",  # coordinates are positive: ReLU passes them on
    )
    network = DeepMedic(config).eval()
    with torch.no_grad():
        for conv in (m for m in network.modules() if isinstance(m, torch.nn.Conv3d)):
            conv.weight.zero_()
            conv.bias.zero_()
            centre = tuple(size // 2 for size in conv.kernel_size)
            for channel in range(min(conv.in_channels, conv.out_channels)):
                conv.weight[(channel, channel, *centre)] = 1.0
    augmentation = AugmentationConfig(
        flip_axes=(0, 1, 2), rotate_in_plane=True, intensity_scale_std=0.0,
        intensity_shift_std=0.0, gamma_probability=0.0,
    )  # fmt: skip
    sampler = SegmentSampler(
        [coordinate_case], config.geometry_for_input(17), range(NUM_CLASSES),
        batch_size=12, batches_per_epoch=1,
        config=SamplingConfig(augmentation=augmentation),
    )  # fmt: skip
    batch = sampler.batch(0, 0)

    with torch.no_grad():
        logits = network(batch["segments"]).numpy()  # (B, 3 * pathways, 9, 9, 9)
    read = np.rint(logits).astype(int) - 1
    target = batch["target"].numpy()
    assert logits.shape[2:] == target.shape[1:]
    for n, centre in enumerate(batch["centre"].numpy()):
        inside = target[n] >= 0
        normal = read[n, :3]
        np.testing.assert_array_equal(
            coordinate_case.label_map[tuple(normal[:, inside])], target[n][inside]
        )
        assert np.all(normal[:, ~inside] == -1)
        np.testing.assert_array_equal(normal[:, 4, 4, 4], centre)
        for p, factor in enumerate(factors, start=1):
            context = read[n, 3 * p : 3 * p + 3]
            read_inside = np.all(context >= 0, axis=0) & inside
            assert read_inside.any()
            offset = np.abs(context - normal)[:, read_inside]
            assert offset.max() <= (factor - 1) // 2
            if factor == 3:  # 9 = 3 x 3: the middle block is centred on voxel 4
                np.testing.assert_array_equal(context[:, 4, 4, 4], centre)
