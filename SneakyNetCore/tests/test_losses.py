"""CE + soft Dice, and the target + context loss sum."""
import math

import pytest
import torch

from sneakynet.losses import dice_ce_loss, multires_loss, soft_dice_loss
from sneakynet.models import NetOutput


def _confident(labels, num_classes, scale=50.0):
    return torch.nn.functional.one_hot(labels, num_classes).movedim(-1, 1).float() * scale


def test_dice_is_zero_for_perfect_and_hand_computed_for_half_overlap():
    labels = torch.tensor([[[[0, 0, 1, 1]]]])  # (B=1, 1, 1, 4)
    assert soft_dice_loss(_confident(labels, 2), labels) < 1e-4
    pred = torch.tensor([[[[0, 1, 1, 0]]]])
    # hard prediction: class 0 dice = 2*1/(2+2) = .5, class 1 dice = .5 -> loss = 1 - (.5+.5)/2 = .5
    assert soft_dice_loss(_confident(pred, 2), labels) == pytest.approx(0.5, abs=1e-3)


def test_dice_divides_by_number_of_classes_in_the_batch():
    labels = torch.tensor([[[[0, 0, 1, 1]]]])
    pred = torch.tensor([[[[0, 1, 1, 0]]]])
    two = soft_dice_loss(_confident(pred, 2), labels)
    # 124 more classes, absent from the reference and never predicted: the loss does not change
    many = soft_dice_loss(_confident(pred, 126), labels)
    assert float(many) == pytest.approx(float(two), abs=1e-4) == pytest.approx(0.5, abs=1e-3)
    # a present class predicted nowhere has Dice 0: classes {0, 1, 2} present, Dice .5, 2/3 and 0
    labels3 = torch.tensor([[[[0, 0, 1, 2]]]])
    pred3 = torch.tensor([[[[0, 1, 1, 0]]]])
    assert float(soft_dice_loss(_confident(pred3, 126), labels3)) == pytest.approx(1 - (0.5 + 2 / 3 + 0) / 3, abs=1e-3)


def test_total_is_unweighted_sum_of_target_and_context_losses():
    torch.manual_seed(0)
    t, c1, c2 = (torch.randn(2, 5, 4, 4, 4) for _ in range(3))
    y, y1, y2 = (torch.randint(0, 5, (2, 4, 4, 4)) for _ in range(3))
    total, parts = multires_loss(NetOutput(t, [c1, c2]), y, [y1, y2])
    expected = dice_ce_loss(t, y) + dice_ce_loss(c1, y1) + dice_ce_loss(c2, y2)
    assert float(total) == pytest.approx(float(expected), rel=1e-6)
    assert parts["total"] == pytest.approx(parts["target"] + parts["context1"] + parts["context2"], rel=1e-6)
    ce = torch.nn.functional.cross_entropy(t, y)
    assert math.isclose(float(dice_ce_loss(t, y)), float(ce + soft_dice_loss(t, y)), rel_tol=1e-6)


def test_missing_context_labels_are_an_error():
    out = NetOutput(torch.zeros(1, 3, 2, 2, 2), [torch.zeros(1, 3, 2, 2, 2)])
    with pytest.raises(ValueError, match="1 context outputs but 0 context label"):
        multires_loss(out, torch.zeros(1, 2, 2, 2, dtype=torch.long))
