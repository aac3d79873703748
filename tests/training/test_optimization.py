"""Losses and optimisers behave as their definitions say."""

import pytest
import torch

from seg3d.training.losses import IGNORE_INDEX, segmentation_loss, soft_dice_loss
from seg3d.training.optimization import make_optimizer, make_schedule


def test_perfect_prediction_has_zero_dice_loss():
    target = torch.randint(0, 3, (2, 5, 5, 5))
    logits = torch.nn.functional.one_hot(target, 3).permute(0, 4, 1, 2, 3) * 50.0
    assert soft_dice_loss(logits, target).item() == pytest.approx(0.0, abs=1e-4)


def test_ignored_voxels_do_not_count():
    target = torch.randint(0, 2, (1, 4, 4, 4))
    logits = torch.randn(1, 2, 4, 4, 4)
    ignored = target.clone()
    ignored[0, 0] = IGNORE_INDEX
    scrambled = logits.clone()
    scrambled[:, :, 0] = torch.randn(1, 2, 4, 4) * 10
    for name in ("cross_entropy", "dice", "cross_entropy+dice"):
        torch.testing.assert_close(
            segmentation_loss(logits, ignored, name),
            segmentation_loss(scrambled, ignored, name),
        )


@pytest.mark.parametrize("name", ["adamw", "rmsprop"])
def test_optimizers_minimise_a_quadratic(name):
    weights = torch.nn.Parameter(torch.tensor([3.0, -2.0]))
    optimizer = make_optimizer(name, [weights], 0.05, 0.0)
    for _ in range(300):
        optimizer.zero_grad()
        (weights**2).sum().backward()
        optimizer.step()
    assert weights.abs().max().item() < 0.1


@pytest.mark.parametrize(
    ("name", "end_fraction"), [("cosine", 0.0), ("poly", 0.0), ("constant", 1.0)]
)
def test_schedules_end_where_they_should(name, end_fraction):
    weights = torch.nn.Parameter(torch.zeros(1))
    optimizer = make_optimizer("adamw", [weights], 1.0, 0.0)
    schedule = make_schedule(name, optimizer, epochs=4)
    for _ in range(4):
        optimizer.step()
        schedule.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(end_fraction, abs=1e-9)
