"""A phantom dataset a tiny network must learn: bright balls on a noisy field."""

import json
from pathlib import Path

import nibabel as nib
import numpy as np


def write_phantom_dataset(
    root: Path,
    num_cases: int = 4,
    size: int = 24,
    seed: int = 0,
    channels: int = 2,
    with_foreground: bool = True,
) -> Path:
    """Decathlon layout; label 1 where a ball is bright in every channel."""
    rng = np.random.default_rng(seed)
    for folder in ("imagesTr", "labelsTr"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    grid = np.indices((size,) * 3).astype(np.float32)
    affine = np.diag([-1.0, -1.0, 1.5, 1.0])  # LPS, anisotropic
    for n in range(num_cases):
        label = np.zeros((size,) * 3, dtype=np.uint8)
        if with_foreground:
            for _ in range(2):
                centre = rng.uniform(5, size - 5, 3)
                radius = rng.uniform(2.5, 4.5)
                distance = np.sqrt(((grid - centre[:, None, None, None]) ** 2).sum(0))
                label[distance <= radius] = 1
        for c in range(channels):
            image = rng.normal(100.0, 10.0, (size,) * 3) + label * (60.0 + 20 * c)
            nib.save(
                nib.Nifti1Image(image.astype(np.float32), affine),
                root / "imagesTr" / f"case_{n:03d}_{c:04d}.nii.gz",
            )
        nib.save(
            nib.Nifti1Image(label, affine), root / "labelsTr" / f"case_{n:03d}.nii.gz"
        )
    description = {
        "channel_names": {str(c): f"MR{c}" for c in range(channels)},
        "labels": {"background": 0, "ball": 1},
        "numTraining": num_cases,
        "file_ending": ".nii.gz",
    }
    (root / "dataset.json").write_text(json.dumps(description))
    return root


TINY_TRAINING = {
    "profile": "tiny",
    "data": {"validation_fraction": 0.25},
    "sampling": {"augmentation": {"flip_axes": [], "gamma_probability": 0.0}},
    "training": {
        "epochs": 8,
        "batches_per_epoch": 6,
        "batch_size": 6,
        "segment_size": 17,
        "learning_rate": 0.01,
        "num_workers": 0,
        "validate_every": 2,
        "validation_block": 24,
        "patience": 0,
        "schedule": "constant",
    },
}
