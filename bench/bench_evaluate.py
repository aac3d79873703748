"""Time to evaluate one BraTS-sized case, against the reference implementations.

A 240x240x155 pair at 1 mm with a brain-tumour-like label map (edema 1,
necrosis 2, enhancing 3: nested, irregular, about 100 ml in all) and a
prediction that differs at the borders and by a few false-positive blobs.
Each repeat evaluates the three classes, with HD95 and ASSD:

* seg3d: ``evaluate_label_maps`` (Dice, IoU, sensitivity, precision, volumes,
  HD95, ASSD), and the same plus three BraTS regions;
* MONAI: ``compute_hausdorff_distance(percentile=95)`` and
  ``compute_average_surface_distance`` on the one-hot maps, plus SimpleITK's
  ``LabelOverlapMeasuresImageFilter`` for the overlap metrics;
* medpy: ``hd95``, ``assd`` and ``dc`` per class.

All on one thread (numpy, torch and SimpleITK limited to one), timed in this one
run, median of ``--repeats``. The ratio is reference time / seg3d time. The
metrics of all three are also compared, so the timing is of equal work.

Usage: python bench/bench_evaluate.py [--repeats 5]
"""

from __future__ import annotations

import os

# One core for everything, set before numpy and torch load their thread pools.
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

from seg3d.metrics import evaluate_label_maps  # noqa: E402
from seg3d.metrics.evaluation import evaluate_case  # noqa: E402
from seg3d.metrics.structures import REGION, Structure, class_structures  # noqa: E402

SHAPE = (240, 240, 155)
SPACING = (1.0, 1.0, 1.0)
CLASSES = class_structures([1, 2, 3], {1: "edema", 2: "necrosis", 3: "enhancing"})
REGIONS = [
    Structure("whole tumour", (1, 2, 3), REGION),
    Structure("tumour core", (2, 3), REGION),
    Structure("enhancing tumour", (3,), REGION),
]


