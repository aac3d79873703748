"""Time seg3d's dense CRF against Krähenbühl's reference (pydensecrf2).

Both run the same model on the same synthetic case: a 160 x 160 x 128 volume of
1 mm voxels, 2 image channels, 3 classes, 5 mean-field iterations, Potts
compatibility, the unary -log p with p floored at 1e-5. The reference gets the
features it needs for 3D (positions divided by the spatial sigmas, intensities
by the intensity sigmas), one lattice per kernel; seg3d filters the smoothness
kernel separably and the appearance kernel with its own lattice.

Prints, per parameter set: wall time of each (best of --repeats, run in
turns so that load from other processes hits both alike), their ratio, peak
resident memory added by each, the agreement of the label maps (Dice per
foreground class, share of foreground voxels that differ, largest difference
of a probability) and, when CUDA is available, seg3d's time on the GPU.

    pip install -e ".[crf-reference]"
    python bench/bench_crf.py [--shape 160 160 128] [--repeats 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from seg3d.postprocessing.crf import PROBABILITY_FLOOR, apply_crf
from seg3d.postprocessing.crf_params import CrfParams

SPACING = (1.0, 1.0, 1.0)


def synthetic_case(shape, seed=0):
    """Three classes (two nested ellipsoids), two channels, noisy probabilities."""
    rng = np.random.default_rng(seed)
    axes = [np.linspace(-1.0, 1.0, size) for size in shape]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"))
    radius = np.sqrt(
        ((grid / np.array([0.8, 0.7, 0.6])[:, None, None, None]) ** 2).sum(0)
    )
    label_map = np.zeros(shape, dtype=np.int64)
    label_map[radius < 0.8] = 1
    label_map[radius < 0.4] = 2
    image = np.stack(
        [
            label_map * 1.0 + rng.normal(0.0, 0.3, shape),
            (label_map == 1) * 1.5 + rng.normal(0.0, 0.3, shape),
        ]
    ).astype(np.float32)
    logits = 2.0 * np.stack([label_map == c for c in range(3)]).astype(np.float32)
    logits += rng.normal(0.0, 1.0, logits.shape).astype(np.float32)
    probabilities = np.exp(logits)
    probabilities /= probabilities.sum(0)
    return probabilities.astype(np.float32), image, label_map


def reference_crf(probabilities, image, params):
    import pydensecrf.densecrf as dcrf

    num_classes, *shape = probabilities.shape
    count = int(np.prod(shape))
    crf = dcrf.DenseCRF(count, num_classes)
    floored = np.clip(probabilities.reshape(num_classes, -1), PROBABILITY_FLOOR, 1.0)
    crf.setUnaryEnergy(np.ascontiguousarray(-np.log(floored), dtype=np.float32))
    axes = [
        np.arange(size, dtype=np.float32) * step
        for size, step in zip(shape, SPACING, strict=True)
    ]
    positions = np.stack(np.meshgrid(*axes, indexing="ij")).reshape(3, -1)
    smoothness = positions / np.float32(params.smoothness_sigma_mm)[:, None]
    crf.addPairwiseEnergy(
        np.ascontiguousarray(smoothness), compat=params.smoothness_weight
    )
    intensity_sigmas = np.float32(params.intensity_sigmas_for(image.shape[0]))[:, None]
    appearance = np.concatenate(
        [
            positions / np.float32(params.appearance_sigma_mm)[:, None],
            image.reshape(image.shape[0], -1) / intensity_sigmas,
        ]
    )
    crf.addPairwiseEnergy(
        np.ascontiguousarray(appearance, dtype=np.float32),
        compat=params.appearance_weight,
    )
    q = np.array(crf.inference(params.iterations), dtype=np.float32)
    return q.reshape(probabilities.shape)


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _run(tool, params, shape, threads):
    """In a fresh process: (probabilities, seconds, peak MB above the start)."""
    if threads:
        torch.set_num_threads(threads)
    probabilities, image, _ = synthetic_case(shape)
    before = _status_mb("VmRSS")
    start = time.perf_counter()
    if tool == "seg3d":
        result = apply_crf(probabilities, image, SPACING, params)
    else:
        result = reference_crf(probabilities, image, params)
    seconds = time.perf_counter() - start
    return result, seconds, _status_mb("VmHWM") - before


def measured(tool, params, shape, threads):
    # One process per run, so that each peak is its own and neither tool runs
    # on memory the other left behind.
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(_run, (tool, params, shape, threads))


def dice(a, b):
    total = a.sum() + b.sum()
    return 2.0 * np.logical_and(a, b).sum() / total if total else 1.0


def compare(name, params, shape, threads, repeats):
    probabilities, image, label_map = synthetic_case(shape)
    ours_times, reference_times = [], []
    for _ in range(repeats):
        ours, seconds, ours_mb = measured("seg3d", params, shape, threads)
        ours_times.append(seconds)
        reference, seconds, reference_mb = measured("reference", params, shape, threads)
        reference_times.append(seconds)

    ours_labels, reference_labels = ours.argmax(0), reference.argmax(0)
    foreground = (ours_labels > 0) | (reference_labels > 0)
    differ = (ours_labels != reference_labels) & foreground
    print(f"\n== {name}: {params}")
    size_mb = probabilities.nbytes / 2**20
    print(f"seg3d CPU     {min(ours_times):7.2f} s   peak +{ours_mb:5.0f} MB")
    print(f"reference CPU {min(reference_times):7.2f} s   peak +{reference_mb:5.0f} MB")
    print(f"(the probability map itself: {size_mb:.0f} MB)")
    print(
        f"speed-up (reference / seg3d): {min(reference_times) / min(ours_times):.2f}x"
    )
    for value in (1, 2):
        print(
            f"class {value}: Dice seg3d vs reference "
            f"{dice(ours_labels == value, reference_labels == value):.5f}; vs truth "
            f"seg3d {dice(ours_labels == value, label_map == value):.4f}, reference "
            f"{dice(reference_labels == value, label_map == value):.4f}, argmax "
            f"{dice(probabilities.argmax(0) == value, label_map == value):.4f}"
        )
    print(
        f"foreground voxels that differ: {differ.sum()} of {foreground.sum()} "
        f"({100.0 * differ.sum() / max(1, foreground.sum()):.4f} %); "
        f"largest probability difference {np.abs(ours - reference).max():.4f}"
    )
    if torch.cuda.is_available():
        apply_crf(probabilities, image, SPACING, params, device="cuda")  # warm-up
        torch.cuda.synchronize()
        start = time.perf_counter()
        apply_crf(probabilities, image, SPACING, params, device="cuda")
        torch.cuda.synchronize()
        print(f"seg3d GPU     {time.perf_counter() - start:7.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(160, 160, 128))
    parser.add_argument("--repeats", type=int, default=2)
    # One thread by default: the reference uses one, so the times compare the
    # algorithms on equal hardware. Give more to see what parallelism adds.
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    try:
        import pydensecrf.densecrf  # noqa: F401
    except ImportError:
        raise SystemExit(
            'the reference is not installed: pip install -e ".[crf-reference]"'
        ) from None
    if args.threads:
        torch.set_num_threads(args.threads)

    cpu = platform.processor() or platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    print(
        f"CPU: {cpu}, {os.cpu_count()} cores; torch {torch.__version__} with "
        f"{args.threads} thread(s) for seg3d (the reference uses one); load "
        f"average at start {os.getloadavg()[0]:.1f}"
    )
    defaults = CrfParams()
    for name, params in (
        ("defaults", defaults),
        ("moderate intensity sigmas", replace(defaults, intensity_sigmas=(0.5,))),
    ):
        compare(name, params, tuple(args.shape), args.threads, args.repeats)
    print(f"\nload average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
