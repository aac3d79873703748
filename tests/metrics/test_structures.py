"""Labels, regions and the names in dataset.json."""

import json

import pytest

from seg3d.errors import ConfigError, DatasetError
from seg3d.metrics.structures import (
    REGION,
    Structure,
    check_unique_names,
    class_structures,
    find_dataset_json,
    parse_labels,
    parse_region,
    read_dataset_labels,
)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["1,2,4"], {1: "label 1", 2: "label 2", 4: "label 4"}),
        (["1=edema, 2=necrosis"], {1: "edema", 2: "necrosis"}),
        (["1=edema", "3"], {1: "edema", 3: "label 3"}),
    ],
    ids=["values", "named", "repeated"],
)
def test_parse_labels(options, expected):
    assert parse_labels(options) == expected


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("one", r"'one' is not an integer"),
        ("0", r"must be positive"),
        ("1.5", r"not an"),
    ],
    ids=["word", "background", "fraction"],
)
def test_parse_labels_rejects_non_label_values(option, message):
    with pytest.raises(ConfigError, match=message):
        parse_labels([option])


def test_parse_region():
    region = parse_region("whole tumour=3,1,2")

    assert region == Structure("whole tumour", (1, 2, 3), REGION)


@pytest.mark.parametrize(
    ("option", "message"),
    [("1,2,3", "expected NAME=VALUES"), ("core=", "no label values"), ("=1", "NAME")],
    ids=["no-name", "no-values", "empty-name"],
)
def test_parse_region_errors(option, message):
    with pytest.raises(ConfigError, match=message):
        parse_region(option)


def test_decathlon_labels(tmp_path):
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"labels": {"0": "background", "1": "edema"}}))

    labels = read_dataset_labels(path)

    assert labels.names == {1: "edema"}
    assert labels.regions == ()


def test_nnunet_v2_labels_with_regions(tmp_path):
    path = tmp_path / "dataset.json"
    labels = {"background": 0, "edema": 1, "whole tumour": [1, 2, 3], "core": [2, 3]}
    path.write_text(json.dumps({"labels": labels}))

    found = read_dataset_labels(path)

    assert found.names == {1: "edema"}
    assert found.regions == (
        Structure("whole tumour", (1, 2, 3), REGION),
        Structure("core", (2, 3), REGION),
    )


def test_malformed_dataset_json_names_the_file(tmp_path):
    path = tmp_path / "dataset.json"
    path.write_text("{not json")

    with pytest.raises(DatasetError, match=r"dataset.json: not a readable"):
        read_dataset_labels(path)


def test_dataset_json_is_found_beside_or_one_folder_above(tmp_path):
    (tmp_path / "labelsTs").mkdir()
    (tmp_path / "dataset.json").write_text("{}")

    assert find_dataset_json(tmp_path / "labelsTs") == tmp_path / "dataset.json"
    (tmp_path / "labelsTs" / "dataset.json").write_text("{}")
    assert find_dataset_json(tmp_path / "labelsTs") == (
        tmp_path / "labelsTs" / "dataset.json"
    )


def test_class_names_fall_back_to_the_value():
    classes = class_structures([2, 1, 0], {1: "edema"})

    assert [c.name for c in classes] == ["edema", "label 2"]


def test_two_structures_with_one_name_are_refused():
    with pytest.raises(ConfigError, match=r"two structures are named 'core'"):
        check_unique_names([Structure("core", (1,)), Structure("core", (1, 2), REGION)])
