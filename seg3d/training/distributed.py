"""Several processes working as one, launched by torchrun.

seg3d has no cluster layer of its own: ``torchrun`` (``python -m
torch.distributed.run``) starts one process per GPU, on one machine or many,
and tells each its place through environment variables (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``). This module
reads them, joins the process group (NCCL between GPUs, gloo on CPUs), and
offers the few collective steps training and prediction need. Without
torchrun (or with one process) every helper works on the one process alone,
so callers need no separate code path.

Rank 0 is the main process: it alone writes files and draws progress.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
import torch.distributed as torch_distributed
from torch import nn

from seg3d.device import choose_device
from seg3d.errors import ConfigError, Seg3dError
from seg3d.model.network import DeepMedic

logger = logging.getLogger(__name__)

T = TypeVar("T")

_ENVIRONMENT = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class Distributed:
    """This process's place among the processes of one run.

    Attributes:
        rank: 0 .. ``world_size - 1``; rank 0 is the main process.
        world_size: processes in the run (1 without torchrun).
        local_rank: index of this process on its machine; its GPU.
        device: where this process computes (``cuda:<local_rank>`` on GPUs).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and reports progress."""
        return self.rank == 0

    @property
    def is_parallel(self) -> bool:
        return self.world_size > 1

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's share: item ``i`` goes to rank ``i % world_size``."""
        return list(items[self.rank :: self.world_size])

    def barrier(self) -> None:
        """Wait until every process gets here."""
        if self.is_parallel:
            torch_distributed.barrier()

    def broadcast(self, value: T) -> T:
        """Rank 0's ``value`` (picklable), on every rank."""
        if not self.is_parallel:
            return value
        box = [value]
        torch_distributed.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: T) -> list[T]:
        """Every rank's ``value`` (picklable), in rank order, on every rank."""
        if not self.is_parallel:
            return [value]
        values: list[Any] = [None] * self.world_size
        torch_distributed.all_gather_object(values, value)
        return values

    def any_rank(self, *flags: bool) -> list[bool]:
        """Per flag, whether it is set on any rank (one collective for all).

        A flag only rank 0 may set (``is_main and ...``) thus becomes rank 0's
        decision on every rank.
        """
        if not self.is_parallel:
            return [bool(f) for f in flags]
        tensor = torch.tensor([int(f) for f in flags], device=self._collective_device)
        torch_distributed.all_reduce(tensor, op=torch_distributed.ReduceOp.MAX)
        return [bool(v) for v in tensor.tolist()]

    def share_buffers(self, module: nn.Module) -> None:
        """Give every rank rank 0's buffers (batch-norm running statistics).

        DistributedDataParallel does so at the start of each forward pass, so
        after the last step of an epoch each rank still holds the statistics
        its own batch left; validation and checkpoints use rank 0's.
        """
        if not self.is_parallel:
            return
        for buffer in module.buffers():
            torch_distributed.broadcast(buffer, src=0)

    def on_main(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function`` on rank 0 and hand its result to every rank.

        An error raised on rank 0 is raised on every rank too, so that no
        process is left waiting for the others.
        """
        if not self.is_parallel:
            return function(*args)
        outcome: tuple[bool, Any] = (True, None)
        if self.is_main:
            try:
                outcome = (True, function(*args))
            except Seg3dError as err:
                outcome = (False, _picklable(err))
        succeeded, value = self.broadcast(outcome)
        if not succeeded:
            raise value
        return value

    @property
    def _collective_device(self) -> torch.device:
        backend = torch_distributed.get_backend()
        return self.device if backend == "nccl" else torch.device("cpu")


def _picklable(error: Seg3dError) -> Seg3dError:
    """``error`` if it survives pickling, else a plain error with its message."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return Seg3dError(str(error))
    return error


def _environment() -> tuple[int, int, int]:
    values = []
    for name in _ENVIRONMENT:
        text = os.environ.get(name, "0" if name != "WORLD_SIZE" else "1")
        try:
            values.append(int(text))
        except ValueError:
            raise ConfigError(
                f"environment variable {name}={text!r} is not a whole number; "
                "launch seg3d with torchrun, which sets it"
            ) from None
    rank, world_size, local_rank = values
    if not 0 <= rank < world_size:
        raise ConfigError(f"RANK={rank} must lie in 0..WORLD_SIZE-1={world_size - 1}")
    return rank, world_size, local_rank


def _rank_device(device_name: str, local_rank: int) -> torch.device:
    """The device of the process with ``local_rank`` on its machine."""
    requested = choose_device(device_name)
    if requested.type == "cpu":
        return requested
    if requested.type != "cuda":
        raise ConfigError(
            f"--device {device_name} ({requested.type}): several processes "
            "run only on CUDA GPUs or CPUs; use --device cuda or --device cpu"
        )
    if requested.index is not None and requested.index != local_rank:
        raise ConfigError(
            f"--device {device_name}: under torchrun each process uses the GPU of "
            f"its LOCAL_RANK (cuda:{local_rank} here); use --device cuda and "
            "choose GPUs with CUDA_VISIBLE_DEVICES"
        )
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise ConfigError(
            f"LOCAL_RANK {local_rank} has no GPU: {count} visible; start at most "
            f"{count} processes per machine (--nproc-per-node / --nproc)"
        )
    return torch.device("cuda", local_rank)


@contextlib.contextmanager
def process_group(
    device_name: str = "auto", backend: str | None = None
) -> Iterator[Distributed]:
    """Join the processes torchrun started, for the duration of the block.

    Args:
        device_name: ``auto``, ``cpu``, ``cuda``... as for a single process;
            under torchrun a CUDA process uses ``cuda:<LOCAL_RANK>``.
        backend: ``nccl`` or ``gloo``; default NCCL on GPUs and gloo on CPUs.
            Prediction exchanges only small Python objects and asks for gloo.

    Yields:
        This process's place; a single process when not launched by torchrun
        or launched with one process. A process group that is already
        initialised is used and left open.

    Raises:
        ConfigError: the environment or the device does not fit several
            processes.
    """
    rank, world_size, local_rank = _environment()
    if world_size == 1:
        yield Distributed(device=choose_device(device_name))
        return
    device = _rank_device(device_name, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    owned = not torch_distributed.is_initialized()
    if owned:
        backend = backend or ("nccl" if device.type == "cuda" else "gloo")
        torch_distributed.init_process_group(backend=backend)
    logger.debug("rank %d of %d on %s", rank, world_size, device)
    try:
        yield Distributed(rank, world_size, local_rank, device)
    finally:
        if owned and torch_distributed.is_initialized():
            torch_distributed.destroy_process_group()


def wrap_network(network: DeepMedic, group: Distributed) -> nn.Module:
    """``network`` as several processes train it: in DistributedDataParallel.

    The wrapper shares the network's parameters; gradients are averaged over
    the processes during ``backward``, so every process takes the same
    optimisation step. On GPUs batch norm becomes SyncBatchNorm: each process
    sees only its own few segments (DeepMedic trains with batches of about
    10), and statistics over all processes' segments are less noisy and make
    a step of N processes with batch B the step of one process with batch
    N * B. torch synchronises batch norm on GPUs only, so on CPUs (gloo) each
    process normalises with its own batch's statistics, and the running
    statistics kept are rank 0's (DistributedDataParallel broadcasts its
    buffers at each forward pass).
    """
    if not group.is_parallel:
        return network
    # In channels-last-3d, the weights of 1x1x1 convolutions have strides
    # that differ from their gradients' only along axes of length 1: the same
    # memory, which DistributedDataParallel still reports at every start.
    warnings.filterwarnings(
        "ignore", "Grad strides do not match bucket view strides", UserWarning
    )
    if group.device.type == "cuda":
        network = nn.SyncBatchNorm.convert_sync_batchnorm(network)
        return nn.parallel.DistributedDataParallel(
            network, device_ids=[group.device.index]
        )
    return nn.parallel.DistributedDataParallel(network)


def plain_network(network: DeepMedic) -> DeepMedic:
    """``network`` with plain batch norm, as inference folds it.

    :func:`wrap_network` turns batch norm into SyncBatchNorm in place; the
    folding of :mod:`seg3d.inference` reads plain ``BatchNorm3d`` only, so
    validation uses a copy with the same weights and running statistics.
    """
    if not any(isinstance(m, nn.SyncBatchNorm) for m in network.modules()):
        return network
    device = next(network.parameters()).device
    copy = DeepMedic(network.config).to(device)
    copy.load_state_dict(network.state_dict())
    return copy


class StopRequests:
    """Ctrl-C and SIGTERM as requests that all processes honour together.

    A single process stops at once (``KeyboardInterrupt``). Several processes
    stop at the next step on which they agree (:meth:`Distributed.any_rank`),
    because a process that left in the middle of a step would leave the
    others waiting in a collective. A second signal stops at once.
    """

    def __init__(self, group: Distributed) -> None:
        self.group = group
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequests:
        for number in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not in the main thread
                self._previous[number] = signal.signal(number, self._on_signal)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if not self.group.is_parallel or self.requested:
            raise KeyboardInterrupt
        log = logger.warning if self.group.is_main else logger.debug
        log("stopping after this step (signal again to stop at once)")
        self.requested = True
