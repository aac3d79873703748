"""Segmentation metrics, reports and pictures.

``plan_evaluation`` pairs prediction and ground-truth files and settles what to
measure; ``run_evaluation`` measures every case; ``write_json``, ``write_csv``
and ``write_pictures`` report. The metrics of one pair of arrays are in
``evaluate_label_maps`` (label maps) and ``surface_metrics`` (binary masks).
Conventions, including empty masks, are in ``docs/metrics.md``.
"""

from seg3d.metrics.evaluation import (
    CaseResult,
    Evaluation,
    EvaluationPlan,
    plan_evaluation,
    run_evaluation,
)
from seg3d.metrics.label_maps import (
    METRIC_NAMES,
    LabelMapPair,
    StructureMetrics,
    as_label_map,
    evaluate_label_maps,
)
from seg3d.metrics.matching import CasePair, case_id, match_cases
from seg3d.metrics.overlap import OverlapCounts, OverlapMetrics, overlap_metrics
from seg3d.metrics.report import (
    CONVENTIONS,
    Statistics,
    summarize,
    write_csv,
    write_json,
)
from seg3d.metrics.structures import Structure, parse_labels, parse_region
from seg3d.metrics.surface import SurfaceMetrics, surface_distances, surface_metrics

__all__ = [
    "CONVENTIONS",
    "METRIC_NAMES",
    "CasePair",
    "CaseResult",
    "Evaluation",
    "EvaluationPlan",
    "LabelMapPair",
    "OverlapCounts",
    "OverlapMetrics",
    "Statistics",
    "Structure",
    "StructureMetrics",
    "SurfaceMetrics",
    "as_label_map",
    "case_id",
    "evaluate_label_maps",
    "match_cases",
    "overlap_metrics",
    "parse_labels",
    "parse_region",
    "plan_evaluation",
    "run_evaluation",
    "summarize",
    "surface_distances",
    "surface_metrics",
    "write_csv",
    "write_json",
]
