"""Connected components: sizes in mm^3 on anisotropic grids, per class."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from skimage import measure

from seg3d.errors import ConfigError
from seg3d.postprocessing.components import ComponentParams, filter_components

SPACING = (1.0, 1.0, 2.5)  # 2.5 mm^3 per voxel


def constructed_label_map() -> np.ndarray:
    """Class 1: blocks of 24, 8 and 4 voxels; class 2: blocks of 12 and 2."""
    label_map = np.zeros((20, 20, 10), dtype=np.uint8)
    label_map[1:5, 1:4, 1:3] = 1  # 24 voxels = 60 mm^3
    label_map[10:12, 10:12, 5:7] = 1  # 8 voxels = 20 mm^3
    label_map[15:17, 1:3, 8] = 1  # 4 voxels = 10 mm^3
    label_map[1:4, 12:16, 5] = 2  # 12 voxels = 30 mm^3
    label_map[18, 18, 1:3] = 2  # 2 voxels = 5 mm^3
    return label_map


def test_components_below_the_volume_are_removed_per_class(caplog):
    label_map = constructed_label_map()
    params = ComponentParams(min_volume_mm3=10.0)
    with caplog.at_level(logging.INFO, logger="seg3d.postprocessing.components"):
        result, removed = filter_components(label_map, SPACING, params)

    # 10 mm^3 is not below 10 mm^3: only class 2's 5 mm^3 block goes.
    assert removed == {1: 0, 2: 1}
    assert result[18, 18, 1:3].tolist() == [0, 0]
    np.testing.assert_array_equal(result[label_map == 1], 1)
    assert "label 2: removed 1 of 2 connected components (2 voxels)" in caplog.text
    assert result.dtype == label_map.dtype


def test_thresholds_per_label_value():
    label_map = constructed_label_map()
    params = ComponentParams(min_volume_mm3={"1": 20.5})
    result, removed = filter_components(label_map, SPACING, params)
    assert removed == {1: 2, 2: 0}
    assert (result == 1).sum() == 24
    assert (result == 2).sum() == 14


def test_keep_largest_per_class_and_for_chosen_classes():
    label_map = constructed_label_map()
    result, removed = filter_components(
        label_map, SPACING, ComponentParams(keep_largest=True)
    )
    assert removed == {1: 2, 2: 1}
    assert (result == 1).sum() == 24
    assert (result == 2).sum() == 12

    result, removed = filter_components(
        label_map, SPACING, ComponentParams(keep_largest=(2,))
    )
    assert removed == {1: 0, 2: 1}
    assert (result == 1).sum() == 36


def test_a_class_whose_largest_component_is_too_small_disappears():
    label_map = constructed_label_map()
    params = ComponentParams(keep_largest=True, min_volume_mm3={"2": 40.0})
    result, removed = filter_components(label_map, SPACING, params)
    assert removed == {1: 2, 2: 2}
    assert not (result == 2).any()


@pytest.mark.parametrize(
    ("connectivity", "components"),
    [(1, 3), (2, 2), (3, 1)],
    ids=["faces", "edges", "corners"],
)
def test_connectivity_decides_what_touches(connectivity, components):
    label_map = np.zeros((5, 5, 5), dtype=np.int16)
    label_map[1, 1, 1] = 1
    label_map[2, 2, 1] = 1  # shares an edge with (1, 1, 1)
    label_map[3, 3, 2] = 1  # shares only a corner with (2, 2, 1)
    params = ComponentParams(keep_largest=True, connectivity=connectivity)
    _, removed = filter_components(label_map, (1.0, 1.0, 1.0), params)
    assert removed[1] == components - 1


def test_agrees_with_scikit_image_on_random_blobs():
    rng = np.random.default_rng(0)
    blobs = rng.random((30, 30, 30)) > 0.7
    label_map = blobs.astype(np.int32)
    threshold_voxels = 4
    params = ComponentParams(min_volume_mm3=threshold_voxels * 0.5, connectivity=1)
    result, removed = filter_components(label_map, (0.5, 1.0, 1.0), params)

    labels = measure.label(blobs, connectivity=1)
    small = [r.label for r in measure.regionprops(labels) if r.area < threshold_voxels]
    assert removed[1] == len(small) > 10
    np.testing.assert_array_equal(result == 0, ~blobs | np.isin(labels, small))


def test_round_trip_and_errors():
    params = ComponentParams(min_volume_mm3={"2": 5}, keep_largest=[1], connectivity=1)
    assert ComponentParams.from_dict(params.to_dict()) == params
    with pytest.raises(ConfigError, match=r"connectivity must be 1 \(faces\), 2"):
        ComponentParams(connectivity=6)
    with pytest.raises(ConfigError, match="min_volume_mm3 must be a number >= 0"):
        ComponentParams(min_volume_mm3=-1)
    with pytest.raises(ConfigError, match="label values must be positive integers"):
        ComponentParams.from_dict({"min_volume_mm3": {"tumour": 5}})
    with pytest.raises(ConfigError, match=r"not 0"):
        ComponentParams(keep_largest=(0,))
