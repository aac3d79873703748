"""What ``seg3d train --dry-run`` shows: the network a configuration builds."""

from __future__ import annotations

from pathlib import Path

from seg3d.data.dataset import open_dataset
from seg3d.device import choose_device
from seg3d.model.config import NetworkConfig
from seg3d.model.summary import describe_network
from seg3d.training.config import TrainingConfig


def resolved_profile(config: TrainingConfig) -> str:
    """The network profile a run uses; ``auto`` is ``paper`` on CUDA, else ``cpu``."""
    if config.profile != "auto":
        return config.profile
    device = choose_device(config.training.device)
    return "paper" if device.type == "cuda" else "cpu"


def network_for(config: TrainingConfig, channels: int, classes: int) -> NetworkConfig:
    """The network configuration of a run on data of that many channels and classes."""
    return NetworkConfig.profile(
        resolved_profile(config),
        **{**config.network, "in_channels": channels, "num_classes": classes},
    )


def describe_run(config: TrainingConfig, data: Path) -> list[str]:
    """Lines describing the profile, network, segments and cost for ``data``.

    Reads only the dataset's description, no voxels.
    """
    dataset = open_dataset(data)
    network = network_for(config, dataset.num_channels, len(dataset.label_values))
    header = [
        f"data: {dataset.source} ({len(dataset.training)} training cases, "
        f"channels {', '.join(dataset.channel_names)}, "
        f"labels {', '.join(dataset.label_names)})",
        f"profile: {resolved_profile(config)}",
    ]
    return header + describe_network(network, config.training.segment_size)
