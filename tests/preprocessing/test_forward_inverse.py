"""The whole chain, forward and back, on anisotropic, non-RAS, oblique cases."""

import json

import nibabel as nib
import numpy as np
import pytest

from seg3d.errors import DatasetError, GeometryMismatchError
from seg3d.preprocessing import (
    ChannelNormalization,
    PreprocessingConfig,
    PreprocessingRecord,
    apply_record,
    preprocess_case,
    restore_label_map,
    restore_probabilities,
)

AWKWARD_GRIDS = ["LPS_anisotropic", "SLP_oblique"]
LABEL_VALUES = (0, 1, 3)


def _one_hot(label_map: np.ndarray) -> np.ndarray:
    return np.stack([(label_map == v).astype(np.float32) for v in LABEL_VALUES])


@pytest.mark.parametrize("grid", AWKWARD_GRIDS, ids=AWKWARD_GRIDS)
def test_without_resampling_round_trip_is_voxel_exact(grid, blob_case):
    case = blob_case(grid)
    processed = preprocess_case(case, PreprocessingConfig(crop_margin=1))

    restored = restore_label_map(processed.label_map, processed.record)
    probabilities = restore_probabilities(
        _one_hot(processed.label_map), processed.record
    )

    assert np.prod(processed.spatial_shape) < np.prod(case.spatial_shape)
    assert processed.record.reorientation.source_codes != "RAS"
    np.testing.assert_array_equal(restored, case.label_map)
    assert restored.dtype == case.label_map.dtype
    assert probabilities.shape == (len(LABEL_VALUES), *case.spatial_shape)
    np.testing.assert_array_equal(
        np.take(LABEL_VALUES, probabilities.argmax(0)), case.label_map
    )


@pytest.mark.parametrize("grid", AWKWARD_GRIDS, ids=AWKWARD_GRIDS)
def test_processed_affine_places_voxels_where_they_were(grid, blob_case):
    case = blob_case(grid)
    processed = preprocess_case(case, PreprocessingConfig(crop_margin=1))

    def lesion_centroid(label_map, affine):
        indices = np.argwhere(label_map == 3).mean(axis=0)
        return affine[:3, :3] @ indices + affine[:3, 3]  # RAS+ mm

    np.testing.assert_allclose(
        lesion_centroid(processed.label_map, processed.affine),
        lesion_centroid(case.label_map, case.affine),
        atol=1e-9,
    )
    assert nib.aff2axcodes(processed.affine) == ("R", "A", "S")
    np.testing.assert_allclose(
        sorted(processed.spacing), sorted(case.spacing), rtol=1e-12
    )


@pytest.mark.parametrize("grid", AWKWARD_GRIDS, ids=AWKWARD_GRIDS)
@pytest.mark.parametrize("label_interpolation", ["per_label", "nearest"])
def test_resampling_round_trip_keeps_grid_and_lesions(
    grid, label_interpolation, blob_case, dice
):
    case = blob_case(grid)
    config = PreprocessingConfig(
        target_spacing=1.0, label_interpolation=label_interpolation, crop_margin=2
    )
    processed = preprocess_case(case, config)
    record = processed.record

    restored = restore_label_map(processed.label_map, record)
    probabilities = restore_probabilities(_one_hot(processed.label_map), record)

    np.testing.assert_allclose(processed.spacing, (1.0, 1.0, 1.0), rtol=1e-12)
    assert restored.shape == case.spatial_shape
    assert probabilities.shape == (len(LABEL_VALUES), *case.spatial_shape)
    np.testing.assert_array_equal(record.original_affine, case.affine)
    np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=1e-5)
    from_probabilities = np.take(LABEL_VALUES, probabilities.argmax(axis=0))
    for value in (1, 3):
        assert dice(restored == value, case.label_map == value) > 0.97
        assert dice(from_probabilities == value, case.label_map == value) > 0.97


def test_resampled_grid_keeps_the_field_of_view_corner(blob_case):
    case = blob_case("SLP_oblique")
    record = preprocess_case(case, PreprocessingConfig(target_spacing=1.5)).record

    def corner(affine):
        return affine[:3, :3] @ np.full(3, -0.5) + affine[:3, 3]

    np.testing.assert_allclose(
        corner(record.resampled_affine), corner(record.canonical_affine), atol=1e-9
    )
    canonical_spacing = np.sqrt((record.canonical_affine[:3, :3] ** 2).sum(axis=0))
    extent = np.multiply(record.canonical_shape, canonical_spacing)  # mm
    # The far face moves by at most half a target voxel.
    np.testing.assert_allclose(
        np.multiply(record.resampled_shape, 1.5), extent, atol=0.75 + 1e-9
    )


