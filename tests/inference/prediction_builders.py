"""Checkpoints of untrained tiny networks and scans to predict, for CLI tests."""

from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from seg3d.model.config import NetworkConfig
from seg3d.model.network import DeepMedic
from seg3d.training.checkpoint import save_checkpoint

OBLIQUE_LPS = np.array(
    [
        [-0.95, 0.1, 0.0, 40.0],
        [-0.08, -0.98, 0.2, 60.0],
        [0.0, 0.15, 1.9, -20.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def write_model(
    path: Path,
    channels: int = 2,
    labels: dict[str, int] | None = None,
    target_spacing: list[float] | None = None,
    seed: int = 0,
) -> Path:
    """A seg3d checkpoint of a randomly initialised tiny network."""
    labels = labels or {"background": 0, "tumour": 4}
    torch.manual_seed(seed)
    config = NetworkConfig.profile(
        "tiny", in_channels=channels, num_classes=len(labels)
    )
    network = DeepMedic(config)
    # Random batch-norm statistics make the folded network's work visible.
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    preprocessing = {"normalization": [{"scheme": "zscore"}], "crop": "none"}
    if target_spacing is not None:
        preprocessing["target_spacing"] = target_spacing
    info = {
        "network": config.to_dict(),
        "profile": "tiny",
        "channel_names": [f"MR{c}" for c in range(channels)],
        "labels": labels,
        "preprocessing": preprocessing,
        "segment_size": 17,
        "training_spacing": [1.0, 1.0, 1.0],
        "flip_axes": [0],
    }
    return save_checkpoint(path, network.state_dict(), info)


def write_scan(
    folder: Path, case_id: str, channels: int = 2, shape=(20, 18, 16), seed: int = 0
) -> list[Path]:
    """Per-channel NIfTI files ``<case>_0000.nii.gz``... on an oblique LPS grid."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for c in range(channels):
        image = nib.Nifti1Image(
            rng.normal(100, 20, shape).astype(np.float32), OBLIQUE_LPS
        )
        image.set_qform(OBLIQUE_LPS, 1)
        image.set_sform(OBLIQUE_LPS, 2)
        path = folder / f"{case_id}_{c:04d}.nii.gz"
        nib.save(image, path)
        paths.append(path)
    return paths
