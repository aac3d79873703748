"""Training in several processes, as torchrun runs it.

The processes talk through gloo on the loopback interface only (CPU); NCCL on
several GPUs is covered by the CUDA-marked test at the end; prediction in
several processes is tested in tests/inference/test_distributed_prediction.py.
"""

import copy
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tomli_w
import torch
import torch.multiprocessing as mp
from training_phantoms import TINY_TRAINING, write_phantom_dataset
from typer.testing import CliRunner

from seg3d.errors import ConfigError, Seg3dError
from seg3d.model.config import NetworkConfig
from seg3d.model.network import DeepMedic
from seg3d.training import distributed, trainer
from seg3d.training.cases import prepare_cases
from seg3d.training.checkpoint import load_checkpoint
from seg3d.training.config import TrainingConfig
from seg3d.training.losses import IGNORE_INDEX
from seg3d.training.run_folder import find_latest_run
from seg3d.training.validation import validation_dice
from seg3d_cli.launch import without_nproc
from seg3d_cli.main import app

runner = CliRunner()
LOOPBACK = {"MASTER_ADDR": "127.0.0.1", "GLOO_SOCKET_IFNAME": "lo"}


def _settings(batch_norm=True, **training):
    values = copy.deepcopy(TINY_TRAINING)
    values["network"] = {"batch_norm": batch_norm}
    values["training"].update(device="cpu", precision="float32", **training)
    return values


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _join(rank, world_size, port):
    os.environ.update(
        LOOPBACK,
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
    )


