"""Checkpoints load without running code and refuse what they cannot trust."""

import os
import pickle

import pytest
import torch

from seg3d.errors import ModelFileError
from seg3d.training.checkpoint import load_checkpoint, save_checkpoint


def _weights():
    return {"layer.weight": torch.randn(3, 2), "layer.bias": torch.zeros(3)}


def test_round_trip_keeps_weights_and_plain_data(tmp_path):
    weights = _weights()
    info = {"channel_names": ["T1", "FLAIR"], "labels": {"background": 0, "lesion": 1}}

    save_checkpoint(tmp_path / "best.pt", weights, info, {"epoch": 3})
    payload = load_checkpoint(tmp_path / "best.pt")

    assert payload["model"] == info
    assert payload["training"] == {"epoch": 3}
    for name, tensor in weights.items():
        torch.testing.assert_close(payload["weights"][name], tensor)


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_file_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"weights": {}, "model": _Payload(), "format": 1}, path)
    with pytest.raises(ModelFileError, match=r"evil\.pt: refused to load"):
        load_checkpoint(path)


def test_truncated_file(tmp_path):
    save_checkpoint(tmp_path / "full.pt", _weights(), {})
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=r"cut\.pt: not a readable model file"):
        load_checkpoint(tmp_path / "cut.pt")


def test_other_format_version(tmp_path):
    torch.save(
        {"weights": {}, "model": {}, "format": 99, "seg3d_version": "9.0"},
        tmp_path / "new.pt",
    )
    with pytest.raises(
        ModelFileError, match=r"written by seg3d 9\.0 in checkpoint format 99"
    ):
        load_checkpoint(tmp_path / "new.pt")


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(ModelFileError, match=r"nope\.pt: no such model file"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(ModelFileError, match=r"foreign\.pt: not a seg3d model file"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_interrupted_save_keeps_previous_checkpoint(tmp_path):
    path = save_checkpoint(tmp_path / "last.pt", _weights(), {"version": 1})

    class Unsaveable:
        pass

    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        save_checkpoint(path, _weights(), {"bad": Unsaveable})  # fails mid-write
    assert load_checkpoint(path)["model"] == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
