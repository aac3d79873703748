"""Summaries, JSON and CSV: NaN handling, conventions, atomic writes."""

import csv
import json
import math

import numpy as np
import pytest
from metrics_builders import save

from seg3d import __version__
from seg3d.errors import OutputExistsError
from seg3d.metrics import (
    CONVENTIONS,
    METRIC_NAMES,
    Statistics,
    plan_evaluation,
    run_evaluation,
    summarize,
    write_csv,
    write_json,
)

SHAPE = (12, 12, 8)


@pytest.fixture
def evaluation(tmp_path):
    """Three cases of label 1: good, missed entirely, and shifted."""
    truth = np.zeros(SHAPE, np.uint8)
    truth[3:8, 3:8, 2:6] = 1
    predictions = [truth, np.zeros_like(truth), np.roll(truth, 1, axis=0)]
    for name, prediction in zip("abc", predictions, strict=True):
        save(tmp_path / "gt" / f"{name}.nii.gz", truth)
        save(tmp_path / "pred" / f"{name}_seg.nii.gz", prediction)
    return run_evaluation(plan_evaluation(tmp_path / "pred", tmp_path / "gt"))


def test_statistics_leave_undefined_values_out_and_count_them():
    statistics = Statistics.of([1.0, math.nan, 3.0, 8.0])

    assert statistics.mean == pytest.approx(4.0)
    assert statistics.std == pytest.approx(np.std([1.0, 3.0, 8.0], ddof=1))
    assert statistics.median == 3.0
    assert (statistics.n, statistics.n_undefined) == (3, 1)


def test_statistics_of_too_few_values_are_nan():
    assert math.isnan(Statistics.of([2.0]).std)
    assert math.isnan(Statistics.of([math.nan]).mean)


def test_summary_counts_the_missed_case_out_of_distances(evaluation):
    summary = summarize(evaluation)["label 1"]

    assert summary["dice"].n == 3
    assert summary["hd95_mm"].n == 2
    assert summary["hd95_mm"].n_undefined == 1


def test_json_holds_cases_summary_conventions_and_version(evaluation, tmp_path):
    path = write_json(evaluation, tmp_path / "out" / "metrics.json")

    report = json.loads(path.read_text())

    assert report["seg3d_version"] == __version__
    assert report["conventions"] == CONVENTIONS
    assert [case["case_id"] for case in report["cases"]] == ["a", "b", "c"]
    assert report["cases"][1]["metrics"]["label 1"]["hd95_mm"] is None
    assert report["cases"][0]["metrics"]["label 1"]["dice"] == 1.0
    assert report["summary"]["label 1"]["hd95_mm"]["n"] == 2
    assert report["structures"] == [
        {"name": "label 1", "kind": "class", "label_values": [1]}
    ]


def test_csv_has_one_row_per_case_and_structure(evaluation, tmp_path):
    path = write_csv(evaluation, tmp_path / "metrics.csv")

    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))

    assert [row["case_id"] for row in rows] == ["a", "b", "c"]
    assert list(rows[0]) == [
        "case_id",
        "structure",
        "kind",
        "label_values",
        *METRIC_NAMES,
    ]
    assert rows[1]["hd95_mm"] == "NaN"
    assert float(rows[2]["dice"]) == evaluation.cases[2].metrics["label 1"].dice


def test_existing_reports_are_kept_without_overwrite(evaluation, tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("keep")

    with pytest.raises(OutputExistsError, match="pass --overwrite"):
        write_json(evaluation, path)

    assert path.read_text() == "keep"
    write_json(evaluation, path, overwrite=True)
    assert json.loads(path.read_text())["cases"]
