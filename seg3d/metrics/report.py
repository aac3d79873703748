"""Summaries of an evaluation, and its JSON and CSV reports.

JSON has no NaN: undefined values (see ``CONVENTIONS``) are written as
``null``. The CSV writes them as ``NaN``, which pandas and R read as missing.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seg3d.io import atomic_path
from seg3d.metrics.evaluation import Evaluation
from seg3d.metrics.label_maps import METRIC_NAMES

CONVENTIONS: dict[str, str] = {
    "surface": (
        "the voxels of a mask with at least one of their 6 face neighbours "
        "outside the mask; voxels beyond the image edge count as outside "
        "(as medpy with connectivity=1 and MONAI's default mask edges)"
    ),
    "distance": (
        "Euclidean distance in mm between surface voxel centres, using the voxel "
        "spacing of the ground truth (column norms of its affine)"
    ),
    "hd95_mm": (
        "the larger of the two directed 95th percentiles of surface distances "
        "(prediction to truth, truth to prediction), linear interpolation between "
        "ranks, as MONAI compute_hausdorff_distance(percentile=95); medpy's hd95 "
        "takes the 95th percentile of both directions pooled instead"
    ),
    "assd_mm": (
        "mean of the surface distances of both directions pooled, each surface "
        "voxel of either mask counted once, as medpy assd and MONAI "
        "compute_average_surface_distance(symmetric=True)"
    ),
    "volume": (
        "voxel count times the voxel volume |det(affine[:3, :3])|, in ml; "
        "relative_volume_difference = (V_prediction - V_truth) / V_truth"
    ),
    "both_empty": (
        "structure absent from prediction and truth: dice, iou, sensitivity, "
        "precision 1; relative_volume_difference 0; hd95_mm and assd_mm 0 "
        "(the BraTS convention)"
    ),
    "one_empty": (
        "structure absent from only one of them: dice and iou 0; hd95_mm and "
        "assd_mm undefined (NaN, null in JSON); sensitivity undefined when the "
        "truth is empty, precision undefined when the prediction is empty, "
        "relative_volume_difference undefined when the truth is empty"
    ),
    "summary": (
        "per structure and metric over the cases where the value is defined: "
        "mean, sample standard deviation (ddof=1, null for fewer than 2 "
        "values), median, n; n_undefined counts the cases left out"
    ),
}


@dataclass(frozen=True)
class Statistics:
    """One metric of one structure across cases; undefined values left out.

    Attributes:
        mean: arithmetic mean, NaN when ``n`` is 0.
        std: sample standard deviation (ddof=1), NaN when ``n`` < 2.
        median: NaN when ``n`` is 0.
        n: cases whose value is defined.
        n_undefined: cases whose value is NaN and was left out.
    """

    mean: float
    std: float
    median: float
    n: int
    n_undefined: int

    @classmethod
    def of(cls, values: list[float]) -> Statistics:
        array = np.asarray(values, dtype=np.float64)
        defined = array[~np.isnan(array)]
        n = int(defined.size)
        return cls(
            mean=float(defined.mean()) if n else math.nan,
            std=float(defined.std(ddof=1)) if n > 1 else math.nan,
            median=float(np.median(defined)) if n else math.nan,
            n=n,
            n_undefined=int(array.size - n),
        )


def summarize(evaluation: Evaluation) -> dict[str, dict[str, Statistics]]:
    """Structure name to metric name to its statistics across cases."""
    return {
        structure.name: {
            metric: Statistics.of(
                [
                    getattr(case.metrics[structure.name], metric)
                    for case in evaluation.cases
                ]
            )
            for metric in METRIC_NAMES
        }
        for structure in evaluation.structures
    }


def report_dict(evaluation: Evaluation) -> dict:
    """Everything about an evaluation as JSON-ready data (NaN as ``None``)."""
    from seg3d import __version__

    plan = evaluation.plan
    summary = summarize(evaluation)
    return {
        "seg3d_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "prediction": str(plan.prediction),
        "truth": str(plan.truth),
        "dataset_json": str(plan.dataset_json) if plan.dataset_json else None,
        "conventions": CONVENTIONS,
        "structures": [
            {"name": s.name, "kind": s.kind, "label_values": list(s.label_values)}
            for s in evaluation.structures
        ],
        "cases": [
            {
                "case_id": case.case_id,
                "prediction": str(case.prediction),
                "truth": str(case.truth),
                "spacing_mm": list(case.spacing),
                "resampled_from": case.resampled_from,
                "metrics": {
                    name: {key: _json_number(v) for key, v in values.as_dict().items()}
                    for name, values in case.metrics.items()
                },
            }
            for case in evaluation.cases
        ],
        "summary": {
            name: {
                metric: {
                    key: _json_number(value) for key, value in vars(statistics).items()
                }
                for metric, statistics in metrics.items()
            }
            for name, metrics in summary.items()
        },
        "unmatched_predictions": [str(path) for path in plan.unmatched_predictions],
    }


def write_json(evaluation: Evaluation, path: Path, overwrite: bool = False) -> Path:
    """Write :func:`report_dict` to ``path`` atomically."""
    text = json.dumps(report_dict(evaluation), indent=2, allow_nan=False)
    with atomic_path(path, overwrite) as temporary:
        temporary.write_text(text + "\n", encoding="utf-8")
    return path


CSV_COLUMNS = ("case_id", "structure", "kind", "label_values", *METRIC_NAMES)


def write_csv(evaluation: Evaluation, path: Path, overwrite: bool = False) -> Path:
    """One row per case and structure; label values joined by ``;``."""
    rows = [
        [
            case.case_id,
            structure.name,
            structure.kind,
            ";".join(str(value) for value in structure.label_values),
            *(
                _csv_number(getattr(case.metrics[structure.name], name))
                for name in METRIC_NAMES
            ),
        ]
        for case in evaluation.cases
        for structure in evaluation.structures
    ]
    text = io.StringIO(newline="")
    csv.writer(text).writerows([CSV_COLUMNS, *rows])
    with atomic_path(path, overwrite) as temporary:
        temporary.write_text(text.getvalue(), encoding="utf-8", newline="")
    return path


def _json_number(value: float | int | None) -> float | int | None:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _csv_number(value: float) -> str:
    # R reads "NaN" (not "nan") as a number; pandas reads both.
    return "NaN" if math.isnan(value) else repr(value)
