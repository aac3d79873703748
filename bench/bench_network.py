"""Achieved FLOP/s of the network and of dense inference, against this machine's peak.

Measured in one run, on the threads torch uses by default:

* **peak**: a 40-to-40-channel 3x3x3 ``conv3d`` on a 64^3 output (the paper
  network's most common layer), per precision and memory layout;
* **one block**: the paper network (``--profile``) predicting one
  ``--block``^3 output block, as the plain eval-mode module and as the folded
  inference network (batch norm folded into the convolutions, matrix-product
  head), in the default and in the channels-last-3d layout, and in the
  shift-equivariant mode;
* **one volume** (``--volume``): dense prediction of a ``--channels``-channel
  volume inside an ellipsoidal, brain-sized ROI, blocks chosen from
  ``--max-memory``.

FLOPs are :func:`seg3d.model.flops.flops_for` (two per multiply-add of every
convolution and 1x1x1 layer); "ratio" is achieved FLOP/s over the peak of the
same precision and layout. Times are the best of ``--repeats`` runs, which is
steadier than the mean on a shared machine.

bfloat16 is measured only with ``--bfloat16``: on CPUs without AVX512-BF16 or
AMX it runs through slow fallback kernels (about 0.1 GFLOP/s here) and would
take many minutes.

Usage: python bench/bench_network.py [--block 48] [--volume 120,120,78]
"""

from __future__ import annotations

import argparse
import itertools
import math
import platform
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from seg3d.device import choose_precision
from seg3d.inference.blocks import roi_bounds
from seg3d.inference.dense import DensePredictor
from seg3d.inference.folding import fold
from seg3d.model.config import NetworkConfig
from seg3d.model.flops import flops_for
from seg3d.model.network import DeepMedic

CHANNELS_LAST = torch.channels_last_3d
CLOCK = time.perf_counter


def best_time(run: Callable[[], object], repeats: int) -> float:
    """Best of ``repeats`` runs, in seconds of wall time or, with ``--cpu-time``,
    of this process's CPU time (steadier on a shared machine with one thread)."""
    run()  # warm-up: oneDNN primitives, allocator
    times = []
    for _ in range(repeats):
        start = CLOCK()
        run()
        times.append(CLOCK() - start)
    return min(times)


def conv_peak(dtype: torch.dtype, channels_last: bool, repeats: int) -> float:
    """GFLOP/s of a 40->40 3x3x3 conv3d on a 64^3 output."""
    x = torch.randn(1, 40, 66, 66, 66, dtype=dtype)
    weight = torch.randn(40, 40, 3, 3, 3, dtype=dtype)
    bias = torch.randn(40, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=CHANNELS_LAST)
        weight = weight.contiguous(memory_format=CHANNELS_LAST)
    flops = 2 * 40 * 40 * 27 * 64**3
    with torch.inference_mode():
        seconds = best_time(lambda: F.conv3d(x, weight, bias), repeats)
    return flops / seconds / 1e9


def measure_peaks(args: argparse.Namespace) -> dict[str, float]:
    repeats = max(3, args.repeats)
    peaks = {
        "fp32": conv_peak(torch.float32, False, repeats),
        "fp32 CL": conv_peak(torch.float32, True, repeats),
    }
    if args.bfloat16:
        peaks["bf16 CL"] = conv_peak(torch.bfloat16, True, 1)
    return peaks


def block_inputs(config: NetworkConfig, block: int, equivariant: bool = False):
    geometry = (
        config.equivariant_geometry(block) if equivariant else config.geometry(block)
    )
    generator = torch.Generator().manual_seed(0)
    return [
        torch.randn(1, config.in_channels, *p.input_shape, generator=generator)
        for p in geometry.pathways
    ]


def block_rows(config: NetworkConfig, block: int, repeats: int, bfloat16: bool):
    """(name, seconds, flops, peak key) per way of computing one block."""
    model = DeepMedic(config).eval()
    folded = fold(model)
    inputs = block_inputs(config, block)
    flops = flops_for(config, block)
    rows = []

    def eager(channels_last: bool) -> Callable[[], object]:
        network = model.to(memory_format=CHANNELS_LAST) if channels_last else model
        xs = [x.contiguous(memory_format=CHANNELS_LAST) for x in inputs]
        xs = xs if channels_last else inputs

        def run() -> object:
            with torch.inference_mode():
                return torch.softmax(network(xs), dim=1)

        return run

    rows.append(("eager module", best_time(eager(False), repeats), flops, "fp32"))
    rows.append(("eager module, CL", best_time(eager(True), repeats), flops, "fp32 CL"))
    model.to(memory_format=torch.contiguous_format)
    plain = folded.to(channels_last=False)
    rows.append(("folded", best_time(lambda: plain(inputs), repeats), flops, "fp32"))
    last = folded.to(channels_last=True)
    rows.append(
        ("folded, CL", best_time(lambda: last(inputs), repeats), flops, "fp32 CL")
    )
    features = last.features(inputs)
    pathways = best_time(lambda: last.features(inputs), repeats)
    head = best_time(
        lambda: [last.head_logits(features, a, b) for a, b in features.slabs()], repeats
    )
    head_share = head_flops(config, block)
    rows.append(("  of which pathways", pathways, flops - head_share, "fp32 CL"))
    rows.append(("  of which head (+softmax)", head, head_share, "fp32 CL"))
    if config.subsampling_factors:
        window = block_inputs(config, block, equivariant=True)
        equivariant_flops = flops_for(config, block, shift_equivariant=True)
        seconds = best_time(lambda: last(window, shift_equivariant=True), repeats)
        rows.append(
            ("folded, CL, shift-equivariant", seconds, equivariant_flops, "fp32 CL")
        )
    if bfloat16:
        low = folded.to(dtype=torch.bfloat16, channels_last=True)
        rows.append(
            (
                "folded, CL, bfloat16",
                best_time(lambda: low(inputs), 1),
                flops,
                "bf16 CL",
            )
        )
    return rows


