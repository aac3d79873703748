"""Time of one training step of the DeepMedic network under each speed option.

A step is what ``seg3d train`` does per batch: forward pass under autocast,
cross-entropy, backward, AdamW update. The segments are random tensors of the
sizes the profile's geometry gives (default: the paper network, 25^3 normal
segment, 2 channels, 2 classes, batches of 10), already on the device, so the
sampler's cost is left out (see bench_sampler.py).

Options compared against the float32 baseline, all in this one run:

* ``channels_last``: the channels-last-3d memory layout for weights and inputs;
* ``compile``: ``torch.compile`` of the network (compilation time is reported
  apart and left out of the step time);
* on CUDA also ``bfloat16`` / ``float16`` autocast (float16 with a gradient
  scaler, as training does), and cuDNN benchmark mode on and off.

Usage: python bench/bench_training_step.py [--profile paper] [--device auto]
       [--steps 20] [--repeats 3] [--skip-compile] [--only bf16,fp16,...]

Prints milliseconds per step (best of ``--repeats`` rounds of ``--steps``
steps, after a warm-up step; the rounds take the options in turn), the
speed-up over the baseline, and the CPU time per step of this process.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from seg3d.model.config import NetworkConfig
from seg3d.model.network import DeepMedic
from seg3d.training.losses import segmentation_loss

CHANNELS = 2
CLASSES = 2


@dataclass(frozen=True)
class Option:
    key: str
    name: str
    dtype: torch.dtype = torch.float32
    channels_last: bool = False
    compile: bool = False
    cudnn_benchmark: bool = False


def options_for(device: torch.device) -> list[Option]:
    """Every option this device offers, the float32 baseline first."""
    options = [
        Option("fp32", "float32 (baseline)"),
        Option("channels_last", "channels_last", channels_last=True),
        Option("compile", "compile", compile=True),
    ]
    if device.type == "cuda":
        bf16, fp16 = torch.bfloat16, torch.float16
        options += [
            Option("cudnn_benchmark", "cudnn_benchmark", cudnn_benchmark=True),
            Option("bf16", "bfloat16", bf16, cudnn_benchmark=True),
            Option("fp16", "float16 + scaler", fp16, cudnn_benchmark=True),
            Option(
                "bf16_channels_last",
                "bfloat16 + channels_last",
                bf16,
                channels_last=True,
                cudnn_benchmark=True,
            ),
            Option(
                "bf16_compile",
                "bfloat16 + compile",
                bf16,
                compile=True,
                cudnn_benchmark=True,
            ),
        ]
    return options


def chosen(options: list[Option], only: str | None, skip_compile: bool) -> list[Option]:
    keys = set(only.split(",")) if only else {o.key for o in options}
    unknown = keys - {o.key for o in options}
    if unknown:
        raise SystemExit(f"--only: unknown option(s) {sorted(unknown)}")
    return [
        o
        for o in options
        if (o.key == "fp32" or o.key in keys) and not (skip_compile and o.compile)
    ]


def make_step(
    option: Option, config: NetworkConfig, segment: int, batch: int, device
) -> tuple[Callable[[], float], float]:
    """A closure doing one training step, and the seconds its set-up took."""
    started = time.perf_counter()
    torch.manual_seed(0)
    network = DeepMedic(config).to(device)
    memory_format = (
        torch.channels_last_3d if option.channels_last else torch.contiguous_format
    )
    network.to(memory_format=memory_format)
    model = torch.compile(network) if option.compile else network
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cuda") if option.dtype == torch.float16 else None
    geometry = config.geometry_for_input(segment)
    segments = [
        torch.randn(batch, CHANNELS, *p.input_shape, device=device).to(
            memory_format=memory_format
        )
        for p in geometry.pathways
    ]
    target = torch.randint(0, CLASSES, (batch, *geometry.output_shape), device=device)

    def step() -> float:
        # A global switch: set at every step, as the options take turns.
        torch.backends.cudnn.benchmark = option.cudnn_benchmark
        autocast = option.dtype != torch.float32
        with torch.autocast(device.type, dtype=option.dtype, enabled=autocast):
            logits = model(segments)
        loss = segmentation_loss(logits, target, "cross_entropy")
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        return float(loss.detach())

    step()  # the first step compiles, benchmarks and allocates
    _synchronise(device)
    return step, time.perf_counter() - started


def time_steps(
    step: Callable[[], float], steps: int, device: torch.device
) -> tuple[float, float]:
    """Wall-clock and CPU seconds per step over ``steps`` steps."""
    _synchronise(device)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    _synchronise(device)
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="paper")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--segment", type=int, default=25)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-compile", action="store_true")
    parser.add_argument(
        "--only", help="comma-separated option keys (fp32, the baseline, always runs)"
    )
    args = parser.parse_args()

    from seg3d.device import choose_device

    device = choose_device(args.device)
    config = NetworkConfig.profile(
        args.profile, in_channels=CHANNELS, num_classes=CLASSES
    )
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    print(
        f"# {platform.processor() or platform.machine()} {name}, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads; profile "
        f"{args.profile}, segment {args.segment}, batch {args.batch}, device {device}"
    )
    prepared = []
    for option in chosen(options_for(device), args.only, args.skip_compile):
        try:
            step, setup = make_step(option, config, args.segment, args.batch, device)
        except Exception as err:  # e.g. no C compiler for torch.compile
            print(f"# {option.name} failed: {type(err).__name__}: {err}", flush=True)
            continue
        print(f"# {option.name}: set up in {setup:.1f} s", flush=True)
        prepared.append((option, step, setup))

    # Rounds take every option in turn, so that a change in the machine's load
    # touches them alike; each option keeps its best round.
    best = {option.name: (float("inf"), float("inf")) for option, _, _ in prepared}
    for _ in range(args.repeats):
        for option, step, _ in prepared:
            wall, cpu = time_steps(step, args.steps, device)
            if wall < best[option.name][0]:
                best[option.name] = (wall, cpu)

    print("| option | ms/step | speed-up | CPU ms/step | set-up s |")
    print("|---|---|---|---|---|")
    baseline = best[prepared[0][0].name][0]
    for option, _, setup in prepared:
        wall, cpu = best[option.name]
        print(
            f"| {option.name} | {1000 * wall:.1f} | {baseline / wall:.2f}x "
            f"| {1000 * cpu:.0f} | {setup:.1f} |"
        )


if __name__ == "__main__":
    main()
