"""Prediction modes against the float32 block grid: time, changed labels, Dice.

For each test case of ``--data`` (a dataset folder with ``imagesTs`` and
``labelsTs``), the model of ``--model`` predicts through
:class:`~seg3d.inference.pipeline.CasePredictor` in three modes:

* **float32**, block grid: the reference;
* **float32, shift-equivariant**: subsampled pathways at every voxel phase;
* **bfloat16**: the real bfloat16 path where the hardware multiplies it
  (:func:`seg3d.device.cpu_has_fast_bfloat16`, or CUDA); elsewhere it is
  *emulated*, because the fallback kernels run at about 0.1 GFLOP/s (minutes per
  case). The emulation rounds the folded network's weights, its input and the
  result of every arithmetic operation (convolution, matrix product, PReLU,
  residual and head additions) to bfloat16 while each operation computes in
  float32: what bfloat16 kernels with float32 accumulators produce, up to the
  order of the sums.

Per mode it prints the time per case, the share of voxels whose label differs
from the reference (of all voxels and of the ROI's), and Dice per class against
the ground truth.

Usage: python bench/bench_predict_modes.py --model RUN --data DATA
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from seg3d.data.dataset import open_dataset
from seg3d.data.loading import load_case
from seg3d.device import cpu_has_fast_bfloat16
from seg3d.inference.folded import FoldedNetwork
from seg3d.inference.pipeline import CasePredictor
from seg3d.inference.trained_model import load_trained_model
from seg3d.metrics.overlap import OverlapCounts, overlap_metrics
from seg3d.training.run_folder import model_file_in

EMULATED = "bfloat16 (emulated rounding)"
CRITERION = 0.001  # the bound on labels changed by bfloat16

# Operations whose result a bfloat16 network stores in bfloat16. Views,
# padding and concatenation move values that are already rounded.
_ROUNDED_OPS = {
    "conv3d",
    "prelu",
    "addmm",
    "matmul",
    "__matmul__",
    "addcmul",
    "addcmul_",
    "add",
    "add_",
    "__add__",
    "__iadd__",
}
_INPUT_OPS = {"conv3d", "prelu", "addmm", "matmul", "__matmul__"}


def to_bfloat16(x: torch.Tensor) -> torch.Tensor:
    """``x`` rounded to the nearest bfloat16, kept in float32."""
    return x.to(torch.bfloat16).to(torch.float32)


class BFloat16Rounding(TorchFunctionMode):
    """Rounds the operands and results of arithmetic operations to bfloat16."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in _INPUT_OPS:
            args = tuple(_rounded(a) for a in args)
        result = func(*args, **kwargs)
        if name not in _ROUNDED_OPS or not _is_float32(result):
            return result
        if name.endswith("_") or name.startswith("__i"):
            return result.copy_(to_bfloat16(result))  # in place, views included
        return to_bfloat16(result)


class EmulatedBFloat16:
    """A folded network computing as bfloat16 storage with float32 arithmetic.

    Stands in for :attr:`DensePredictor.network`: the predictor calls
    :meth:`features` and :meth:`head_logits`; other attributes (``config``,
    ``device``) are the folded network's.
    """

    def __init__(self, network: FoldedNetwork) -> None:
        self.network = network.to(dtype=torch.bfloat16).to(dtype=torch.float32)

    def __getattr__(self, name: str):
        return getattr(self.network, name)

    def features(self, *args, **kwargs):
        with BFloat16Rounding():
            return self.network.features(*args, **kwargs)

    def head_logits(self, *args, **kwargs):
        with BFloat16Rounding():
            return self.network.head_logits(*args, **kwargs)


def _rounded(value):
    return to_bfloat16(value) if _is_float32(value) else value


def _is_float32(value) -> bool:
    return isinstance(value, torch.Tensor) and value.dtype == torch.float32


