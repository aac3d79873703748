"""The training loop, read as a short list of named steps.

``train`` loads and preprocesses the data once, builds the network, sampler
and optimiser, then repeats: draw a batch, step, and every few epochs segment
the validation cases whole, keep the best checkpoint and stop early when Dice
stalls. Every random choice (split, initial weights, segments, augmentation,
dropout) derives from one seed and the position (epoch, batch) in the run, so
an interrupted run resumed from its checkpoint continues bit for bit.

Under torchrun every process runs this loop on its own share of the work
(:mod:`seg3d.training.distributed`): it draws its own segments (the sampler's
stream depends on the rank), DistributedDataParallel averages the gradients,
validation cases are split between the processes and their Dice gathered, and
rank 0 alone writes the run folder. ``batch_size`` is per process, so N
processes take steps of N * ``batch_size`` segments. A run resumes with any
number of processes: the checkpoint holds no rank.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from seg3d import __version__
from seg3d.device import choose_device, choose_precision
from seg3d.errors import Seg3dError
from seg3d.model.config import NetworkConfig
from seg3d.model.network import DeepMedic
from seg3d.sampling.sampler import SegmentSampler
from seg3d.training import distributed, run_folder
from seg3d.training.architecture import network_for, resolved_profile
from seg3d.training.cases import TrainingCases, prepare_cases
from seg3d.training.checkpoint import load_checkpoint, save_checkpoint
from seg3d.training.config import TrainingConfig
from seg3d.training.distributed import Distributed, StopRequests
from seg3d.training.losses import segmentation_loss
from seg3d.training.optimization import make_optimizer, make_schedule
from seg3d.training.validation import case_dice, mean_over_cases

logger = logging.getLogger(__name__)


class TrainingInterrupted(Seg3dError):
    """Training stopped on Ctrl-C or SIGTERM after saving a checkpoint."""

    def __init__(self, checkpoint: Path) -> None:
        super().__init__(
            f"training interrupted; state saved to {checkpoint}; continue with "
            f"`seg3d train --resume {checkpoint.parent}`"
        )
        self.checkpoint = checkpoint


class TrainingObserver(Protocol):
    """What a user interface hears about a run (the CLI draws progress bars)."""

    def started(self, run: TrainingRun) -> None: ...

    def stepped(
        self, run: TrainingRun, loss: float, samples_per_second: float
    ) -> None: ...

    def validated(self, run: TrainingRun, dice: dict[str, float]) -> None: ...

    def finished(self, run: TrainingRun, summary: dict[str, Any]) -> None: ...


@dataclass(eq=False)
class TrainingRun:
    """The state of a run, as observers and checkpoints see it."""

    run_dir: Path
    config: TrainingConfig
    network_config: NetworkConfig
    profile: str
    cases: TrainingCases
    device: torch.device
    precision: torch.dtype
    epoch: int = 0
    batch: int = 0
    best_dice: float = -math.inf
    best_epoch: int = 0
    stale_validations: int = 0
    elapsed: float = 0.0
    stop_reason: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    distributed: Distributed = field(default_factory=Distributed)

    @property
    def learning_rate(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # Set by ``_build``; kept out of the constructor for brevity. ``network``
    # is what checkpoints hold; ``step_network`` is what the optimisation step
    # calls: the same parameters, wrapped for several processes or compiled.
    network: DeepMedic = None  # type: ignore[assignment]
    step_network: torch.nn.Module = None  # type: ignore[assignment]
    optimizer: torch.optim.Optimizer = None  # type: ignore[assignment]
    schedule: Any = None
    sampler: SegmentSampler = None  # type: ignore[assignment]
    scaler: Any = None


def train(
    data: Path,
    config: TrainingConfig,
    out: Path | None = None,
    observer: TrainingObserver | None = None,
) -> dict[str, Any]:
    """Train a new model on ``data``; returns the run's summary.

    Under torchrun, every process calls this with the same arguments; they
    join one process group for the run (see :mod:`seg3d.training.distributed`).

    Raises:
        DatasetError: the data cannot be trained on (every problem listed).
        TrainingInterrupted: Ctrl-C or SIGTERM; the state was saved first.
    """
    with distributed.process_group(config.training.device) as group:
        run_dir = group.on_main(run_folder.new_run_folder, out)
        run = _start(run_dir, data, config, None, group)
        return _loop(run, observer if group.is_main else None)


def resume(
    run_dir: Path,
    observer: TrainingObserver | None = None,
    **training_changes: Any,
) -> dict[str, Any]:
    """Continue the run in ``run_dir`` from its last checkpoint, exactly.

    Args:
        training_changes: ``[training]`` settings to change, e.g. more epochs
            or a new ``max_time``.
    """
    payload = load_checkpoint(run_dir / run_folder.LAST_CHECKPOINT)
    state = payload.get("training")
    if state is None:
        raise Seg3dError(f"{run_dir}: its last checkpoint holds no training state")
    config = TrainingConfig.from_dict(state["config"]).with_training(**training_changes)
    with distributed.process_group(config.training.device) as group:
        run = _start(run_dir, Path(state["data"]), config, payload, group)
        return _loop(run, observer if group.is_main else None)


def _start(
    run_dir: Path,
    data: Path,
    config: TrainingConfig,
    resume_state: dict[str, Any] | None,
    group: Distributed | None = None,
) -> TrainingRun:
    schedule = config.training
    group = group or Distributed(device=choose_device(schedule.device))
    device = group.device
    precision = choose_precision(schedule.precision, device)
    if schedule.precision == "auto" and device.type == "cpu":
        # Whether bfloat16 trains as well as float32 on CPUs with AMX could not
        # be measured (seg3d's development machines lack bf16 hardware), so CPU
        # training stays float32 unless --precision bfloat16 asks otherwise.
        precision = torch.float32
    profile = resolved_profile(config)
    fixed_split = None
    if resume_state is not None:
        split = resume_state["training"]["split"]
        fixed_split = (list(split["training"]), list(split["validation"]))
    cases = prepare_cases(
        data, config.preprocessing, config.data, schedule.seed, fixed_split
    )
    network_config = network_for(config, len(cases.channel_names), len(cases.labels))
    run = TrainingRun(
        run_dir, config, network_config, profile, cases, device, precision
    )
    run.distributed = group
    _build(run)
    if resume_state is not None:
        _restore(run, resume_state)
    elif group.is_main:
        run_folder.write_config(run_dir, _resolved_config(run))
    if group.is_main:
        run_folder.point_latest_to(run_dir)
    run.step_network = _step_network(run)
    logger.info(
        "network profile %s (%d parameters) on %s in %s; %d process(es) with "
        "batches of %d",
        profile,
        run.network.num_parameters(),
        device,
        str(precision).removeprefix("torch."),
        group.world_size,
        schedule.batch_size,
    )
    return run


def _build(run: TrainingRun) -> None:
    schedule = run.config.training
    torch.manual_seed(schedule.seed)
    run.network = DeepMedic(run.network_config).to(run.device)
    geometry = run.network_config.geometry_for_input(schedule.segment_size)
    run.sampler = SegmentSampler(
        run.cases.training,
        geometry,
        run.cases.label_values,
        batch_size=schedule.batch_size,
        batches_per_epoch=schedule.batches_per_epoch,
        config=run.config.sampling,
        seed=schedule.seed,
        rank=run.distributed.rank,
    )
    run.optimizer = make_optimizer(
        schedule.optimizer,
        run.network.parameters(),
        schedule.learning_rate,
        schedule.weight_decay,
    )
    run.schedule = make_schedule(schedule.schedule, run.optimizer, schedule.epochs)
    use_scaler = run.device.type == "cuda" and run.precision == torch.float16
    run.scaler = torch.amp.GradScaler("cuda") if use_scaler else None


def _step_network(run: TrainingRun) -> torch.nn.Module:
    """The network as the step calls it, with the configured speed options."""
    schedule = run.config.training
    if run.device.type == "cuda":
        # Training segments all have one shape: cuDNN may time its algorithms
        # once and keep the fastest.
        torch.backends.cudnn.benchmark = schedule.cudnn_benchmark
    run.network.to(memory_format=_memory_format(run))
    network = distributed.wrap_network(run.network, run.distributed)
    if schedule.compile:
        network = torch.compile(network)
    return network


def _loop(run: TrainingRun, observer: TrainingObserver | None) -> dict[str, Any]:
    schedule = run.config.training
    metrics = run_folder.MetricsLog(run.run_dir)
    metrics.truncate_after(run.epoch)
    started = time.monotonic() - run.elapsed
    if observer:
        observer.started(run)
    group = run.distributed
    loader = run.sampler.data_loader(
        num_workers=schedule.num_workers, pin_memory=run.device.type == "cuda"
    )
    with _interrupts_saved_as_checkpoint(run) as stop:
        while run.epoch < schedule.epochs and not run.stop_reason:
            if run.batch == 0:
                run.sampler.set_epoch(run.epoch)
            losses = _train_epoch(run, loader, observer, started, stop)
            losses = [loss for part in group.gather(losses) for loss in part]
            row = {"epoch": run.epoch + 1, "train_loss": float(np.mean(losses))}
            row["learning_rate"] = run.learning_rate
            run.epoch, run.batch = run.epoch + 1, 0
            run.elapsed = time.monotonic() - started
            # Rank 0's clock decides, so that every process stops together.
            (out_of_time,) = group.any_rank(
                group.is_main and _out_of_time(schedule, run.elapsed)
            )
            if out_of_time:
                run.stop_reason = f"reached max_time {schedule.max_time}"
            if run.cases.validation and (
                run.epoch % schedule.validate_every == 0
                or run.epoch >= schedule.epochs
                or out_of_time
            ):
                row.update(_validate(run, observer))
            if not isinstance(run.schedule, torch.optim.lr_scheduler.ReduceLROnPlateau):
                run.schedule.step()
            run.elapsed = time.monotonic() - started
            # Every rank decides alike from the gathered Dice; rank 0's
            # decision is shared all the same so that none can run on alone.
            run.stop_reason = group.broadcast(run.stop_reason)
            if group.is_main:
                metrics.append(row)
                _save(run, run_folder.LAST_CHECKPOINT)
                run_folder.draw_curves(run.run_dir, metrics.rows)
    if not run.stop_reason:
        run.stop_reason = f"completed {schedule.epochs} epochs"
    summary = _summary(run)
    if group.is_main:
        run_folder.write_summary(run.run_dir, summary)
    if observer:
        observer.finished(run, summary)
    return summary


def _train_epoch(run, loader, observer, started, stop) -> list[float]:
    schedule = run.config.training
    group = run.distributed
    run.network.train()
    losses = []
    for batch in loader:
        tick = time.monotonic()
        _seed_dropout(run, batch["epoch"], batch["batch_index"])
        losses.append(_step(run, batch))
        run.sampler.mark_consumed(batch)
        run.batch = int(batch["batch_index"]) + 1
        # Segments per second over all processes, from rank 0's pace.
        rate = (
            group.world_size * schedule.batch_size / max(time.monotonic() - tick, 1e-9)
        )
        if observer:
            observer.stepped(run, losses[-1], rate)
        interrupted, out_of_time = group.any_rank(
            stop.requested,
            group.is_main and _out_of_time(schedule, time.monotonic() - started),
        )
        if interrupted:
            raise KeyboardInterrupt
        if out_of_time:
            break
    return losses


def _out_of_time(schedule: Any, elapsed: float) -> bool:
    return bool(schedule.max_seconds) and elapsed >= schedule.max_seconds


def _memory_format(run: TrainingRun) -> torch.memory_format:
    name = run.config.training.memory_format
    if name == "auto":
        name = "channels_last" if run.device.type == "cpu" else "contiguous"
    return (
        torch.channels_last_3d if name == "channels_last" else torch.contiguous_format
    )


def _step(run: TrainingRun, batch: dict[str, Any]) -> float:
    memory_format = _memory_format(run)
    segments = [
        s.to(run.device, non_blocking=True, memory_format=memory_format)
        for s in batch["segments"]
    ]
    target = batch["target"].to(run.device, non_blocking=True)
    autocast = run.precision != torch.float32
    with torch.autocast(run.device.type, dtype=run.precision, enabled=autocast):
        logits = run.step_network(segments)
    loss = segmentation_loss(logits, target, run.config.training.loss)
    run.optimizer.zero_grad(set_to_none=True)
    if run.scaler is not None:
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        loss.backward()
        run.optimizer.step()
    return float(loss.detach())


def _seed_dropout(run: TrainingRun, epoch: int, batch: int) -> None:
    # Dropout draws from torch's generator; seeding it per step makes a resumed
    # run draw the same masks as an uninterrupted one. Other ranks draw their
    # own masks; rank 0 keeps the key of a single process.
    rank = run.distributed.rank
    key = (epoch, batch) if rank == 0 else (epoch, batch, rank)
    sequence = np.random.SeedSequence(run.config.training.seed, spawn_key=key)
    torch.manual_seed(int(sequence.generate_state(1, np.uint64)[0] >> 1))


def _validate(run: TrainingRun, observer: TrainingObserver | None) -> dict[str, float]:
    schedule = run.config.training
    group = run.distributed
    # Each process segments its share of the cases with rank 0's weights and
    # statistics; all of them average the gathered scores in case order, as a
    # single process would.
    group.share_buffers(run.network)
    scores = case_dice(
        distributed.plain_network(run.network),
        run.network_config,
        group.shard(run.cases.validation),
        run.cases.labels,
        run.device,
        run.precision,
        schedule.validation_block,
    )
    gathered = {k: v for part in group.gather(scores) for k, v in part.items()}
    dice = mean_over_cases(
        [gathered[case.case_id] for case in run.cases.validation],
        list(run.cases.labels)[1:],
    )
    foreground = [v for v in dice.values() if math.isfinite(v)]
    mean_dice = float(np.mean(foreground)) if foreground else 0.0
    if isinstance(run.schedule, torch.optim.lr_scheduler.ReduceLROnPlateau):
        run.schedule.step(mean_dice)
    if mean_dice > run.best_dice:
        run.best_dice, run.best_epoch, run.stale_validations = mean_dice, run.epoch, 0
        _save(run, run_folder.BEST_CHECKPOINT, with_training_state=False)
    else:
        run.stale_validations += 1
        if schedule.patience and run.stale_validations >= schedule.patience:
            run.stop_reason = (
                f"validation Dice has not improved for {schedule.patience} validations"
            )
    logger.info(
        "epoch %d: validation Dice %s (mean %.3f, best %.3f at epoch %d)",
        run.epoch,
        ", ".join(f"{k} {v:.3f}" for k, v in dice.items()),
        mean_dice,
        run.best_dice,
        run.best_epoch,
    )
    if observer:
        observer.validated(run, dice)
    row = {f"val_dice_{name}": value for name, value in dice.items()}
    row["val_dice_mean"] = mean_dice
    return row


def model_info(run: TrainingRun) -> dict[str, Any]:
    """Everything prediction needs besides the weights, as plain data."""
    return {
        "network": run.network_config.to_dict(),
        "profile": run.profile,
        "channel_names": list(run.cases.channel_names),
        "labels": dict(run.cases.labels),
        "preprocessing": run.cases.preprocessing.to_dict(),
        "segment_size": run.config.training.segment_size,
        "training_spacing": list(run.cases.median_spacing),
        "flip_axes": list(run.config.sampling.augmentation.flip_axes),
        "best_validation_dice": None if math.isinf(run.best_dice) else run.best_dice,
        "epoch": run.epoch,
    }


def _save(run: TrainingRun, name: str, with_training_state: bool = True) -> Path:
    """Write checkpoint ``name`` on rank 0; the other ranks only learn its path."""
    if not run.distributed.is_main:
        return run.run_dir / name
    state = None
    if with_training_state:
        state = {
            "config": run.config.to_dict(),
            "data": str(run.cases.source.resolve()),
            "split": {
                "training": [c.case_id for c in run.cases.training],
                "validation": [c.case_id for c in run.cases.validation],
            },
            "epoch": run.epoch,
            "batch": run.batch,
            "optimizer": run.optimizer.state_dict(),
            "schedule": run.schedule.state_dict(),
            "sampler": run.sampler.state_dict(),
            "best_dice": run.best_dice,
            "best_epoch": run.best_epoch,
            "stale_validations": run.stale_validations,
            "elapsed": run.elapsed,
        }
        if run.scaler is not None:
            state["scaler"] = run.scaler.state_dict()
    return save_checkpoint(
        run.run_dir / name, run.network.state_dict(), model_info(run), state
    )


def _restore(run: TrainingRun, payload: dict[str, Any]) -> None:
    state = payload["training"]
    run.network.load_state_dict(payload["weights"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.schedule.load_state_dict(state["schedule"])
    run.sampler.load_state_dict(state["sampler"])
    if run.scaler is not None and "scaler" in state:
        run.scaler.load_state_dict(state["scaler"])
    run.epoch, run.batch = int(state["epoch"]), int(state["batch"])
    run.best_dice, run.best_epoch = float(state["best_dice"]), int(state["best_epoch"])
    run.stale_validations = int(state["stale_validations"])
    run.elapsed = float(state["elapsed"])
    logger.info("resuming %s at epoch %d, batch %d", run.run_dir, run.epoch, run.batch)


@contextlib.contextmanager
def _interrupts_saved_as_checkpoint(run: TrainingRun) -> Iterator[StopRequests]:
    """Save the state and raise :class:`TrainingInterrupted` on Ctrl-C or SIGTERM.

    Several processes stop together after the step in which any of them got
    the signal (torchrun passes Ctrl-C on to every process); rank 0 saves the
    state all of them share at that point. A second signal stops a process at
    once: rank 0 then saves its own last finished step if it can, the others
    leave without waiting, and torchrun ends processes still waiting for them
    in a collective (after its 30 s grace period, without a save). At worst
    the run resumes from the checkpoint of the last finished epoch.
    """
    with StopRequests(run.distributed) as stop:
        try:
            yield stop
        except KeyboardInterrupt:
            path = _save(run, run_folder.LAST_CHECKPOINT)
            raise TrainingInterrupted(path) from None


def _resolved_config(run: TrainingRun) -> dict[str, Any]:
    config = run.config.to_dict()
    config["profile"] = run.profile
    config["network"] = run.network_config.to_dict()
    return config


def _summary(run: TrainingRun) -> dict[str, Any]:
    return {
        "seg3d_version": __version__,
        "run_dir": str(run.run_dir),
        "data": str(run.cases.source),
        "profile": run.profile,
        "parameters": run.network.num_parameters(),
        "device": str(run.device),
        "processes": run.distributed.world_size,
        "precision": str(run.precision).removeprefix("torch."),
        "epochs_trained": run.epoch,
        "stopped_because": run.stop_reason,
        "best_validation_dice": None if math.isinf(run.best_dice) else run.best_dice,
        "best_epoch": run.best_epoch,
        "training_seconds": round(run.elapsed, 1),
        "training_cases": [c.case_id for c in run.cases.training],
        "validation_cases": [c.case_id for c in run.cases.validation],
        "labels": run.cases.labels,
        "channel_names": list(run.cases.channel_names),
    }
