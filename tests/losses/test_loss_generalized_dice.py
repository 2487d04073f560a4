"""Tests for art_seg.losses.generalized_dice: hand-computed weights and values, empty classes, batch flag."""

from __future__ import annotations

import math

import pytest
import torch

from art_seg.losses import GeneralizedDiceLoss, generalized_dice_loss

LN3 = math.log(3.0)
S = 1e-5


def example(dtype: torch.dtype = torch.float64, onehot: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """N=1, K=2, 2x2: softmax p1 = [[3/4, 1/2], [1/4, 3/4]], p0 = 1 - p1; sigmoid channel 0 = 1/2.

    Target classes [[1, 1], [1, 0]] (unbalanced): G0 = 1, G1 = 3.
    """
    logits = torch.zeros(1, 2, 2, 2, dtype=dtype)
    logits[0, 1] = torch.tensor([[LN3, 0.0], [-LN3, LN3]], dtype=dtype)
    target = torch.tensor([[[1, 1], [1, 0]]])
    if onehot:
        target = torch.stack([1 - target, target], dim=1).to(dtype)
    return logits, target


def gdl(weights: list[float], intersections: list[float], preds: list[float], truths: list[float]) -> float:
    numerator = 2 * sum(w * i for w, i in zip(weights, intersections)) + S
    denominator = sum(w * (p + t) for w, p, t in zip(weights, preds, truths)) + S
    return 1 - numerator / denominator


# softmax: I0 = p0(1,1) = 1/4, I1 = 3/4 + 1/2 + 1/4 = 3/2; P0 = 7/4, P1 = 9/4; G0 = 1, G1 = 3
I, P, G = [1 / 4, 3 / 2], [7 / 4, 9 / 4], [1, 3]
# mask [[1, 0], [1, 1]] keeps (0,0) t=1 p1=3/4, (1,0) t=1 p1=1/4, (1,1) t=0 p1=3/4
I_M, P_M, G_M = [1 / 4, 1], [5 / 4, 7 / 4], [1, 2]
# sigmoid: channel 0 is 1/2 everywhere, t0 only at (1,1): I0 = 1/2, P0 = 2
I_S, P_S = [1 / 2, 3 / 2], [2, 9 / 4]

HAND_CASES = [
    ("square", {}, gdl([1, 1 / 9], I, P, G)),
    ("simple", {"weight_type": "simple"}, gdl([1, 1 / 3], I, P, G)),
    ("uniform", {"weight_type": "uniform"}, gdl([1, 1], I, P, G)),
    ("no_background", {"include_background": False}, gdl([1 / 9], I[1:], P[1:], G[1:])),
    ("mask", {"voxel_weights": [[1.0, 0.0], [1.0, 1.0]]}, gdl([1, 1 / 4], I_M, P_M, G_M)),
    ("sigmoid", {"activation": "sigmoid"}, gdl([1, 1 / 9], I_S, P_S, G)),
    ("sigmoid_simple", {"activation": "sigmoid", "weight_type": "simple"}, gdl([1, 1 / 3], I_S, P_S, G)),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("onehot", [False, True], ids=["index", "onehot"])
@pytest.mark.parametrize("case_id, kwargs, expected", HAND_CASES, ids=[c[0] for c in HAND_CASES])
def test_hand_computed(case_id: str, kwargs: dict, expected: float, onehot: bool, dtype: torch.dtype) -> None:
    logits, target = example(dtype, onehot)
    if "voxel_weights" in kwargs:
        kwargs = {**kwargs, "voxel_weights": torch.tensor(kwargs["voxel_weights"], dtype=dtype)}
    loss = generalized_dice_loss(logits, target, **kwargs)
    assert loss.shape == ()
    assert loss.dtype == dtype
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    assert loss.item() == pytest.approx(expected, abs=tol, rel=tol)


@pytest.mark.parametrize("weight_type, finite_weights", [("square", [1, 1 / 9]), ("simple", [1, 1 / 3])])
def test_empty_class_gets_largest_finite_weight(weight_type: str, finite_weights: list[float]) -> None:
    logits, target = example()
    logits = torch.cat([logits, torch.zeros(1, 1, 2, 2, dtype=torch.float64)], dim=1)  # class 2, absent
    # softmax of (0, z1, 0) at the voxels: (1/5, 3/5, 1/5), (1/3, 1/3, 1/3), (3/7, 1/7, 3/7), (1/5, 3/5, 1/5)
    intersections = [1 / 5, 3 / 5 + 1 / 3 + 1 / 7, 0.0]
    preds = [1 / 5 + 1 / 3 + 3 / 7 + 1 / 5, 3 / 5 + 1 / 3 + 1 / 7 + 3 / 5, 1 / 5 + 1 / 3 + 3 / 7 + 1 / 5]
    expected = gdl([*finite_weights, max(finite_weights)], intersections, preds, [1, 3, 0])
    loss = generalized_dice_loss(logits, target, weight_type=weight_type)
    assert loss.item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("weight_type", ["square", "simple", "uniform"])
@pytest.mark.parametrize("batch", [False, True])
def test_all_classes_empty_give_zero(weight_type: str, batch: bool) -> None:
    logits = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    target = torch.zeros(2, 3, 4, 4, dtype=torch.float64)
    loss = generalized_dice_loss(logits, target, activation="sigmoid", weight_type=weight_type, batch=batch)
    if weight_type == "uniform":  # weights 1: nothing is replaced, the prediction is penalised
        assert 0.99 < loss.item() <= 1.0
    else:
        assert loss.item() == 0.0  # all weights 0: 1 - smooth_nr / smooth_dr
    loss.backward()
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("weight_type", ["square", "simple", "uniform"])
def test_all_zero_voxel_weights_give_zero_without_nan(weight_type: str) -> None:
    logits, target = example()
    logits.requires_grad_(True)
    loss = generalized_dice_loss(logits, target, weight_type=weight_type, voxel_weights=torch.zeros(2, 2))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_weights_carry_no_gradient_through_soft_target() -> None:
    logits, target = example(onehot=True)
    target = (target * 0.8 + 0.1).requires_grad_(True)
    logits.requires_grad_(True)
    generalized_dice_loss(logits, target).backward()
    # d loss / d t with the weights held fixed, by hand for class 0 and class 1 at voxel (1,1)
    g = target.detach().sum(dim=(2, 3))[0]
    w = 1 / g**2
    p = torch.softmax(logits.detach(), dim=1)
    inter = (p * target.detach()).sum(dim=(2, 3))[0]
    denom_terms = (p + target.detach()).sum(dim=(2, 3))[0]
    num = 2 * (w * inter).sum() + S
    den = (w * denom_terms).sum() + S
    expected = -(2 * w * p[0, :, 1, 1] * den - num * w) / den**2
    torch.testing.assert_close(target.grad[0, :, 1, 1], expected)


def test_mask_equals_sub_volume() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 3, 3, 4, 2, generator=gen, dtype=torch.float64)
    target = torch.randint(0, 3, (1, 3, 4, 2), generator=gen)
    mask = torch.rand(3, 4, 2, generator=gen) > 0.4
    masked = generalized_dice_loss(logits, target, voxel_weights=mask)
    sub = generalized_dice_loss(logits[0][:, mask][None], target[0][mask][None])
    assert masked.item() == pytest.approx(sub.item(), rel=1e-12)
    assert masked.item() != pytest.approx(generalized_dice_loss(logits, target).item(), rel=1e-6)


def test_batch_pools_weights_and_sums() -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 4, 5, 6, generator=gen, dtype=torch.float64)
    target = torch.randint(0, 3, (3, 5, 6), generator=gen)  # class 3 empty in every sample
    target[0] = 0  # sample 0 holds class 0 only
    pooled = generalized_dice_loss(logits, target, batch=True)
    joined = generalized_dice_loss(logits.permute(1, 0, 2, 3).reshape(1, 4, -1), target.reshape(1, -1))
    assert pooled.shape == ()
    assert pooled.item() == pytest.approx(joined.item(), rel=1e-12)
    none = generalized_dice_loss(logits, target, reduction="none")
    alone = torch.stack([generalized_dice_loss(logits[i : i + 1], target[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(none, alone)
    assert generalized_dice_loss(logits, target).item() == pytest.approx(none.mean().item(), rel=1e-12)
    assert generalized_dice_loss(logits, target, reduction="sum").item() == pytest.approx(none.sum().item(), rel=1e-12)
    assert pooled.item() != pytest.approx(none.mean().item(), rel=1e-6)


def test_module_matches_function() -> None:
    logits, target = example()
    module = GeneralizedDiceLoss(weight_type="simple", include_background=False)
    assert module(logits, target).item() == pytest.approx(gdl([1 / 3], I[1:], P[1:], G[1:]), rel=1e-12)
    assert "weight_type='simple'" in repr(module)