def synthetic_pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, truth) uint8 label maps of a nested, irregular tumour."""
    rng = np.random.default_rng(seed)
    i, j, k = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    radius = np.sqrt((i - 130) ** 2 + ((j - 110) / 1.2) ** 2 + ((k - 80) / 0.9) ** 2)

    def label_map(noise_scale: float, noise_seed: int) -> np.ndarray:
        noise = ndimage.gaussian_filter(
            np.random.default_rng(noise_seed).standard_normal((60, 60, 40)), 2.0
        )
        # Smooth noise at a quarter of the resolution, brought up to full size.
        zoom = [n / m for n, m in zip(SHAPE, noise.shape, strict=True)]
        noise = ndimage.zoom(noise, zoom, order=1)[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
        distorted = radius + noise_scale * noise / noise.std()
        result = np.zeros(SHAPE, np.uint8)
        result[distorted < 32] = 1
        result[distorted < 18] = 3
        result[distorted < 10] = 2
        return result

    truth = label_map(3.0, seed)
    prediction = label_map(3.0, seed + 1)
    for centre in rng.integers(40, 200, size=(4, 3)):
        ci, cj, ck = centre
        ck = min(ck, SHAPE[2] - 10)
        prediction[ci - 3 : ci + 3, cj - 3 : cj + 3, ck - 2 : ck + 2] = 1
    return prediction, truth


def time_round_robin(functions: dict, repeats: int) -> dict[str, tuple[float, float]]:
    """Median wall and CPU seconds of each function, run in turn ``repeats`` times.

    Interleaving the implementations spreads any change in the machine's load
    (other jobs sharing the cores) over all of them, which keeps the ratios fair.
    """
    wall: dict[str, list[float]] = {name: [] for name in functions}
    cpu: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            function()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {
        name: (statistics.median(wall[name]), statistics.median(cpu[name]))
        for name in functions
    }


def seg3d_run(prediction, truth, structures):
    return evaluate_label_maps(prediction, truth, structures, SPACING, 1.0)


def monai_run(prediction, truth):
    import SimpleITK as sitk
    import torch
    from monai.metrics import (
        compute_average_surface_distance,
        compute_hausdorff_distance,
    )

    one_hot = [
        torch.from_numpy(np.stack([a == v for v in (1, 2, 3)])[None].astype(np.float32))
        for a in (prediction, truth)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hd95 = compute_hausdorff_distance(
            *one_hot, include_background=True, percentile=95, spacing=SPACING
        )
        assd = compute_average_surface_distance(
            *one_hot, include_background=True, symmetric=True, spacing=SPACING
        )
    overlap = sitk.LabelOverlapMeasuresImageFilter()
    overlap.Execute(sitk.GetImageFromArray(prediction), sitk.GetImageFromArray(truth))
    dice = [overlap.GetDiceCoefficient(v) for v in (1, 2, 3)]
    return dice, hd95[0].tolist(), assd[0].tolist()


def medpy_run(prediction, truth):
    from medpy.metric import binary

    results = []
    for value in (1, 2, 3):
        masks = prediction == value, truth == value
        results.append(
            (
                binary.dc(*masks),
                binary.hd95(*masks, voxelspacing=SPACING),
                binary.assd(*masks, voxelspacing=SPACING),
            )
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import SimpleITK as sitk
    import torch

    torch.set_num_threads(1)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    prediction, truth = synthetic_pair()
    print(f"machine: {_machine()}; timed on one thread")
    print(
        f"case: {SHAPE} voxels at {SPACING} mm; truth "
        f"{np.count_nonzero(truth) / 1000:.1f} ml, prediction "
        f"{np.count_nonzero(prediction) / 1000:.1f} ml"
    )

    _check_agreement(
        seg3d_run(prediction, truth, CLASSES),
        monai_run(prediction, truth),
        medpy_run(prediction, truth),
    )
    with tempfile.TemporaryDirectory() as folder:
        case = _case_files(Path(folder), prediction, truth)
        functions = {
            "seg3d, 3 classes": lambda: seg3d_run(prediction, truth, CLASSES),
            "seg3d, 3 classes + 3 regions": lambda: seg3d_run(
                prediction, truth, CLASSES + REGIONS
            ),
            "seg3d, 3 classes, reading both .nii.gz": lambda: evaluate_case(*case),
            "MONAI hd95+assd + SimpleITK overlap": lambda: monai_run(prediction, truth),
            "medpy hd95+assd+dc": lambda: medpy_run(prediction, truth),
        }
        timings = time_round_robin(functions, args.repeats)

    _, base_cpu = timings["seg3d, 3 classes"]
    print(f"{'3 classes unless said':<40} {'wall s':>7} {'CPU s':>7} {'ratio':>7}")
    for name, (wall, cpu) in timings.items():
        print(f"{name:<40} {wall:7.3f} {cpu:7.3f} {cpu / base_cpu:7.2f}")
    print(
        "median of the repeats; ratio: CPU time / seg3d's CPU time for 3 classes, "
        "measured in this run (CPU time is robust to other jobs on the machine)"
    )


def _machine() -> str:
    """CPU model, core count and the widest vector extension, from /proc/cpuinfo."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    vector = next(
        (name for name in ("avx512f", "avx2", "avx") if name in flags), "no AVX"
    )
    return f"{model}, {os.cpu_count()} cores, {vector.upper()}"


def _case_files(folder: Path, prediction, truth):
    """The arguments of ``evaluate_case`` for the pair written as NIfTI files."""
    import nibabel as nib

    from seg3d.metrics.evaluation import _CaseTask
    from seg3d.metrics.matching import CasePair

    paths = folder / "case_seg.nii.gz", folder / "case.nii.gz"
    for path, array in zip(paths, (prediction, truth), strict=True):
        nib.save(nib.Nifti1Image(array, np.eye(4)), path)
    task = _CaseTask({1: "edema", 2: "necrosis", 3: "enhancing"}, {}, ())
    return CasePair("case", *paths), task, False, False


def _check_agreement(ours, monai, medpy) -> None:
    dice, hd95, assd = monai
    for index, structure in enumerate(CLASSES):
        metrics = ours[structure.name]
        np.testing.assert_allclose(metrics.dice, dice[index], rtol=1e-6)
        np.testing.assert_allclose(metrics.hd95_mm, hd95[index], rtol=1e-6)
        np.testing.assert_allclose(metrics.assd_mm, assd[index], rtol=1e-6)
        np.testing.assert_allclose(metrics.assd_mm, medpy[index][2], rtol=1e-6)
    print("metrics agree with MONAI, SimpleITK and medpy (assd) to 1e-6")


if __name__ == "__main__":
    main()
