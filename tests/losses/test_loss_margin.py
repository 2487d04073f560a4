"""Logit-margin loss: hand-computed values, clamp, target forms, gradient where softmax saturates."""

from __future__ import annotations

import math

import pytest
import torch

from art_seg.losses import LogitMarginLoss, cross_entropy_loss, logit_margin_loss


def two_voxels() -> tuple[torch.Tensor, torch.Tensor]:
    # (1, 3, 2): voxel 0 logits (2, 0.5, -1), true class 0 -> margin 0.5 - 2 = -1.5;
    #            voxel 1 logits (0, 3, 1),   true class 2 -> margin 3 - 1 = 2.
    logits = torch.tensor([[[2.0, 0.0], [0.5, 3.0], [-1.0, 1.0]]], dtype=torch.float64)
    return logits, torch.tensor([[0, 2]])


def test_softmax_margin_hand_values() -> None:
    logits, target = two_voxels()
    assert logit_margin_loss(logits, target).item() == pytest.approx((-1.5 + 2.0) / 2)
    assert logit_margin_loss(logits, target, kappa=1.0).item() == pytest.approx((-1.5 + 1.0) / 2)
    weights = torch.tensor([[3.0, 1.0]], dtype=torch.float64)
    assert logit_margin_loss(logits, target, voxel_weights=weights).item() == pytest.approx((3 * -1.5 + 2.0) / 4)
    one_hot = torch.nn.functional.one_hot(target, 3).movedim(-1, 1).double()
    assert logit_margin_loss(logits, one_hot * 0.8 + 0.05).item() == pytest.approx(0.25)


def test_sigmoid_margin_hand_values() -> None:
    # (1, 2, 1): channel logits (1.5, -0.5), multi-hot target (1, 1): margins -1.5 and 0.5 -> mean -0.5
    logits = torch.tensor([[[1.5], [-0.5]]])
    target = torch.tensor([[[1.0], [1.0]]])
    assert logit_margin_loss(logits, target, activation="sigmoid").item() == pytest.approx(-0.5)


def test_margin_gradient_survives_saturated_softmax() -> None:
    # Logits scaled as a distilled network deploys them at T = 1: cross-entropy's gradient underflows, the
    # margin's does not (the gradient-masking check depends on this).
    logits, target = two_voxels()
    logits = (logits * 1000).float().requires_grad_(True)
    correct = torch.tensor([[0, 1]])
    (ce_grad,) = torch.autograd.grad(cross_entropy_loss(logits, correct), logits)
    (margin_grad,) = torch.autograd.grad(logit_margin_loss(logits, correct), logits)
    assert ce_grad.abs().max().item() == 0.0
    assert margin_grad.abs().max().item() == pytest.approx(0.5)


def test_module_and_bad_options() -> None:
    logits, target = two_voxels()
    assert LogitMarginLoss(kappa=1.0)(logits, target).item() == pytest.approx(-0.25)
    assert "kappa=inf" in repr(LogitMarginLoss())
    with pytest.raises(ValueError, match="kappa must be >= 0, got -1.0"):
        logit_margin_loss(logits, target, kappa=-1.0)
    with pytest.raises(ValueError, match="kappa must be >= 0"):
        LogitMarginLoss(kappa=-math.pi)
