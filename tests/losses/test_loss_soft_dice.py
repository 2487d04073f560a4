"""Tests for art_seg.losses.dice: hand-computed values, empty classes, masks, batch flag, reductions."""

from __future__ import annotations

import math

import pytest
import torch

from art_seg.losses import SoftDiceLoss, soft_dice_loss

LN3 = math.log(3.0)
S = 1e-5  # default smooth_nr = smooth_dr


def example(dtype: torch.dtype = torch.float64, onehot: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """N=1, K=2, 2x2: softmax p1 = [[3/4, 1/2], [1/4, 3/4]], p0 = 1 - p1; sigmoid channel 0 = 1/2.

    Target classes [[1, 0], [0, 1]]: class 0 at (0, 1), (1, 0); class 1 at (0, 0), (1, 1).
    """
    logits = torch.zeros(1, 2, 2, 2, dtype=dtype)
    logits[0, 1] = torch.tensor([[LN3, 0.0], [-LN3, LN3]], dtype=dtype)
    target = torch.tensor([[[1, 0], [0, 1]]])
    if onehot:
        target = torch.stack([1 - target, target], dim=1).to(dtype)
    return logits, target


def dice(intersection: float, pred: float, truth: float) -> float:
    return (2 * intersection + S) / (pred + truth + S)


# softmax, all voxels: class 0: I = 1/2 + 3/4, P = 1/4 + 1/2 + 3/4 + 1/4, G = 2; class 1: I = 3/4 + 3/4, P = 9/4, G = 2
D0 = dice(5 / 4, 7 / 4, 2)
D1 = dice(3 / 2, 9 / 4, 2)
# mask [[1, 0], [1, 1]] keeps (0,0), (1,0), (1,1):
# class 0: p0 = 1/4, 3/4, 1/4, t0 = 0, 1, 0; class 1: p1 = 3/4, 1/4, 3/4
MASK = [[1.0, 0.0], [1.0, 1.0]]
D0_MASK = dice(3 / 4, 5 / 4, 1)
D1_MASK = dice(3 / 2, 7 / 4, 2)
# sigmoid: channel 0 is 1/2 everywhere, t0 has two voxels: I = 1, P = 2, G = 2; channel 1 as softmax class 1
D0_SIG = dice(1, 2, 2)

HAND_CASES = [
    ("softmax", {}, 1 - (D0 + D1) / 2),
    ("no_background", {"include_background": False}, 1 - D1),
    ("class_weights", {"class_weights": [1.0, 3.0]}, ((1 - D0) + 3 * (1 - D1)) / 4),
    ("class_weights_no_background", {"class_weights": [5.0, 3.0], "include_background": False}, 1 - D1),
    ("mask", {"voxel_weights": MASK}, 1 - (D0_MASK + D1_MASK) / 2),
    # weights 2 on (0, 0): class 1: I = 2*3/4 + 3/4, P = 2*3/4 + 1/2 + 1/4 + 3/4, G = 3;
    # class 0: I = 5/4, P = 2*1/4 + 3/2, G = 2
    ("voxel_weights", {"voxel_weights": [[2.0, 1.0], [1.0, 1.0]]}, 1 - (dice(5 / 4, 2, 2) + dice(9 / 4, 3, 3)) / 2),
    ("sigmoid", {"activation": "sigmoid"}, 1 - (D0_SIG + D1) / 2),
    ("sigmoid_no_background", {"activation": "sigmoid", "include_background": False}, 1 - D1),
    ("smoothing", {"smooth_nr": 0.0, "smooth_dr": 1.0}, 1 - ((5 / 2) / (15 / 4 + 1) + 3 / (17 / 4 + 1)) / 2),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("onehot", [False, True], ids=["index", "onehot"])
@pytest.mark.parametrize("case_id, kwargs, expected", HAND_CASES, ids=[c[0] for c in HAND_CASES])
def test_hand_computed(case_id: str, kwargs: dict, expected: float, onehot: bool, dtype: torch.dtype) -> None:
    logits, target = example(dtype, onehot)
    if "voxel_weights" in kwargs:
        kwargs = {**kwargs, "voxel_weights": torch.tensor(kwargs["voxel_weights"], dtype=dtype)}
    loss = soft_dice_loss(logits, target, **kwargs)
    assert loss.shape == ()
    assert loss.dtype == dtype
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    assert loss.item() == pytest.approx(expected, abs=tol, rel=tol)


def test_overlapping_regions_with_sigmoid() -> None:
    # BraTS-like nested regions as multi-hot maps: WT = [[1, 1], [1, 0]] contains TC = [[1, 0], [0, 0]]
    logits, _ = example()
    target = torch.tensor([[[[1.0, 1.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 0.0]]]], dtype=torch.float64)
    # WT: p = 1/2 everywhere: I = 3/2, P = 2, G = 3; TC: I = 3/4, P = 9/4, G = 1
    expected = 1 - (dice(3 / 2, 2, 3) + dice(3 / 4, 9 / 4, 1)) / 2
    assert soft_dice_loss(logits, target, activation="sigmoid").item() == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------------------------------ empty classes


def three_class_example(class2_logit: float) -> tuple[torch.Tensor, torch.Tensor]:
    """K=3, class 2 absent from the target; its logit is `class2_logit` everywhere."""
    logits, target = example()
    logits = torch.cat([logits, torch.full((1, 1, 2, 2), class2_logit, dtype=torch.float64)], dim=1)
    return logits, target


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_empty_class_not_predicted_scores_one(dtype: torch.dtype) -> None:
    logits, target = three_class_example(-30.0)
    only_class2 = soft_dice_loss(logits.to(dtype), target, class_weights=[0.0, 0.0, 1.0])
    assert torch.isfinite(only_class2)
    assert 0.0 <= only_class2.item() < 1e-6  # dice ~ smooth_nr / smooth_dr = 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_empty_class_predicted_scores_zero(dtype: torch.dtype) -> None:
    logits, target = three_class_example(30.0)
    only_class2 = soft_dice_loss(logits.to(dtype), target, class_weights=[0.0, 0.0, 1.0])
    # P = 4 (class 2 takes all the probability): dice = 1e-5 / (4 + 1e-5)
    assert only_class2.item() == pytest.approx(1 - S / (4 + S), abs=1e-6)


def test_empty_class_exactly_by_formula() -> None:
    logits, target = three_class_example(0.0)
    # class 2 gets p = 1/5, 1/3, 3/7, 1/5 at the four voxels (softmax of (0, z1, 0)); G = 0, I = 0
    pred = 1 / 5 + 1 / 3 + 3 / 7 + 1 / 5
    loss = soft_dice_loss(logits, target, class_weights=[0.0, 0.0, 1.0])
    assert loss.item() == pytest.approx(1 - S / (pred + S), rel=1e-12)


@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
def test_all_zero_voxel_weights_give_zero_without_nan(activation: str, batch: bool) -> None:
    logits, target = example()
    logits.requires_grad_(True)
    loss = soft_dice_loss(logits, target, activation=activation, batch=batch, voxel_weights=torch.zeros(1, 2, 2))
    loss.backward()
    assert loss.item() == 0.0  # every class is empty: 1 - smooth_nr / smooth_dr
    assert torch.equal(logits.grad, torch.zeros_like(logits))


# ------------------------------------------------------------------------------------- masks and batches


@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
def test_mask_equals_sub_volume(activation: str, include_background: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 3, 3, 4, 2, generator=gen, dtype=torch.float64)
    target = torch.randint(0, 3, (1, 3, 4, 2), generator=gen)
    mask = torch.rand(1, 3, 4, 2, generator=gen) > 0.4
    kwargs = {"activation": activation, "include_background": include_background}
    masked = soft_dice_loss(logits, target, voxel_weights=mask, **kwargs)
    sub = soft_dice_loss(logits[0][:, mask[0]][None], target[mask][None], **kwargs)
    assert masked.item() == pytest.approx(sub.item(), rel=1e-12)
    assert masked.item() != pytest.approx(soft_dice_loss(logits, target, **kwargs).item(), rel=1e-6)


def test_batch_hand_computed() -> None:
    logits, target = example()
    # sample 2: p = 1/2 everywhere, target all class 1
    logits = torch.cat([logits, torch.zeros_like(logits)])
    target = torch.cat([target, torch.ones_like(target)])
    per_sample = soft_dice_loss(logits, target, include_background=False, reduction="none")
    torch.testing.assert_close(per_sample, torch.tensor([1 - D1, 1 - dice(2, 2, 4)], dtype=torch.float64))
    pooled = soft_dice_loss(logits, target, include_background=False, batch=True)
    assert pooled.shape == ()
    assert pooled.item() == pytest.approx(1 - dice(3 / 2 + 2, 9 / 4 + 2, 6), rel=1e-12)
    assert soft_dice_loss(logits, target, include_background=False, batch=True, reduction="sum").item() == pooled.item()


@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
def test_batch_equals_samples_joined_along_space(activation: str) -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 4, 5, 6, generator=gen, dtype=torch.float64)
    target = torch.randint(0, 4, (3, 5, 6), generator=gen)
    weights = torch.rand(3, 5, 6, generator=gen, dtype=torch.float64)
    pooled = soft_dice_loss(logits, target, activation=activation, batch=True, voxel_weights=weights)
    joined = soft_dice_loss(
        logits.permute(1, 0, 2, 3).reshape(1, 4, -1),
        target.reshape(1, -1),
        activation=activation,
        voxel_weights=weights.reshape(1, -1),
    )
    assert pooled.item() == pytest.approx(joined.item(), rel=1e-12)
    assert pooled.item() != pytest.approx(soft_dice_loss(logits, target, activation=activation).item(), rel=1e-6)


def test_reductions_and_per_sample_independence() -> None:
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(4, 3, 4, 4, 4, generator=gen, dtype=torch.float64)
    target = torch.randint(0, 3, (4, 4, 4, 4), generator=gen)
    none = soft_dice_loss(logits, target, reduction="none")
    assert none.shape == (4,)
    alone = torch.stack([soft_dice_loss(logits[i : i + 1], target[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(none, alone)
    assert soft_dice_loss(logits, target).item() == pytest.approx(none.mean().item(), rel=1e-12)
    assert soft_dice_loss(logits, target, reduction="sum").item() == pytest.approx(none.sum().item(), rel=1e-12)


def test_perfect_prediction_is_near_zero_and_worst_near_one() -> None:
    target = torch.tensor([[0, 1, 2, 1, 0, 2]])
    good = torch.stack([(target == k).double() * 40 - 20 for k in range(3)], dim=1)
    assert soft_dice_loss(good, target).item() < 1e-6
    assert soft_dice_loss(-good, target).item() > 0.999


def test_module_matches_function_and_keeps_class_weights_as_buffer() -> None:
    logits, target = example()
    module = SoftDiceLoss(include_background=False, class_weights=torch.tensor([0.0, 2.0]), reduction="sum")
    assert "class_weights" in dict(module.named_buffers())
    mask = torch.tensor(MASK, dtype=torch.float64)
    assert module(logits, target, mask).item() == pytest.approx(1 - D1_MASK, rel=1e-12)
    assert "include_background=False" in repr(module)
