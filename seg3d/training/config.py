"""Everything a training run is told, read from TOML and command-line options.

A configuration file looks like::

    profile = "cpu"          # network profile: auto, paper, multiscale, cpu, tiny

    [network]                       # overrides of the profile (seg3d.model.config)
    residual_layers = [4, 6, 8]

    [preprocessing]                 # seg3d.preprocessing.config
    target_spacing = [1.0, 1.0, 1.0]

    [sampling]                      # seg3d.sampling.config
    foreground_share = 0.5

    [data]
    validation_fraction = 0.2       # or validation_cases = ["case_003", ...]

    [training]
    epochs = 30
    max_time = "25m"

Every key is checked when the file is read; the run folder keeps the resolved
configuration (profile expanded, defaults filled in) as ``config.toml``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from seg3d.config import from_dict, read_toml, to_dict
from seg3d.errors import ConfigError
from seg3d.preprocessing import PreprocessingConfig
from seg3d.sampling.config import SamplingConfig
from seg3d.training.losses import LossName
from seg3d.training.optimization import OptimizerName, ScheduleName

ProfileName = Literal["auto", "paper", "multiscale", "cpu", "tiny"]


@dataclass(frozen=True)
class DataSplit:
    """Which training cases are held out for validation.

    Attributes:
        validation_fraction: share of cases held out (at least one case when
            there are two or more), drawn with the run's seed.
        validation_cases: case ids to hold out instead of a random share.
        spacing: where ``preprocessing.target_spacing`` is not set, ``"median"``
            resamples every case to the median voxel spacing of the training
            cases (per canonical axis, as nnU-Net does), so that scans of
            different resolution look alike to the network; ``"keep"`` leaves
            each case at its own spacing.
    """

    validation_fraction: float = 0.2
    validation_cases: tuple[str, ...] = ()
    spacing: Literal["median", "keep"] = "median"

    def __post_init__(self) -> None:
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(
                "validation_fraction must lie in [0, 1), "
                f"not {self.validation_fraction}"
            )


@dataclass(frozen=True)
class Schedule:
    """How long and how the network is optimised.

    Attributes:
        epochs: most epochs to train.
        batches_per_epoch: optimisation steps per epoch.
        batch_size: training segments per step.
        segment_size: edge of the normal-resolution input segment (25 in the
            paper, giving a 9^3 prediction).
        loss: ``cross_entropy``, ``dice`` or ``cross_entropy+dice``.
        optimizer: ``adamw`` or ``rmsprop`` (Nesterov momentum, as DeepMedic).
        learning_rate: initial learning rate.
        weight_decay: decoupled weight decay.
        schedule: ``cosine``, ``poly``, ``plateau`` (halve when validation
            Dice stalls) or ``constant``.
        validate_every: epochs between validations.
        patience: validations without improvement before stopping early;
            0 never stops early.
        max_time: wall-clock limit such as ``"25m"``, ``"1h30m"`` or ``"90s"``;
            training then ends with a final validation and checkpoint.
        seed: seed of the split, the weights, the sampler and dropout.
        device: ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda``, ``cuda:N``.
        precision: ``auto``, ``float32``, ``bfloat16`` or ``float16``.
        num_workers: DataLoader worker processes drawing segments.
        validation_block: edge of the prediction blocks used to segment
            validation volumes (memory grows with its cube).
        cudnn_benchmark: on CUDA, let cuDNN time its convolution algorithms
            for the training segments' one shape and keep the fastest.
        memory_format: layout of weights and segments: ``channels_last``
            (channels-last-3d), ``contiguous``, or ``auto``: channels-last on
            CPUs, where it measured 1.4 times faster (docs/benchmarks.md), and
            contiguous on GPUs until measured there.
        compile: ``torch.compile`` the network for training steps; needs a C
            compiler where it runs (see docs/docker.md).
    """

    epochs: int = 40
    batches_per_epoch: int = 25
    batch_size: int = 10
    segment_size: int = 25
    loss: LossName = "cross_entropy"
    optimizer: OptimizerName = "adamw"
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    schedule: ScheduleName = "cosine"
    validate_every: int = 2
    patience: int = 8
    max_time: str | None = None
    seed: int = 0
    device: str = "auto"
    precision: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    num_workers: int = 1
    validation_block: int = 48
    cudnn_benchmark: bool = True
    memory_format: Literal["auto", "channels_last", "contiguous"] = "auto"
    compile: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "batches_per_epoch", "batch_size", "validate_every"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"{name} must be at least 1, not {getattr(self, name)}"
                )
        for name in ("patience", "seed", "num_workers"):
            if getattr(self, name) < 0:
                raise ValueError(
                    f"{name} must not be negative, not {getattr(self, name)}"
                )
        if self.learning_rate <= 0:
            raise ValueError(
                f"learning_rate must be positive, not {self.learning_rate}"
            )
        if self.max_time is not None:
            parse_duration(self.max_time)

    @property
    def max_seconds(self) -> float | None:
        return None if self.max_time is None else parse_duration(self.max_time)


@dataclass(frozen=True)
class TrainingConfig:
    """The whole configuration of a training run.

    Attributes:
        profile: network profile the ``network`` table overrides; ``auto`` is
            ``paper`` on a GPU and the lighter ``cpu`` profile elsewhere.
        network: overrides of the profile's network settings (plain values,
            validated by :class:`seg3d.model.config.NetworkConfig`).
        preprocessing: what is done to every case before sampling.
        sampling: class balance and augmentation.
        data: the validation split.
        training: the optimisation schedule.
    """

    profile: ProfileName = "auto"
    network: dict[str, Any] = field(default_factory=dict)
    preprocessing: PreprocessingConfig = field(default_factory=PreprocessingConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    data: DataSplit = field(default_factory=DataSplit)
    training: Schedule = field(default_factory=Schedule)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingConfig:
        values = dict(values)
        preprocessing = PreprocessingConfig.from_dict(values.pop("preprocessing", {}))
        config = from_dict(cls, values)
        return dataclasses.replace(config, preprocessing=preprocessing)

    def to_dict(self) -> dict[str, Any]:
        values = to_dict(dataclasses.replace(self, preprocessing=PreprocessingConfig()))
        values["preprocessing"] = self.preprocessing.to_dict()
        return values

    def with_training(self, **changes: Any) -> TrainingConfig:
        """A copy with some ``[training]`` settings replaced (command-line options)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return self
        merged = {**to_dict(self.training), **changes}
        return dataclasses.replace(
            self, training=from_dict(Schedule, merged, "training")
        )

    def with_profile(self, profile: str) -> TrainingConfig:
        """A copy using network profile ``profile`` (command-line ``--profile``)."""
        return TrainingConfig.from_dict({**self.to_dict(), "profile": profile})


def load_training_config(path: Path | None) -> TrainingConfig:
    """The defaults, overridden by the TOML file at ``path`` if given."""
    if path is None:
        return TrainingConfig()
    try:
        return TrainingConfig.from_dict(read_toml(path))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err


_DURATION = re.compile(
    r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*$"
)


def parse_duration(text: str) -> float:
    """Seconds in ``"25m"``, ``"1h30m"``, ``"90s"`` or a bare number of minutes."""
    stripped = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", stripped):
        return float(stripped) * 60
    match = _DURATION.match(stripped)
    if not stripped or match is None or not any(match.groups()):
        raise ConfigError(
            f"max_time {text!r} is not a duration; write e.g. 25m, 1h30m or 90s"
        )
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds
