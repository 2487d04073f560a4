"""Tests for art_seg.losses.dice_ce: hand-computed sum, lambdas, and binary cross-entropy under sigmoid."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from art_seg.losses import DiceCELoss, cross_entropy_loss, dice_ce_loss, soft_dice_loss

LN3 = math.log(3.0)
L75, L50 = -math.log(0.75), math.log(2.0)
S = 1e-5


def example(dtype: torch.dtype = torch.float64, onehot: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """N=1, K=2, 2x2: softmax p1 = [[3/4, 1/2], [1/4, 3/4]]; sigmoid channel 0 = 1/2. Target [[1, 0], [0, 1]]."""
    logits = torch.zeros(1, 2, 2, 2, dtype=dtype)
    logits[0, 1] = torch.tensor([[LN3, 0.0], [-LN3, LN3]], dtype=dtype)
    target = torch.tensor([[[1, 0], [0, 1]]])
    if onehot:
        target = torch.stack([1 - target, target], dim=1).to(dtype)
    return logits, target


def dice(intersection: float, pred: float, truth: float) -> float:
    return (2 * intersection + S) / (pred + truth + S)


D0, D1 = dice(5 / 4, 7 / 4, 2), dice(3 / 2, 9 / 4, 2)
CE = (3 * L75 + L50) / 4
D0_SIG, BCE = dice(1, 2, 2), (5 * L50 + 3 * L75) / 8
D0_MASK, D1_MASK = dice(3 / 4, 5 / 4, 1), dice(3 / 2, 7 / 4, 2)  # mask [[1, 0], [1, 1]], see test_loss_soft_dice

HAND_CASES = [
    ("softmax", {}, 1 - (D0 + D1) / 2 + CE),
    ("lambdas", {"lambda_dice": 0.5, "lambda_ce": 2.0}, 0.5 * (1 - (D0 + D1) / 2) + 2 * CE),
    ("dice_only", {"lambda_ce": 0.0}, 1 - (D0 + D1) / 2),
    ("ce_only", {"lambda_dice": 0.0}, CE),
    # include_background drops class 0 from the Dice part only
    ("no_background", {"include_background": False}, 1 - D1 + CE),
    # class weights [1, 3] in both parts; CE normalised by the voxel count
    ("class_weights", {"class_weights": [1.0, 3.0]}, ((1 - D0) + 3 * (1 - D1)) / 4 + (7 * L75 + L50) / 4),
    ("sigmoid", {"activation": "sigmoid"}, 1 - (D0_SIG + D1) / 2 + BCE),
    # mask keeps (0,0), (1,0), (1,1): Dice as in test_loss_soft_dice, CE = -log(3/4) at each
    ("mask", {"voxel_weights": [[1.0, 0.0], [1.0, 1.0]]}, 1 - (D0_MASK + D1_MASK) / 2 + L75),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("onehot", [False, True], ids=["index", "onehot"])
@pytest.mark.parametrize("case_id, kwargs, expected", HAND_CASES, ids=[c[0] for c in HAND_CASES])
def test_hand_computed(case_id: str, kwargs: dict, expected: float, onehot: bool, dtype: torch.dtype) -> None:
    logits, target = example(dtype, onehot)
    if "voxel_weights" in kwargs:
        kwargs = {**kwargs, "voxel_weights": torch.tensor(kwargs["voxel_weights"], dtype=dtype)}
    loss = dice_ce_loss(logits, target, **kwargs)
    assert loss.shape == ()
    assert loss.dtype == dtype
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    assert loss.item() == pytest.approx(expected, abs=tol, rel=tol)


def test_sigmoid_uses_binary_cross_entropy_for_overlapping_regions() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, 4, 3, generator=gen, dtype=torch.float64)
    # nested BraTS-like regions: ET inside TC inside WT (multi-hot, overlapping)
    wt = torch.rand(2, 4, 4, 3, generator=gen) > 0.3
    tc = wt & (torch.rand(2, 4, 4, 3, generator=gen) > 0.4)
    et = tc & (torch.rand(2, 4, 4, 3, generator=gen) > 0.5)
    target = torch.stack([wt, tc, et], dim=1).double()
    p = 1 / (1 + torch.exp(-logits))
    manual_bce = -(target * p.log() + (1 - target) * (1 - p).log()).mean(dim=(1, 2, 3, 4))
    expected = soft_dice_loss(logits, target, activation="sigmoid", reduction="none") + manual_bce
    got = dice_ce_loss(logits, target, activation="sigmoid", reduction="none")
    torch.testing.assert_close(got, expected)
    # MONAI's DiceCELoss would add softmax CE against the multi-hot maps instead; that is a different number
    softmax_ce = F.cross_entropy(logits, target, reduction="none").flatten(1).mean(1)
    assert not torch.allclose(got, expected - manual_bce + softmax_ce)


@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
def test_is_weighted_sum_of_parts_per_sample(activation: str) -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 4, 5, 5, generator=gen, dtype=torch.float64)
    target = torch.randint(0, 4, (3, 5, 5), generator=gen)
    weights = torch.rand(3, 5, 5, generator=gen, dtype=torch.float64)
    cw = [0.5, 1.0, 2.0, 1.5]
    common = {"activation": activation, "class_weights": cw, "voxel_weights": weights, "reduction": "none"}
    expected = 0.3 * soft_dice_loss(logits, target, include_background=False, **common) + 1.7 * cross_entropy_loss(
        logits, target, **common
    )
    got = dice_ce_loss(logits, target, include_background=False, lambda_dice=0.3, lambda_ce=1.7, **common)
    torch.testing.assert_close(got, expected)
    kwargs = {k: v for k, v in common.items() if k != "reduction"}
    assert dice_ce_loss(logits, target, **kwargs).item() == pytest.approx(
        dice_ce_loss(logits, target, reduction="none", **kwargs).mean().item(), rel=1e-12
    )
    assert dice_ce_loss(logits, target, reduction="sum", **kwargs).item() == pytest.approx(
        dice_ce_loss(logits, target, reduction="none", **kwargs).sum().item(), rel=1e-12
    )


def test_module_matches_function_and_keeps_class_weights_as_buffer() -> None:
    logits, target = example()
    module = DiceCELoss(class_weights=[1.0, 3.0], lambda_dice=0.5, lambda_ce=2.0)
    assert "class_weights" in dict(module.named_buffers())
    expected = 0.5 * (((1 - D0) + 3 * (1 - D1)) / 4) + 2 * (7 * L75 + L50) / 4
    assert module(logits, target).item() == pytest.approx(expected, rel=1e-12)
    assert "lambda_ce=2.0" in repr(module)
