"""Network output voxel (i, j, k) predicts target voxel (i, j, k), on every pathway.

The image's channels are its own voxel coordinates and the label is a known
function of position, so every segment voxel says where it was read and every
target voxel can be checked against the position the geometry predicts.
"""

import numpy as np
import pytest
from sampling_builders import coordinate_image, position_label, tiny_geometry

from seg3d.model.geometry import PathwayGeometry
from seg3d.sampling import (
    LABEL_PAD_VALUE,
    PAD_VALUE,
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
