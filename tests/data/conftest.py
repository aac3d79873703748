"""Tiny datasets written to temporary folders, to be read back or broken."""

from pathlib import Path

import pytest

from seg3d.data.synthetic import write_synthetic_dataset


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    """A Decathlon folder: synth_000, synth_001 for training, synth_002 for test.

    Cases are 12 to 14 voxels a side, with two channels (T1, FLAIR), labels
    0/1/2 and an ROI mask for every case.
    """
    return write_synthetic_dataset(
        tmp_path / "data", num_training=2, num_test=1, seed=3, shape_range=(12, 14)
    )