def make_predictors(model, device: str) -> dict[str, CasePredictor]:
    predictors = {
        "float32": CasePredictor([model], device, "float32"),
        "float32 shift-equivariant": CasePredictor(
            [model], device, "float32", shift_equivariant=True
        ),
    }
    real = torch.device(device).type == "cuda" or cpu_has_fast_bfloat16()
    if real:
        predictors["bfloat16"] = CasePredictor([model], device, "bfloat16")
    else:
        emulated = CasePredictor([model], device, "float32")
        dense = emulated.predictors[0]
        dense.network = EmulatedBFloat16(dense.network)  # type: ignore[assignment]
        predictors[EMULATED] = emulated
    return predictors


def dice_per_class(prediction, truth, labels: dict[str, int]) -> dict[str, float]:
    return {
        name: overlap_metrics(
            OverlapCounts.of_masks(prediction == value, truth == value), 1.0
        ).dice
        for name, value in labels.items()
        if value != 0
    }


def timed(run: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    result = run()
    return result, time.perf_counter() - start


def predict_case(case, predictors: dict[str, CasePredictor], labels) -> dict:
    """Per mode: seconds, voxels changed, voxels, ROI voxels changed, ROI
    voxels, Dice per class."""
    roi = case.roi_mask
    if roi is None:
        roi = np.ones(case.spatial_shape, bool)
    rows = {}
    reference = None
    for name, predictor in predictors.items():
        prediction, seconds = timed(lambda p=predictor: p.predict(case))
        label_map = prediction.label_map
        if reference is None:
            reference = label_map
        changed = label_map != reference  # (I, J, K) bool
        dice = dice_per_class(label_map, case.label_map, labels)
        rows[name] = (
            seconds,
            changed.sum(),
            changed.size,
            changed[roi].sum(),
            roi.sum(),
            dice,
        )
    return rows


def format_row(name: str, row: tuple, classes: list[str]) -> str:
    seconds, changed, voxels, changed_roi, roi, dice = row
    return (
        f"{name:<30} {seconds:6.2f} {changed / voxels:9.4%} {changed_roi / roi:8.4%}"
        + "".join(f" {dice[c]:11.4f}" for c in classes)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="run or .pt")
    parser.add_argument("--data", type=Path, required=True, help="dataset folder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--subset", choices=["test", "training"], default="test")
    args = parser.parse_args()

    model = load_trained_model(model_file_in(args.model))
    dataset = open_dataset(args.data)
    files = dataset.test if args.subset == "test" else dataset.training
    predictors = make_predictors(model, args.device)
    print(
        f"machine: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"fast bfloat16: {cpu_has_fast_bfloat16()}, device {args.device}"
    )
    print(f"model: {model.path} ({model.info.get('profile', '?')} profile)")
    classes = [name for name, value in model.labels.items() if value != 0]
    header = f"{'case':<10} {'mode':<30} {'s':>6} {'changed':>9} {'in ROI':>8}"
    print(header + "".join(f" {'Dice ' + c:>11}" for c in classes))

    totals: dict[str, list] = {name: [] for name in predictors}
    for case_files in files:
        case = load_case(case_files, model.channel_names, model.label_values)
        predictors["float32"].predict(case)  # warm-up: kernels, allocator
        rows = predict_case(case, predictors, model.labels)
        for name, row in rows.items():
            totals[name].append(row)
            print(f"{case.case_id:<10} " + format_row(name, row, classes))
    print_summary(totals, classes)


def print_summary(totals: dict[str, list], classes: list[str]) -> None:
    print("\nall cases (time: mean per case; changed: pooled; Dice: mean)")
    for name, rows in totals.items():
        pooled = [sum(r[i] for r in rows) for i in range(5)]
        pooled[0] /= len(rows)
        dice = {c: float(np.mean([r[5][c] for r in rows])) for c in classes}
        print(f"{'all':<10} " + format_row(name, (*pooled, dice), classes))
        if name.startswith("bfloat16"):
            changed = pooled[1] / pooled[2]
            verdict = "holds" if changed <= CRITERION else "does NOT hold"
            print(
                f"criterion: bfloat16 changes <= {CRITERION:.1%} of voxels: "
                f"{verdict} ({changed:.4%} of all voxels, "
                f"{pooled[3] / pooled[4]:.4%} of the ROI's)"
            )


if __name__ == "__main__":
    main()
