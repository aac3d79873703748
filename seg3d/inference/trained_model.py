"""A trained model as ``predict`` uses it: the network and what it was trained on."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seg3d.errors import ModelFileError, Seg3dError
from seg3d.model.config import NetworkConfig
from seg3d.model.network import DeepMedic
from seg3d.preprocessing import PreprocessingConfig
from seg3d.training.checkpoint import load_checkpoint
from seg3d.training.run_folder import find_latest_run, model_file_in

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class TrainedModel:
    """A network in evaluation mode with the facts prediction needs.

    Attributes:
        path: the checkpoint file.
        network: the network, weights loaded, in eval mode, on the CPU.
        channel_names: image channels the network reads, in order.
        labels: label name to value, background first, in class order.
        preprocessing: what is done to a scan before the network sees it.
        training_spacing: median voxel size (mm) of the training cases after
            preprocessing.
        flip_axes: axes flipped in training augmentation, usable for TTA.
        info: the checkpoint's whole model description.
    """

    path: Path
    network: DeepMedic
    channel_names: tuple[str, ...]
    labels: dict[str, int]
    preprocessing: PreprocessingConfig
    training_spacing: tuple[float, float, float]
    flip_axes: tuple[int, ...]
    info: dict[str, Any]

    @property
    def label_values(self) -> tuple[int, ...]:
        return tuple(self.labels.values())


def resolve_model_paths(models: list[Path] | None, runs_root: Path) -> list[Path]:
    """Checkpoint files for ``--model`` options, or the latest run's best."""
    if not models:
        run = find_latest_run(runs_root)
        logger.info("using the latest run, %s", run)
        return [model_file_in(run)]
    return [model_file_in(Path(m)) for m in models]


def load_trained_model(path: Path) -> TrainedModel:
    """Load a checkpoint (no code runs) and rebuild its network."""
    payload = load_checkpoint(path)
    info = payload["model"]
    try:
        network = DeepMedic(NetworkConfig.from_dict(info["network"]))
        network.load_state_dict(payload["weights"])
        model = TrainedModel(
            path=Path(path),
            network=network.eval(),
            channel_names=tuple(info["channel_names"]),
            labels={str(k): int(v) for k, v in info["labels"].items()},
            preprocessing=PreprocessingConfig.from_dict(info["preprocessing"]),
            training_spacing=tuple(float(s) for s in info["training_spacing"]),
            flip_axes=tuple(int(a) for a in info.get("flip_axes", ())),
            info=info,
        )
    except (KeyError, TypeError, ValueError, RuntimeError, Seg3dError) as err:
        raise ModelFileError(
            f"{path}: the model description or weights are incomplete ({err}); "
            "use a checkpoint written by `seg3d train`"
        ) from err
    return model


def check_ensemble(models: list[TrainedModel]) -> None:
    """Ensemble members must read the same channels and predict the same labels."""
    first = models[0]
    for other in models[1:]:
        if other.channel_names != first.channel_names:
            raise ModelFileError(
                f"{other.path} reads channels {list(other.channel_names)} but "
                f"{first.path} reads {list(first.channel_names)}; ensemble models "
                "must share channels"
            )
        if other.labels != first.labels:
            raise ModelFileError(
                f"{other.path} predicts labels {other.labels} but {first.path} "
                f"predicts {first.labels}; ensemble models must share labels"
            )
