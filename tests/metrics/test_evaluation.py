"""Evaluating folders of files: labels across cases, grids, bad label maps."""

import json
import logging
import math

import numpy as np
import pytest
from metrics_builders import affine_for, nested_label_map, save

from seg3d.errors import DatasetError, GeometryMismatchError, VolumeReadError
from seg3d.io import read_volume
from seg3d.metrics import evaluate_label_maps, plan_evaluation, run_evaluation
from seg3d.metrics.structures import class_structures, parse_region

SHAPE = (20, 18, 12)


@pytest.fixture
def folders(tmp_path):
    """Three cases; label 3 appears only in case c's truth and prediction."""
    for index, name in enumerate("abc"):
        truth = nested_label_map(SHAPE, index)
        prediction = np.roll(truth, 1, axis=0)
        if name != "c":
            truth[truth == 3] = 2
            prediction[prediction == 3] = 2
        save(tmp_path / "labelsTs" / f"{name}.nii.gz", truth)
        save(tmp_path / "pred" / f"{name}_0000_seg.nii.gz", prediction)
    return tmp_path


def _evaluate(folders, **options):
    plan = plan_evaluation(folders / "pred", folders / "labelsTs", **options)
    return run_evaluation(plan)


def test_every_case_gets_every_class_found_in_any_truth(folders):
    evaluation = _evaluate(folders)

    assert [s.name for s in evaluation.structures] == ["label 1", "label 2", "label 3"]
    case_a = evaluation.cases[0]
    # Label 3 is absent from both of case a's maps: the "both empty" convention.
    assert case_a.metrics["label 3"].dice == 1.0
    assert case_a.metrics["label 3"].hd95_mm == 0.0


def test_results_equal_the_array_level_metrics(folders):
    evaluation = _evaluate(folders, regions=[parse_region("tumour=1,2,3")])

    case = evaluation.cases[2]
    truth = nested_label_map(SHAPE, 2)
    spacing = read_volume(case.truth).spacing  # as stored: float32 in NIfTI
    expected = evaluate_label_maps(
        np.roll(truth, 1, axis=0),
        truth,
        evaluation.structures,
        spacing,
        float(np.prod(spacing)),
    )
    for name, metrics in expected.items():
        assert case.metrics[name].as_dict() == pytest.approx(metrics.as_dict())


def test_names_come_from_dataset_json_one_folder_up(folders):
    labels = {"0": "background", "1": "edema", "2": "core", "3": "enhancing"}
    (folders / "dataset.json").write_text(json.dumps({"labels": labels}))

    evaluation = _evaluate(folders)

    assert [s.name for s in evaluation.structures] == ["edema", "core", "enhancing"]
    assert evaluation.plan.dataset_json == folders / "dataset.json"


def test_explicit_labels_limit_the_classes(folders):
    evaluation = _evaluate(folders, labels={2: "core"})

    assert [s.name for s in evaluation.structures] == ["core"]
    assert set(evaluation.cases[0].metrics) == {"core"}


def test_labels_only_in_predictions_are_reported_not_evaluated(folders, caplog):
    prediction = nested_label_map(SHAPE, 0)
    prediction[0, 0, 0] = 7
    save(folders / "pred" / "a_0000_seg.nii.gz", prediction)

    with caplog.at_level(logging.WARNING):
        evaluation = _evaluate(folders)

    assert "label 7" not in [s.name for s in evaluation.structures]
    assert "label values [7] that no ground truth holds" in caplog.text


def test_parallel_jobs_give_the_same_results(folders):
    plan = plan_evaluation(folders / "pred", folders / "labelsTs")

    serial = run_evaluation(plan, jobs=1)
    parallel = run_evaluation(plan, jobs=2)

    assert [c.case_id for c in parallel.cases] == ["a", "b", "c"]
    for one, other in zip(serial.cases, parallel.cases, strict=True):
        assert one.metrics == other.metrics


def test_prediction_on_another_grid_is_an_error_naming_both_files(folders):
    truth = nested_label_map(SHAPE, 0)
    save(folders / "pred" / "a_0000_seg.nii.gz", truth, affine_for((1.0, 1.0, 1.0)))

    with pytest.raises(
        GeometryMismatchError, match=r"a_0000_seg.nii.gz and .*a.nii.gz"
    ):
        _evaluate(folders)


def test_resampling_puts_a_coarse_prediction_on_the_truth_grid(tmp_path, caplog):
    coarse = nested_label_map((10, 9, 6), 4)
    truth = np.kron(coarse, np.ones((2, 2, 2), np.uint8))
    # Coarse voxel centres sit between the two fine voxels each one covers.
    coarse_affine = affine_for((2.0, 2.0, 2.0), origin=(0.5, 0.5, 0.5))
    save(tmp_path / "gt.nii.gz", truth, affine_for((1.0, 1.0, 1.0), (0, 0, 0)))
    save(tmp_path / "pred.nii.gz", coarse, coarse_affine)
    plan = plan_evaluation(tmp_path / "pred.nii.gz", tmp_path / "gt.nii.gz")

    with caplog.at_level(logging.WARNING):
        evaluation = run_evaluation(plan, resample_prediction=True)

    assert all(m.dice == 1.0 for m in evaluation.cases[0].metrics.values())
    assert evaluation.cases[0].resampled_from is not None
    assert "resampled onto the truth's grid by nearest neighbour" in caplog.text


def test_float_label_maps_with_whole_numbers_are_accepted(folders):
    truth = nested_label_map(SHAPE, 0)
    save(folders / "labelsTs" / "a.nii.gz", truth.astype(np.float32))

    evaluation = _evaluate(folders)

    assert evaluation.cases[0].metrics["label 1"].dice < 1.0


def test_fractional_label_maps_are_refused(folders):
    probabilities = np.full(SHAPE, 0.25, np.float32)
    save(folders / "pred" / "b_0000_seg.nii.gz", probabilities)

    with pytest.raises(
        DatasetError, match=r"b_0000_seg.nii.gz: not a label map: .* 0.25"
    ):
        _evaluate(folders)


def test_4d_label_maps_are_refused(folders):
    save(folders / "pred" / "b_0000_seg.nii.gz", np.zeros((*SHAPE, 2), np.uint8))

    with pytest.raises(DatasetError, match=r"a label map must be 3D"):
        _evaluate(folders)


def test_unreadable_file_is_named(folders):
    (folders / "pred" / "c_0000_seg.nii.gz").write_bytes(b"not a volume")

    with pytest.raises(VolumeReadError, match=r"c_0000_seg.nii.gz"):
        _evaluate(folders)


def test_structures_with_undefined_distances_stay_nan(tmp_path):
    truth = np.zeros(SHAPE, np.uint8)
    truth[5:9, 5:9, 3:6] = 1
    save(tmp_path / "gt.nii.gz", truth)
    save(tmp_path / "pred.nii.gz", np.zeros(SHAPE, np.uint8))

    evaluation = run_evaluation(
        plan_evaluation(tmp_path / "pred.nii.gz", tmp_path / "gt.nii.gz")
    )

    metrics = evaluation.cases[0].metrics["label 1"]
    assert metrics.dice == 0.0
    assert math.isnan(metrics.hd95_mm)
    assert class_structures([1], {}) == list(evaluation.structures)
