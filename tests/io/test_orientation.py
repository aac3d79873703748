"""Reorientation to closest RAS and back is exact for every axis layout."""

import nibabel as nib
import numpy as np
import pytest

from seg3d.io import Reorientation

_ROTATION_20_DEGREES = np.array(
    [
        [np.cos(0.35), -np.sin(0.35), 0.0],
        [np.sin(0.35), np.cos(0.35), 0.0],
        [0.0, 0.0, 1.0],
    ]
)


def _affine(linear: np.ndarray, origin=(12.0, -30.0, 7.5)) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = origin
    return affine


AFFINES = {
    "RAS": _affine(np.diag([1.0, 1.2, 2.5])),
    "LPS": _affine(np.diag([-0.9, -0.9, 3.0])),
    "flipped_k": _affine(np.diag([1.0, 1.0, -2.0])),
    "permuted_PIL": _affine(np.array([[0, 0, -1.5], [-1.0, 0, 0], [0, -0.8, 0]])),
    "oblique": _affine(_ROTATION_20_DEGREES @ np.diag([-1.1, 0.9, 2.2])),
    "oblique_permuted": _affine(
        _ROTATION_20_DEGREES @ np.array([[0, 1.0, 0], [0, 0, 2.0], [-1.3, 0, 0]])
    ),
}


@pytest.mark.parametrize("name", list(AFFINES), ids=list(AFFINES))
def test_round_trip_is_voxel_exact(name):
    affine = AFFINES[name]
    rng = np.random.default_rng(0)
    array = rng.integers(0, 5, size=(5, 7, 9)).astype(np.uint8)
    reorientation = Reorientation.for_grid(affine, array.shape)

    canonical = reorientation.to_canonical(array)
    restored = reorientation.from_canonical(canonical)

    np.testing.assert_array_equal(restored, array)
    assert canonical.shape == reorientation.canonical_shape


@pytest.mark.parametrize("name", list(AFFINES), ids=list(AFFINES))
def test_matches_nibabel_closest_canonical(name):
    affine = AFFINES[name]
    array = np.arange(5 * 7 * 9, dtype=np.float32).reshape(5, 7, 9)
    reorientation = Reorientation.for_grid(affine, array.shape)
    expected = nib.as_closest_canonical(nib.Nifti1Image(array, affine))

    np.testing.assert_array_equal(reorientation.to_canonical(array), expected.dataobj)
    np.testing.assert_allclose(
        reorientation.canonical_affine(affine), expected.affine, atol=1e-9
    )
    assert "".join(nib.aff2axcodes(expected.affine)) == "RAS" or "oblique" in name


def test_channels_first_and_channels_last_agree():
    affine = AFFINES["permuted_PIL"]
    image = np.random.default_rng(1).normal(size=(2, 4, 5, 6)).astype(np.float32)
    reorientation = Reorientation.for_grid(affine, image.shape[1:])

    channels_first = reorientation.to_canonical(image, channels_first=True)
    channels_last = reorientation.to_canonical(np.moveaxis(image, 0, -1))

    np.testing.assert_array_equal(np.moveaxis(channels_last, -1, 0), channels_first)
    back = reorientation.from_canonical(channels_first, channels_first=True)
    np.testing.assert_array_equal(back, image)


def test_world_positions_are_kept():
    affine = AFFINES["oblique_permuted"]
    shape = (5, 7, 9)
    reorientation = Reorientation.for_grid(affine, shape)
    marker = np.zeros(shape, dtype=np.uint8)
    marker[1, 2, 3] = 1

    canonical = reorientation.to_canonical(marker)
    new_index = np.argwhere(canonical == 1)[0]
    world_before = affine @ np.array([1, 2, 3, 1.0])
    world_after = reorientation.canonical_affine(affine) @ np.append(new_index, 1.0)

    np.testing.assert_allclose(world_after, world_before, atol=1e-9)


def test_record_round_trip():
    reorientation = Reorientation.for_grid(AFFINES["LPS"], (3, 4, 5))
    assert Reorientation.from_dict(reorientation.to_dict()) == reorientation
    assert reorientation.source_codes == "LPS"
    assert not reorientation.is_identity
