"""Training-sample throughput of the segment sampler with 0, 1 and 2 workers.

Default sizes of the paper: a 25^3 normal segment, a 19^3 context segment
subsampled by 3 (57^3 voxels), a 9^3 target, 2 channels, batches of 10, from
one synthetic 160^3 volume held in memory, with the default augmentation.

Usage: python bench/bench_sampler.py [--batches 300] [--repeats 3]

Prints samples (segments) per second and their ratio to the in-process
sampler, all measured in this one run. "steady" excludes the time to start
the workers and draw the first batch; "total" includes it. "CPU ms/sample" is
the CPU time of this process and its workers per sample, which shows the cost
of the work itself when other jobs share the machine; "main ms/batch" is the
CPU time the training process itself spends per batch (drawing it, or with
workers receiving it).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from seg3d.data.case import Case
from seg3d.io import Volume
from seg3d.model.geometry import geometry_for_input
from seg3d.sampling import AugmentationConfig, SamplingConfig, SegmentSampler

PAPER_LAYERS = [[3] * 8, [3] * 8]  # eight 3x3x3 convolutions per pathway
SPATIAL_SHAPE = (160, 160, 160)
BATCH_SIZE = 10


def synthetic_case(seed: int = 0) -> Case:
    """Two z-scored noise channels, an ellipsoid ROI and ~1% foreground blobs."""
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(2, *SPATIAL_SHAPE)).astype(np.float32)
    i, j, k = np.ogrid[: SPATIAL_SHAPE[0], : SPATIAL_SHAPE[1], : SPATIAL_SHAPE[2]]
    roi = ((i - 80) / 70.0) ** 2 + ((j - 80) / 60.0) ** 2 + ((k - 80) / 65.0) ** 2 <= 1
    label_map = np.zeros(SPATIAL_SHAPE, dtype=np.uint8)
    for centre in rng.integers(40, 120, size=(6, 3)):
        ci, cj, ck = centre
        blob = (i - ci) ** 2 + (j - cj) ** 2 + (k - ck) ** 2 <= 8**2
        label_map[blob & roi] = 1
    return Case("synthetic", image, Volume(image[0], np.eye(4)), label_map, roi)


def measure(sampler: SegmentSampler, workers: int) -> tuple[float, ...]:
    """One epoch: samples/s (steady, with start-up), CPU ms/sample, main ms/batch.

    The CPU time counts this process and its finished workers, so it shows what
    the sampler costs the machine even when other jobs share it; the main
    process's own CPU time per batch is what a training loop pays in line.
    """
    loader = sampler.data_loader(num_workers=workers)
    cpu_start = _cpu_seconds()
    main_start = time.process_time()
    start = time.perf_counter()
    first = None
    count = 0
    for batch in loader:
        if first is None:
            first = time.perf_counter()
        else:
            count += len(batch["target"])
        sampler.mark_consumed(batch)
    end = time.perf_counter()
    main_cpu = time.process_time() - main_start
    # The exhausted iterator has joined its workers, so their CPU time counts.
    cpu = _cpu_seconds() - cpu_start
    samples = count + BATCH_SIZE
    return (
        count / (end - first),
        samples / (end - start),
        1000 * cpu / samples,
        1000 * main_cpu / (samples / BATCH_SIZE),
    )


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=300, help="batches per epoch")
    parser.add_argument("--repeats", type=int, default=3, help="epochs per setting")
    args = parser.parse_args()

    geometry = geometry_for_input(25, PAPER_LAYERS, (1, 3))
    case = synthetic_case()
    settings = {
        "default augmentation": SamplingConfig(),
        "no augmentation": SamplingConfig(augmentation=AugmentationConfig.none()),
    }
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    )
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    for line in geometry.describe():
        print(f"  {line}")
    print(f"volume {SPATIAL_SHAPE}, 2 channels, batch {BATCH_SIZE}")
    print(
        f"{'setting':<22}{'workers':>8}{'steady/s':>11}{'total/s':>10}"
        f"{'ratio':>8}{'CPU ms/sample':>15}{'main ms/batch':>15}"
    )
    for name, config in settings.items():
        sampler = SegmentSampler(
            [case], geometry, (0, 1),
            batch_size=BATCH_SIZE, batches_per_epoch=args.batches, config=config,
        )  # fmt: skip
        baseline = None
        for workers in (0, 1, 2):
            # Best of several epochs: the machine may be shared.
            runs = [measure(sampler, workers) for _ in range(args.repeats)]
            steady, total, _, _ = max(runs)
            cpu = min(run[2] for run in runs)
            main = min(run[3] for run in runs)
            baseline = baseline or steady
            print(
                f"{name:<22}{workers:>8}{steady:>11.0f}{total:>10.0f}"
                f"{steady / baseline:>8.2f}{cpu:>15.2f}{main:>15.1f}"
            )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