def _seg3d(*args, cwd):
    """Run ``python -m seg3d ARGS`` in a fresh process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "seg3d", *map(str, args)],
        cwd=cwd,
        env={**os.environ, **LOOPBACK},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return write_phantom_dataset(tmp_path_factory.mktemp("phantom") / "data")


# -- one step: 2 processes x batch 2 == 1 process x batch 4 ----------------------


def _step_on_rank(rank, port, data, batch, folder):
    """Rank ``rank`` of 2: one step on its half of ``batch``, results to a file."""
    _join(rank, 2, port)
    half = {
        **batch,
        "segments": [s[2 * rank : 2 * rank + 2] for s in batch["segments"]],
        "target": batch["target"][2 * rank : 2 * rank + 2],
    }
    config = TrainingConfig.from_dict(_settings(batch_norm=False, batch_size=2))
    with distributed.process_group("cpu") as group:
        # Rank 0's error (the folder holds files) must reach rank 1 too.
        try:
            trainer.train(data, config, folder / "taken")
        except Seg3dError as err:
            refused = str(err)
        run = trainer._start(folder / "run", data, config, None, group)
        loss = trainer._step(run, half)
        results = {
            "loss": loss,
            "refused": refused,
            "weights": run.network.state_dict(),
            "gradients": {n: p.grad for n, p in run.network.named_parameters()},
        }
    torch.save(results, folder / f"rank{rank}.pt")


def test_two_processes_step_like_one_process_with_both_batches(phantom, tmp_path):
    """DistributedDataParallel averages the two processes' gradients.

    With the loss a mean over equally many voxels per process, that average is
    the gradient of one process on all four segments, so the AdamW steps agree
    too. Two things would break the equality, and the comparison avoids them:
    batch norm in training mode normalises each process's segments with their
    own statistics (torch synchronises it on GPUs only; see the CUDA test
    below), so the network here has none; and voxels beyond the volume are
    left out of the loss, which would weight the processes by their count of
    valid voxels, so the target here has none.
    """
    (tmp_path / "one").mkdir()
    one = trainer._start(
        tmp_path / "one",
        phantom,
        TrainingConfig.from_dict(_settings(batch_norm=False, batch_size=4)),
        None,
    )
    batch = one.sampler.batch(0, 0)
    batch["target"][batch["target"] == IGNORE_INDEX] = 0
    (tmp_path / "run").mkdir()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").touch()

    mp.spawn(_step_on_rank, args=(_free_port(), phantom, batch, tmp_path), nprocs=2)
    loss = trainer._step(one, batch)

    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert np.mean([r["loss"] for r in ranks]) == pytest.approx(loss, rel=1e-6)
    for name, parameter in one.network.named_parameters():
        for result in ranks:
            torch.testing.assert_close(
                result["gradients"][name], parameter.grad, rtol=1e-5, atol=1e-7
            )
            torch.testing.assert_close(
                result["weights"][name], parameter.detach(), rtol=1e-5, atol=1e-7
            )
    for result in ranks:
        assert result["refused"].startswith(f"{tmp_path / 'taken'} already holds")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.toml"]


# -- a whole run in two processes --------------------------------------------------


def _write_config(path, **training):
    values = _settings(**training)
    values["data"] = {"validation_fraction": 0.34}
    path.write_text(tomli_w.dumps(values))
    return path


@pytest.fixture(scope="module")
def six_cases(tmp_path_factory):
    return write_phantom_dataset(tmp_path_factory.mktemp("six") / "data", num_cases=6)


@pytest.mark.slow
def test_two_process_run_leaves_one_run_folder_and_resumes_alone(six_cases, tmp_path):
    config = _write_config(
        tmp_path / "config.toml", epochs=2, batches_per_epoch=2, validate_every=1
    )
    result = _seg3d(
        "train", six_cases, "--config", config, "--out", "runs/run", "--nproc", 2,
        cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("Training finished") == 1
    run = tmp_path / "runs" / "run"
    assert sorted(p.name for p in run.iterdir()) == [
        "best.pt",
        "config.toml",
        "curves.png",
        "last.pt",
        "metrics.csv",
        "summary.json",
    ]
    assert find_latest_run(tmp_path / "runs") == run
    summary = json.loads((run / "summary.json").read_text())
    assert summary["processes"] == 2
    assert summary["epochs_trained"] == 2
    assert len(summary["validation_cases"]) == 2
    rows = (run / "metrics.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["1", "2"]
    load_checkpoint(run / "best.pt")

    # The two validation cases were segmented one per process; the Dice
    # gathered must be what one process finds with the same weights.
    last = load_checkpoint(run / "last.pt")
    header, final = rows[0].split(","), rows[-1].split(",")
    logged = float(final[header.index("val_dice_ball")])
    assert logged == pytest.approx(_dice_of(last, six_cases)["ball"], abs=1e-9)

    resumed = runner.invoke(app, ["train", "--resume", str(run), "--epochs", "3"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((run / "summary.json").read_text())["processes"] == 1
    rows = (run / "metrics.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["1", "2", "3"]


def _dice_of(checkpoint, data):
    state = checkpoint["training"]
    config = TrainingConfig.from_dict(state["config"])
    split = (state["split"]["training"], state["split"]["validation"])
    cases = prepare_cases(data, config.preprocessing, config.data, 0, split)
    network_config = NetworkConfig.from_dict(checkpoint["model"]["network"])
    network = DeepMedic(network_config)
    network.load_state_dict(checkpoint["weights"])
    block = config.training.validation_block
    device = torch.device("cpu")
    return validation_dice(network, network_config, cases, device, torch.float32, block)


@pytest.mark.slow
def test_ctrl_c_stops_both_processes_after_one_saved_step(phantom, tmp_path):
    config = _write_config(
        tmp_path / "config.toml",
        epochs=500,
        batches_per_epoch=2,
        batch_size=2,
        validate_every=100,
    )
    command = [sys.executable, "-m", "seg3d", "train", str(phantom), "--config"]
    command += [str(config), "--out", "run", "--nproc", "2"]
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        env={**os.environ, **LOOPBACK},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = tmp_path / "run" / "metrics.csv"
    deadline = time.monotonic() + 120
    while not metrics.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert metrics.exists(), "the first epoch did not finish in time"

    # What Ctrl-C in the terminal does: torchrun gets SIGINT and passes it on.
    process.send_signal(signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        process.terminate()  # torchrun ends its workers on SIGTERM
        process.communicate(timeout=60)
        pytest.fail("the processes did not stop within 90 s of Ctrl-C")

    assert process.returncode != 0
    assert "training interrupted; state saved to run/last.pt" in stderr
    state = load_checkpoint(tmp_path / "run" / "last.pt")["training"]
    assert state["epoch"] >= 1


# -- helpers alone ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rank", "expected"),
    [(0, ["a", "c", "e"]), (1, ["b", "d"])],
    ids=["rank0", "rank1"],
)
def test_case_i_goes_to_rank_i_modulo_world_size(rank, expected):
    group = distributed.Distributed(rank=rank, world_size=2, local_rank=rank)
    assert group.shard("abcde") == expected


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"RANK": "2", "WORLD_SIZE": "2"}, r"RANK=2 must lie in 0\.\.WORLD_SIZE-1=1"),
        ({"RANK": "one", "WORLD_SIZE": "2"}, r"RANK='one' is not a whole number"),
    ],
    ids=["rank-too-large", "not-a-number"],
)
def test_bad_launcher_environment_is_named(monkeypatch, environment, message):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with (
        pytest.raises(ConfigError, match=message),
        distributed.process_group("cpu"),
    ):
        pass


def test_nproc_under_torchrun_is_refused(monkeypatch, phantom):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    result = runner.invoke(app, ["train", str(phantom), "--nproc", "2"])
    assert result.exit_code == 1
    assert "torchrun already started this one; drop --nproc" in result.output


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (
            ["-v", "train", "d", "--nproc", "4", "--epochs", "2"],
            ["-v", "train", "d", "--epochs", "2"],
        ),
        (["train", "--nproc=4", "d"], ["train", "d"]),
    ],
    ids=["separate", "equals"],
)
def test_relaunch_drops_only_nproc(arguments, expected):
    assert without_nproc(arguments) == expected


def test_validation_folds_a_plain_copy_of_sync_batch_norm():
    config = NetworkConfig.profile("tiny", in_channels=2, num_classes=2)
    torch.manual_seed(0)
    network = DeepMedic(config)
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.running_mean.uniform_(-0.5, 0.5)
    synced = torch.nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(network))

    plain = distributed.plain_network(synced)

    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in plain.modules())
    assert distributed.plain_network(network) is network
    geometry = config.geometry_for_input(17)
    inputs = [torch.randn(1, 2, *p.input_shape) for p in geometry.pathways]
    network.eval()
    plain.eval()
    torch.testing.assert_close(plain(inputs), network(inputs))


# -- several GPUs ------------------------------------------------------------------


def _sync_step_on_rank(rank, port, data, batch, folder):
    _join(rank, 2, port)
    half = {
        **batch,
        "segments": [s[2 * rank : 2 * rank + 2] for s in batch["segments"]],
        "target": batch["target"][2 * rank : 2 * rank + 2],
    }
    values = _settings(batch_size=2)
    values["training"]["device"] = "cuda"
    config = TrainingConfig.from_dict(values)
    with distributed.process_group("cuda") as group:
        run = trainer._start(folder / "run", data, config, None, group)
        trainer._step(run, half)
        gradients = {n: p.grad.cpu() for n, p in run.network.named_parameters()}
    torch.save(gradients, folder / f"rank{rank}.pt")


@pytest.mark.cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_sync_batch_norm_makes_two_gpus_step_like_one(phantom, tmp_path):
    values = _settings(batch_size=4)
    values["training"]["device"] = "cuda"
    (tmp_path / "one").mkdir()
    config = TrainingConfig.from_dict(values)
    one = trainer._start(tmp_path / "one", phantom, config, None)
    batch = one.sampler.batch(0, 0)
    batch["target"][batch["target"] == IGNORE_INDEX] = 0
    (tmp_path / "run").mkdir()

    mp.spawn(
        _sync_step_on_rank, args=(_free_port(), phantom, batch, tmp_path), nprocs=2
    )
    trainer._step(one, batch)

    for rank in range(2):
        gradients = torch.load(tmp_path / f"rank{rank}.pt")
        for name, parameter in one.network.named_parameters():
            torch.testing.assert_close(
                gradients[name], parameter.grad.cpu(), rtol=1e-4, atol=1e-6
            )
