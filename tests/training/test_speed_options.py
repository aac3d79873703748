"""Speed options change how a step is computed, not what it computes.

Mixed precision, cuDNN benchmark mode and torch.compile are GPU options:
those tests carry the ``cuda`` mark and are skipped without a CUDA device
(bench/gpu_check.sh runs them on a GPU machine).
"""

import copy

import pytest
import torch
from training_phantoms import TINY_TRAINING, write_phantom_dataset

from seg3d.training import trainer
from seg3d.training.config import TrainingConfig

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _run(folder, data, **training):
    values = copy.deepcopy(TINY_TRAINING)
    values["training"].update(precision="float32", device="cpu")
    values["training"].update(training)
    folder.mkdir()
    return trainer._start(folder, data, TrainingConfig.from_dict(values), None)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return write_phantom_dataset(tmp_path_factory.mktemp("phantom") / "data")


def _all_finite(run):
    return all(torch.isfinite(p.grad).all() for p in run.network.parameters())


def _gradients(run):
    return {n: p.grad.float().cpu() for n, p in run.network.named_parameters()}


def test_channels_last_step_computes_the_same_step(phantom, tmp_path):
    plain = _run(tmp_path / "plain", phantom, memory_format="contiguous")
    fast = _run(tmp_path / "fast", phantom)  # auto: channels-last on CPUs
    batch = plain.sampler.batch(0, 0)

    losses = [trainer._step(plain, batch), trainer._step(fast, batch)]

    weight = fast.network.pathways[0].layers[0].conv.weight
    assert weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    expected = _gradients(plain)
    for name, gradient in _gradients(fast).items():
        torch.testing.assert_close(gradient, expected[name], rtol=1e-4, atol=1e-5)


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize(
    ("precision", "scaled"),
    [("bfloat16", False), ("float16", True)],
    ids=["bfloat16", "float16"],
)
def test_mixed_precision_step_on_cuda(phantom, tmp_path, precision, scaled):
    if precision == "bfloat16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    exact = _run(tmp_path / "exact", phantom, device="cuda")
    mixed = _run(tmp_path / "mixed", phantom, device="cuda", precision=precision)
    batch = exact.sampler.batch(0, 0)

    losses = [trainer._step(exact, batch), trainer._step(mixed, batch)]
    # The gradient scaler skips a step whose float16 gradients overflow and
    # halves its scale; the weights stay put, so the same step is retried.
    for _ in range(30):
        if _all_finite(mixed):
            break
        losses[1] = trainer._step(mixed, batch)

    assert (mixed.scaler is not None) == scaled
    assert torch.backends.cudnn.benchmark
    assert losses[1] == pytest.approx(losses[0], rel=0.05)
    expected = _gradients(exact)
    for name, gradient in _gradients(mixed).items():
        assert torch.isfinite(gradient).all(), name
        cosine = torch.nn.functional.cosine_similarity(
            gradient.flatten(), expected[name].flatten(), dim=0
        )
        assert cosine > 0.95, name


@pytest.mark.cuda
@pytest.mark.slow
@cuda
def test_compiled_step_on_cuda_computes_the_same_step(phantom, tmp_path):
    eager = _run(tmp_path / "eager", phantom, device="cuda")
    compiled = _run(tmp_path / "compiled", phantom, device="cuda", compile=True)
    batch = eager.sampler.batch(0, 0)

    losses = [trainer._step(eager, batch), trainer._step(compiled, batch)]

    assert losses[1] == pytest.approx(losses[0], rel=1e-4)
    expected = _gradients(eager)
    for name, gradient in _gradients(compiled).items():
        torch.testing.assert_close(gradient, expected[name], rtol=1e-3, atol=1e-5)


@pytest.mark.cuda
@pytest.mark.slow
@cuda
def test_mixed_precision_run_on_cuda_leaves_a_usable_run(phantom, tmp_path):
    values = copy.deepcopy(TINY_TRAINING)
    values["training"].update(device="cuda", precision="auto", epochs=2)
    summary = trainer.train(phantom, TrainingConfig.from_dict(values), tmp_path / "r")

    assert summary["precision"] in ("bfloat16", "float16")
    assert summary["best_validation_dice"] is not None
    assert (tmp_path / "r" / "best.pt").is_file()