def test_record_round_trips_through_json_and_repeats_exactly(blob_case):
    case = blob_case("SLP_oblique")
    config = PreprocessingConfig(
        normalization=(
            ChannelNormalization("percentile", percentiles=(2.0, 98.0)),
            ChannelNormalization("zscore"),
        ),
        target_spacing=(1.2, 1.0, 1.5),
        image_interpolation="bspline",
        crop_margin=(1, 2, 3),
    )
    processed = preprocess_case(case, config)

    text = json.dumps(processed.record.to_dict())
    record = PreprocessingRecord.from_dict(json.loads(text))
    repeated = apply_record(case, record)

    assert record == processed.record
    assert record.config == config
    np.testing.assert_array_equal(repeated.image, processed.image)
    np.testing.assert_array_equal(repeated.label_map, processed.label_map)
    np.testing.assert_array_equal(repeated.roi_mask, processed.roi_mask)
    np.testing.assert_array_equal(repeated.affine, processed.affine)


def test_apply_record_refuses_a_case_on_another_grid(blob_case):
    record = preprocess_case(blob_case("LPS_anisotropic"), PreprocessingConfig()).record
    other = blob_case("SLP_oblique", case_id="other")

    with pytest.raises(GeometryMismatchError, match="case other is not on the grid"):
        apply_record(other, record)


def test_restore_refuses_a_prediction_of_another_shape(blob_case):
    record = preprocess_case(blob_case("LPS_anisotropic"), PreprocessingConfig()).record

    with pytest.raises(
        GeometryMismatchError, match=r"label_map has spatial shape \(3, 3, 3\)"
    ):
        restore_label_map(np.zeros((3, 3, 3), np.uint8), record)
    with pytest.raises(GeometryMismatchError, match=r"must be \(N, i, j, k\)"):
        restore_probabilities(np.zeros(record.processed_shape, np.float32), record)


def test_outside_the_crop_restores_to_background(blob_case):
    case = blob_case("LPS_anisotropic")
    processed = preprocess_case(case, PreprocessingConfig())
    ones = np.full((2, *processed.spatial_shape), 0.5, dtype=np.float32)

    probabilities = restore_probabilities(ones, processed.record)
    labels = restore_label_map(
        np.full(processed.spatial_shape, 7, np.uint8), processed.record
    )

    inside = labels == 7
    assert 0 < inside.sum() < inside.size
    np.testing.assert_array_equal(probabilities[0][~inside], 1.0)
    np.testing.assert_array_equal(probabilities[1][~inside], 0.0)
    np.testing.assert_array_equal(probabilities[:, inside], 0.5)


def test_empty_roi_is_reported_with_the_case(blob_case):
    case = blob_case("LPS_anisotropic", case_id="case_007")
    case.roi_mask = np.zeros_like(case.roi_mask)

    with pytest.raises(DatasetError, match="case case_007: the ROI mask is empty"):
        preprocess_case(case, PreprocessingConfig())


def test_unlabelled_case_without_roi_crops_to_nonzero(blob_case):
    case = blob_case("SLP_oblique", with_roi=False)
    case.label_map = None
    case.image[:, :4] = 0.0  # a zero border along the file's i axis
    processed = preprocess_case(case, PreprocessingConfig(crop="roi"))

    assert processed.label_map is None
    assert processed.roi_mask is None
    assert processed.record.statistics[0].region == "nonzero"
    restored = restore_label_map(
        np.ones(processed.spatial_shape, np.uint8), processed.record
    )
    np.testing.assert_array_equal(restored[4:], 1)
    np.testing.assert_array_equal(restored[:4], 0)


@pytest.mark.parametrize("grid", AWKWARD_GRIDS, ids=AWKWARD_GRIDS)
def test_restored_values_land_on_the_input_grid(grid, blob_case, world_points):
    # A map linear in world mm survives linear resampling exactly, so the
    # restored map must equal the same function on the input's voxel centres.
    case = blob_case(grid)
    processed = preprocess_case(case, PreprocessingConfig(target_spacing=1.0))
    slope = np.array([0.02, -0.01, 0.015])

    def field(affine, spatial_shape):
        return 0.5 + world_points(affine, spatial_shape) @ slope

    restored = restore_probabilities(
        field(processed.affine, processed.spatial_shape)[None].astype(np.float32),
        processed.record,
    )[0]

    to_processed = np.linalg.inv(processed.affine) @ case.affine
    indices = np.stack(np.indices(case.spatial_shape), axis=-1) @ to_processed[:3, :3].T
    indices += to_processed[:3, 3]
    covered = np.all(
        (indices >= 0) & (indices <= np.array(processed.spatial_shape) - 1), axis=-1
    )
    assert covered.mean() > 0.3
    expected = field(case.affine, case.spatial_shape)
    np.testing.assert_allclose(restored[covered], expected[covered], atol=1e-5)
