"""An augmented sample is exactly the sample of the augmented volume."""

import numpy as np
import pytest
from sampling_builders import tiny_geometry

from seg3d.errors import ConfigError
from seg3d.sampling import (
    AugmentationConfig,
    IntensityTransform,
    SamplingConfig,
    SegmentSampler,
    SpatialTransform,
    draw_augmentation,
    extract_segments,
    extract_segments_into,
    extract_target,
)

SHAPE = (21, 21, 16)
TRANSFORMS = {
    "flip_i": ((0,), 0),
    "flip_j": ((1,), 0),
    "flip_k": ((2,), 0),
    "flip_all": ((0, 1, 2), 0),
    "turn_1": ((), 1),
    "turn_2": ((), 2),
    "turn_3": ((), 3),
    "flip_k_turn_1": ((2,), 1),
    "flip_i_turn_3": ((0,), 3),
}
# Centres in the middle and next to borders, so that padding is flipped too.
CENTRES = {"middle": (10, 9, 8), "corner": (0, 20, 15), "edge": (20, 3, 0)}


def _volume(rng):
    image = rng.normal(size=(2, *SHAPE)).astype(np.float32)
    label_map = rng.integers(0, 3, size=SHAPE).astype(np.uint8)
    return image, label_map


def test_transform_matches_numpy_flip_then_rot90():
    array = np.arange(2 * 5 * 5 * 3).reshape(2, 5, 5, 3)
    for flip_axes, turns in TRANSFORMS.values():
        transform = SpatialTransform.from_flips_and_rotation(flip_axes, turns)
        flipped = np.flip(array, [1 + a for a in flip_axes]) if flip_axes else array
        expected = np.rot90(flipped, turns, axes=(1, 2))
        np.testing.assert_array_equal(transform.apply(array), expected)