def head_flops(config: NetworkConfig, block: int) -> int:
    """The 1x1x1 layers' share of :func:`flops_for`."""
    widths = [sum(m[-1] for m in config.pathway_feature_maps), *config.head_widths]
    widths.append(config.num_classes)
    return 2 * block**3 * sum(a * b for a, b in itertools.pairwise(widths))


def volume_row(args, config: NetworkConfig, precision: str):
    shape = tuple(int(n) for n in args.volume.split(","))
    model = DeepMedic(config).eval()
    predictor = DensePredictor(model, precision=precision)
    rng = np.random.default_rng(0)
    image = rng.normal(size=(config.in_channels, *shape)).astype(np.float32)
    grids = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    # An ellipsoid filling about 80 % of each axis: roughly a brain in BraTS.
    roi_mask = sum((g / 0.8) ** 2 for g in grids) <= 1.0
    max_memory = int(float(args.max_memory) * 1024**3)
    blocks = predictor.plan(shape, roi_mask, max_memory=max_memory)
    flops = sum(flops_for(config, block.shape) for block in blocks)
    first, stop = roi_bounds(shape, config.alignment, roi_mask)
    step = config.alignment
    floor = flops_for(
        config,
        [math.ceil((b - a) / step) * step for a, b in zip(first, stop, strict=True)],
    )
    start = CLOCK()
    predictor.predict(image, roi_mask, max_memory=max_memory)
    seconds = CLOCK() - start
    largest = max(blocks, key=lambda b: math.prod(b.shape)).shape
    return shape, len(blocks), largest, seconds, flops, floor, roi_mask.mean()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="paper")
    parser.add_argument("--block", type=int, default=48, help="output block edge")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--volume", default="120,120,78", help="i,j,k or 'none'")
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--max-memory", default="2", help="GiB for dense inference")
    parser.add_argument("--bfloat16", action="store_true")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--cpu-time", action="store_true", help="time by process CPU time"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.cpu_time:
        global CLOCK
        CLOCK = time.process_time
    torch.manual_seed(0)
    config = NetworkConfig.profile(args.profile, in_channels=args.channels)

    print(
        f"machine: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, "
        f"{'CPU' if args.cpu_time else 'wall'} time, torch {torch.__version__}, "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"auto precision {choose_precision('auto', 'cpu', allow_float16=False)}"
    )
    peaks = measure_peaks(args)
    rows = block_rows(config, args.block, args.repeats, args.bfloat16)
    volume = volume_row(args, config, "float32") if args.volume != "none" else None
    # Measured again at the end, keeping the best: on a shared machine a single
    # measurement of the peak can be low, which would flatter the ratios.
    peaks = {key: max(value, measure_peaks(args)[key]) for key, value in peaks.items()}
    for key, value in peaks.items():
        print(f"peak conv3d 40->40 3x3x3 on 64^3, {key}: {value:.1f} GFLOP/s")

    print(
        f"\n{args.profile} network, one {args.block}^3 output block, "
        f"{flops_for(config, args.block) / 1e9:.1f} GFLOP"
    )
    print(f"{'way':<34} {'seconds':>8} {'GFLOP/s':>8} {'ratio':>6}")
    for name, seconds, flops, key in rows:
        rate = flops / seconds / 1e9
        print(f"{name:<34} {seconds:8.3f} {rate:8.1f} {rate / peaks[key]:6.2f}")

    if volume is not None:
        shape, count, largest, seconds, flops, floor, share = volume
        rate = flops / seconds / 1e9
        print(
            f"\ndense prediction of {'x'.join(map(str, shape))} x {args.channels} "
            f"channels, ROI {share:.0%} of the volume, float32 channels-last"
        )
        print(
            f"  {count} blocks of at most {'x'.join(map(str, largest))}, "
            f"{seconds:.2f} s, {flops / 1e9:.0f} GFLOP computed "
            f"(one block over the ROI's box: {floor / 1e9:.0f}), {rate:.1f} GFLOP/s, "
            f"ratio {rate / peaks['fp32 CL']:.2f}"
        )


if __name__ == "__main__":
    main()
