"""Whole training runs on phantoms: learning, resume, interrupt, bad data."""

import copy
import json

import numpy as np
import pytest
import torch
from training_phantoms import TINY_TRAINING, write_phantom_dataset

from seg3d.errors import ConfigError, DatasetError
from seg3d.training.checkpoint import load_checkpoint
from seg3d.training.config import TrainingConfig, load_training_config
from seg3d.training.run_folder import find_latest_run
from seg3d.training.trainer import TrainingInterrupted, resume, train


def _config(**training):
    values = copy.deepcopy(TINY_TRAINING)
    values["training"].update(training)
    return TrainingConfig.from_dict(values)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return write_phantom_dataset(tmp_path_factory.mktemp("phantom") / "data")


@pytest.mark.slow
def test_tiny_network_learns_the_phantom(phantom, tmp_path):
    summary = train(phantom, _config(), tmp_path / "run")

    assert summary["best_validation_dice"] > 0.9
    run = tmp_path / "run"
    for name in ("config.toml", "best.pt", "last.pt", "metrics.csv", "curves.png"):
        assert (run / name).is_file(), name
    written = json.loads((run / "summary.json").read_text())
    assert written["best_validation_dice"] == pytest.approx(
        summary["best_validation_dice"]
    )
    model = load_checkpoint(run / "best.pt")["model"]
    assert model["labels"] == {"background": 0, "ball": 1}
    assert model["channel_names"] == ["MR0", "MR1"]
    assert model["preprocessing"]["normalization"] == [{"scheme": "zscore"}]
    assert find_latest_run(tmp_path) == run


class _StopAfter:
    """An observer that presses Ctrl-C at a given step."""

    def __init__(self, epoch, batch):
        self.when = (epoch, batch)

    def started(self, run):
        pass

    def stepped(self, run, loss, rate):
        if (run.epoch, run.batch) == self.when:
            raise KeyboardInterrupt

    def validated(self, run, dice):
        pass

    def finished(self, run, summary):
        pass


def test_interrupted_and_resumed_run_equals_straight_run(phantom, tmp_path):
    config = _config(epochs=4, batches_per_epoch=2, validate_every=1, schedule="cosine")
    train(phantom, config, tmp_path / "straight")

    with pytest.raises(
        TrainingInterrupted, match=r"state saved to .*last\.pt; continue"
    ):
        train(phantom, config, tmp_path / "split", _StopAfter(epoch=1, batch=1))
    resume(tmp_path / "split")

    straight = load_checkpoint(tmp_path / "straight" / "last.pt")
    split = load_checkpoint(tmp_path / "split" / "last.pt")
    for name, tensor in straight["weights"].items():
        torch.testing.assert_close(split["weights"][name], tensor, rtol=0, atol=0)
    assert split["training"]["epoch"] == 4
    rows = (tmp_path / "split" / "metrics.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["1", "2", "3", "4"]


def test_dataset_without_foreground_is_rejected(tmp_path):
    data = write_phantom_dataset(tmp_path / "data", num_cases=2, with_foreground=False)
    with pytest.raises(DatasetError, match=r"no training case has a foreground voxel"):
        train(data, _config(), tmp_path / "run")


def test_empty_dataset_is_rejected(tmp_path):
    data = write_phantom_dataset(tmp_path / "data", num_cases=1)
    for path in (data / "imagesTr").iterdir():
        path.unlink()
    (data / "labelsTr" / "case_000.nii.gz").unlink()
    with pytest.raises(DatasetError, match=r"1 problem found") as caught:
        train(data, _config(), tmp_path / "run")
    assert caught.value.problems[0].endswith(
        "imagesTr: no training cases; expected files "
        "named <case>_0000.nii.gz (one per channel) or <case>.nii.gz"
    )


def test_channel_count_mismatch_is_rejected(tmp_path):
    data = write_phantom_dataset(tmp_path / "data", num_cases=2)
    (data / "imagesTr" / "case_001_0001.nii.gz").unlink()
    with pytest.raises(DatasetError) as caught:
        train(data, _config(), tmp_path / "run")
    assert any("case_001" in problem for problem in caught.value.problems)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[training]\nepochs = 'many'\n", r"training\.epochs must be an int"),
        ("[training]\nepoch = 3\n", r"unknown key training\.epoch"),
        ("[trainig]\nepochs = 3\n", r"unknown key trainig"),
        ("profile = 'huge'\n", r"profile must be one of"),
        ("[training]\nmax_time = 'soon'\n", r"max_time 'soon' is not a duration"),
        ("[sampling]\nforeground_share = 1.5\n", r"foreground_share must be in"),
        ("[training\n", r"not valid TOML"),
    ],
    ids=["type", "key", "section", "profile", "duration", "share", "syntax"],
)
def test_malformed_config_names_the_problem(tmp_path, text, message):
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_training_config(path)


def test_resolved_config_is_saved_and_reloadable(phantom, tmp_path):
    train(phantom, _config(epochs=1, batches_per_epoch=1), tmp_path / "run")
    saved = load_training_config(tmp_path / "run" / "config.toml")
    assert saved.training.epochs == 1
    assert saved.profile == "tiny"
    assert np.isclose(saved.training.learning_rate, 0.01)