@pytest.mark.parametrize("centre", CENTRES.values(), ids=CENTRES.keys())
@pytest.mark.parametrize("transform", TRANSFORMS.values(), ids=TRANSFORMS.keys())
def test_transformed_sample_is_the_sample_of_the_transformed_volume(transform, centre):
    # The x5 pathway is not centred on a 9-voxel target (it covers one voxel
    # more on one side), so flipping the cut segments would be wrong here.
    geometry = tiny_geometry(factors=(1, 3, 5))
    image, label_map = _volume(np.random.default_rng(7))
    spatial = SpatialTransform.from_flips_and_rotation(*transform)
    start = np.subtract(centre, np.asarray(geometry.output_shape) // 2)

    segments = extract_segments(image, geometry, start, spatial)
    target = extract_target(label_map, geometry, start, spatial)

    # Reference: transform the whole volume, then find where the block went.
    moved_image = np.ascontiguousarray(spatial.apply(image))
    moved_labels = np.ascontiguousarray(spatial.apply(label_map))
    block = np.zeros(SHAPE, dtype=bool)
    lo = np.maximum(start, 0)
    block[lo[0] : start[0] + 9, lo[1] : start[1] + 9, lo[2] : start[2] + 9] = True
    moved_start = spatial.output_start_after(start, geometry.output_shape, SHAPE)
    inside = np.argwhere(spatial.apply(block)).min(axis=0)
    np.testing.assert_array_equal(np.maximum(moved_start, 0), inside)

    expected = extract_segments(moved_image, geometry, moved_start)
    for got, want in zip(segments, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(
        target, extract_target(moved_labels, geometry, moved_start)
    )


def test_flipping_segments_after_cutting_would_not_match_for_x5():
    # Guards the test above: it would pass trivially if every pathway were
    # symmetric about the target.
    geometry = tiny_geometry(factors=(1, 5))
    image, _ = _volume(np.random.default_rng(1))
    start = (4, 4, 4)
    flip = SpatialTransform((True, False, False))
    normal, x5 = extract_segments(image, geometry, start, flip)
    plain_normal, plain_x5 = extract_segments(image, geometry, start)
    np.testing.assert_array_equal(normal, np.flip(plain_normal, 1))
    assert not np.array_equal(x5, np.flip(plain_x5, 1))


@pytest.mark.parametrize("centre", CENTRES.values(), ids=CENTRES.keys())
def test_intensity_transform_equals_transforming_the_volume(centre):
    geometry = tiny_geometry(factors=(1, 3))
    image, _ = _volume(np.random.default_rng(2))
    low, high = image.min(axis=(1, 2, 3)), image.max(axis=(1, 2, 3))
    intensity = IntensityTransform(
        scale=np.array([1.2, 0.9], np.float32),
        shift=np.array([-0.3, 0.1], np.float32),
        gamma=np.array([0.7, 1.4]),
    )
    start = np.subtract(centre, 4)
    segments = extract_segments(image, geometry, start)
    regions = extract_segments_into(segments, image, geometry, start)
    for segment, region in zip(segments, regions, strict=True):
        intensity.apply_(segment, region, low, high)

    # The same map written out for the whole volume; padding is added after it.
    span = (high - low)[:, None, None, None]
    unit = (image - low[:, None, None, None]) / span
    gamma = intensity.gamma[:, None, None, None]
    mapped = low[:, None, None, None] + span * unit**gamma
    moved = mapped * intensity.scale[:, None, None, None]
    moved += intensity.shift[:, None, None, None]
    expected = extract_segments(moved.astype(np.float32), geometry, start)
    for got, want in zip(segments, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_drawn_transforms_follow_the_config():
    rng = np.random.default_rng(0)
    config = AugmentationConfig(flip_axes=(2,), gamma_probability=0.0)
    drawn = [draw_augmentation(rng, config, 3) for _ in range(400)]
    flips = np.array([spatial.flips for spatial, _ in drawn])
    assert not flips[:, :2].any()
    assert 0.4 < flips[:, 2].mean() < 0.6
    assert all(not spatial.transpose_ij for spatial, _ in drawn)
    scales = np.concatenate([intensity.scale for _, intensity in drawn])
    assert abs(scales.std() - 0.1) < 0.01
    assert np.all(np.concatenate([i.gamma for _, i in drawn]) == 1.0)

    spatial, intensity = draw_augmentation(rng, AugmentationConfig.none(), 3)
    assert spatial.is_identity
    assert intensity is None


def test_sampler_batches_stay_aligned_under_every_augmentation(coordinate_case):
    # Coordinates as channels: after any flip or turn, the normal pathway's
    # centre taps must still read the voxels whose labels the target holds.
    geometry = tiny_geometry(factors=(1, 3))
    config = SamplingConfig(
        augmentation=AugmentationConfig(
            flip_axes=(0, 1, 2),
            rotate_in_plane=True,
            intensity_scale_std=0.0,
            intensity_shift_std=0.0,
            gamma_probability=0.0,
        )
    )
    sampler = SegmentSampler(
        [coordinate_case], geometry, range(4), batch_size=16, batches_per_epoch=4,
        config=config,
    )  # fmt: skip
    label_map = coordinate_case.label_map
    for index in range(4):
        batch = sampler.batch(0, index)
        normal, context = (s.numpy() for s in batch["segments"])
        target = batch["target"].numpy()
        read = np.rint(normal[:, :, 4:13, 4:13, 4:13]).astype(int) - 1  # (B, 3, 9^3)
        for n in range(len(target)):
            inside = target[n] >= 0
            labels = label_map[tuple(read[n][:, inside])]
            np.testing.assert_array_equal(labels, target[n][inside])
            # Centre voxel of both pathways is the sampled centre.
            centre = batch["centre"][n].numpy()
            np.testing.assert_array_equal(read[n][:, 4, 4, 4], centre)
            np.testing.assert_array_equal(context[n][:, 5, 5, 5] - 1, centre)


def test_rotation_needs_segments_square_in_plane(coordinate_case):
    geometry = tiny_geometry(input_shape=(17, 19, 17), factors=(1, 3))
    config = SamplingConfig(augmentation=AugmentationConfig(rotate_in_plane=True))
    with pytest.raises(ConfigError, match=r"rotate_in_plane needs segments square"):
        SegmentSampler(
            [coordinate_case], geometry, range(4), batch_size=2, batches_per_epoch=1,
            config=config,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"flip_axes": (0, 3)}, r"flip_axes must be distinct axes among 0, 1, 2"),
        ({"gamma_probability": 1.5}, r"gamma_probability must be in \[0, 1\]"),
        ({"gamma_range": (0.0, 1.5)}, r"gamma_range must be \(low, high\)"),
        ({"intensity_scale_std": -0.1}, r"intensity_scale_std must be >= 0"),
    ],
    ids=["bad_axis", "probability", "gamma_zero", "negative_std"],
)
def test_bad_augmentation_settings_are_rejected(options, message):
    with pytest.raises(ValueError, match=message):
        AugmentationConfig(**options)
