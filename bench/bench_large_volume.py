"""Peak memory of dense prediction grows with the block, not with the volume.

Predicts a large synthetic volume (default 512x512x400, 2 channels of z-scored
noise, an ellipsoidal ROI) on the CPU under a stated activation memory cap, and
the same with a smaller volume and with a smaller cap, each run in its own
process so that its peak memory is its own. Image, ROI mask and probabilities
live in ``np.memmap`` files (``DensePredictor.predict(out=...)``), so the
process's anonymous memory holds only the network, the block being computed and
bookkeeping.

Per run it prints the blocks, the time, the arithmetic (``flops_for``) and:

* **peak anonymous memory** (``RssAnon`` in ``/proc/self/status``, sampled every
  10 ms; the run's own, minus what the process held before predicting);
* **VmHWM** (``ru_maxrss``): the peak resident set, which also counts the pages
  of the memory-mapped files that were touched. Those are page cache the kernel
  writes back and drops under pressure, so this figure grows with the volume.

The network is the ``cpu`` profile with random weights (the weights do not
change the arithmetic). The paper network's FLOPs for the same volume and cap
are counted, and its time projected at the FLOP rate this run achieved.

Usage: python bench/bench_large_volume.py [--shape 512,512,400]
    [--max-memory-mib 512] [--roi-radius 0.45]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from seg3d.inference.blocks import estimate_block_memory
from seg3d.inference.dense import DensePredictor
from seg3d.model.config import NetworkConfig
from seg3d.model.flops import flops_for
from seg3d.model.network import DeepMedic

MIB = 1024**2
NUM_CLASSES = 3


def rss_anon() -> int:
    """This process's resident anonymous memory in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/self/status (Linux only)")


class PeakSampler(threading.Thread):
    """Samples :func:`rss_anon` until stopped; ``peak`` is the largest seen."""

    def __init__(self, interval: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = rss_anon()
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, rss_anon())
            time.sleep(self.interval)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak


def write_inputs(
    folder: Path, shape: tuple[int, int, int], channels: int, radius: float
) -> tuple[np.memmap, np.memmap]:
    """Noise image ``(C, I, J, K)`` and ellipsoid ROI ``(I, J, K)`` as memmaps.

    Written slab by slab along i, so that they never sit in anonymous memory.
    """
    image = np.memmap(folder / "image.f32", np.float32, "w+", shape=(channels, *shape))
    roi = np.memmap(folder / "roi.bool", np.bool_, "w+", shape=shape)
    rng = np.random.default_rng(0)
    j, k = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape[1:]), indexing="ij")
    for start in range(0, shape[0], 16):
        stop = min(start + 16, shape[0])
        image[:, start:stop] = rng.standard_normal(
            (channels, stop - start, *shape[1:]), np.float32
        )
        i = np.linspace(-1, 1, shape[0])[start:stop, None, None]
        roi[start:stop] = (i**2 + j**2 + k**2) <= radius**2
    image.flush()
    roi.flush()
    del image, roi
    return (
        np.memmap(folder / "image.f32", np.float32, "r", shape=(channels, *shape)),
        np.memmap(folder / "roi.bool", np.bool_, "r", shape=shape),
    )


def child(args: argparse.Namespace) -> None:
    """One run; prints one JSON line."""
    shape = tuple(int(n) for n in args.shape.split(","))
    cap = args.max_memory_mib * MIB
    config = NetworkConfig.profile(
        "cpu", in_channels=args.channels, num_classes=NUM_CLASSES
    )
    torch.manual_seed(0)
    predictor = DensePredictor(DeepMedic(config).eval())
    with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
        image, roi = write_inputs(Path(folder), shape, args.channels, args.roi_radius)
        out = np.memmap(
            Path(folder) / "probabilities.f32",
            np.float32,
            "w+",
            shape=(NUM_CLASSES, *shape),
        )
        blocks = predictor.plan(shape, roi, max_memory=cap)
        before = rss_anon()
        sampler = PeakSampler()
        sampler.start()
        start = time.perf_counter()
        predictor.predict(image, roi, max_memory=cap, out=out)
        seconds = time.perf_counter() - start
        peak = sampler.stop()
        paper = NetworkConfig.profile("paper", in_channels=args.channels)
        paper_blocks = DensePredictor(DeepMedic(paper).eval()).plan(
            shape, roi, max_memory=cap
        )
        result = {
            "shape": shape,
            "cap_mib": args.max_memory_mib,
            "roi_share": float(np.count_nonzero(roi)) / roi.size,
            "blocks": len(blocks),
            "largest": max((b.shape for b in blocks), key=math.prod),
            "seconds": seconds,
            "gflop": sum(flops_for(config, b.shape) for b in blocks) / 1e9,
            "paper_gflop": sum(flops_for(paper, b.shape) for b in paper_blocks) / 1e9,
            "paper_largest": max((b.shape for b in paper_blocks), key=math.prod),
            "estimate_mib": estimate_block_memory(
                config, max((b.shape for b in blocks), key=math.prod)
            )
            / MIB,
            "anon_before_mib": before / MIB,
            "anon_peak_mib": peak / MIB,
            "vm_hwm_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "arrays_mib": (image.nbytes + roi.nbytes + out.nbytes) / MIB,
        }
    print(json.dumps(result))


def run_child(args: argparse.Namespace, shape: str, cap: int) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        f"--shape={shape}",
        f"--max-memory-mib={cap}",
        f"--channels={args.channels}",
        f"--roi-radius={args.roi_radius}",
        f"--workdir={args.workdir}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"run {shape} with cap {cap} MiB failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(result: dict) -> None:
    shape = "x".join(map(str, result["shape"]))
    rate = result["gflop"] / result["seconds"]
    print(
        f"{shape:>12} cap {result['cap_mib']:>4} MiB: ROI {result['roi_share']:.1%}, "
        f"{result['blocks']} blocks of at most "
        f"{'x'.join(map(str, result['largest']))}, {result['seconds']:.1f} s, "
        f"{result['gflop']:.0f} GFLOP ({rate:.1f} GFLOP/s)"
    )
    print(
        f"{'':>12} anonymous memory {result['anon_before_mib']:.0f} MiB before, "
        f"peak {result['anon_peak_mib']:.0f} MiB (+"
        f"{result['anon_peak_mib'] - result['anon_before_mib']:.0f}; the largest "
        f"block's estimate {result['estimate_mib']:.0f}); VmHWM "
        f"{result['vm_hwm_mib']:.0f} MiB; memory-mapped arrays "
        f"{result['arrays_mib']:.0f} MiB"
    )
    projected = result["paper_gflop"] / rate
    print(
        f"{'':>12} paper network, same cap: blocks of at most "
        f"{'x'.join(map(str, result['paper_largest']))}, "
        f"{result['paper_gflop']:.0f} GFLOP, about {projected:.0f} s at this rate"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="512,512,400")
    parser.add_argument("--small-shape", default="256,256,200")
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--max-memory-mib", type=int, default=512)
    parser.add_argument("--small-cap-mib", type=int, default=256)
    parser.add_argument(
        "--roi-radius",
        type=float,
        default=0.45,
        help="ellipsoid semi-axes as a fraction of each half-extent",
    )
    parser.add_argument("--workdir", default=tempfile.gettempdir())
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    print(
        f"cpu profile, {args.channels} channels, random weights, float32 "
        f"channels-last, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    runs = [
        (args.shape, args.max_memory_mib),
        (args.small_shape, args.max_memory_mib),
        (args.small_shape, args.small_cap_mib),
    ]
    for shape, cap in runs:
        report(run_child(args, shape, cap))


if __name__ == "__main__":
    main()
