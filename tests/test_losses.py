import math

import pytest
import torch
import torch.nn.functional as F

from risam.evaluation.losses import dice_loss, focal_loss, risam_loss

# Two pixels of one sample: p = sigmoid(logit) = 0.5 (foreground) and 0.75 (background).
LOGITS = torch.tensor([[[0.0, math.log(3.0)]]])
TARGET = torch.tensor([[[1.0, 0.0]]])


def test_focal_loss_matches_hand_values():
    foreground = -((1 - 0.5) ** 2) * math.log(0.5)
    background = -((1 - 0.25) ** 2) * math.log(0.25)
    assert focal_loss(LOGITS, TARGET).item() == pytest.approx((foreground + background) / 2, rel=1e-6)


def test_focal_loss_with_gamma_zero_is_cross_entropy():
    logits = torch.randn(2, 5, 5)
    target = (torch.rand(2, 5, 5) > 0.5).float()
    expected = F.binary_cross_entropy_with_logits(logits, target)
    assert focal_loss(logits, target, gamma=0.0).item() == pytest.approx(expected.item(), rel=1e-6)


def test_focal_loss_down_weights_easy_pixels():
    easy = focal_loss(torch.tensor([[[4.0]]]), torch.tensor([[[1.0]]]))
    bce = F.binary_cross_entropy_with_logits(torch.tensor([[[4.0]]]), torch.tensor([[[1.0]]]))
    assert easy.item() < 0.001 * bce.item()


def test_dice_loss_matches_hand_values():
    intersection, total = 0.5, 0.5 + 0.75 + 1.0
    assert dice_loss(LOGITS, TARGET).item() == pytest.approx(1 - (2 * intersection + 1) / (total + 1), rel=1e-6)
    assert dice_loss(LOGITS, TARGET, smooth=0.0).item() == pytest.approx(1 - 2 * intersection / total, rel=1e-6)


def test_dice_loss_is_per_sample_mean():
    logits = torch.cat([LOGITS, torch.full((1, 1, 2), 20.0)])
    target = torch.cat([TARGET, torch.ones(1, 1, 2)])
    single = dice_loss(LOGITS, TARGET).item()
    assert dice_loss(logits, target).item() == pytest.approx(single / 2, abs=1e-6)


def test_empty_target_and_empty_prediction_cost_nothing():
    logits = torch.full((1, 4, 4), -30.0)
    target = torch.zeros(1, 4, 4)
    assert dice_loss(logits, target).item() == pytest.approx(0.0, abs=1e-6)
    assert focal_loss(logits, target).item() == pytest.approx(0.0, abs=1e-12)


def test_risam_loss_is_half_focal_half_dice():
    expected = 0.5 * focal_loss(LOGITS, TARGET) + 0.5 * dice_loss(LOGITS, TARGET)
    assert risam_loss(LOGITS, TARGET).item() == pytest.approx(expected.item(), rel=1e-7)
    weighted = risam_loss(LOGITS, TARGET, focal_weight=1.0, dice_weight=0.0)
    assert weighted.item() == pytest.approx(focal_loss(LOGITS, TARGET).item(), rel=1e-7)
