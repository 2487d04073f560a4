"""Tests for art_seg.losses.cross_entropy: hand-computed values, F.cross_entropy equality, weights, soft targets."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from art_seg.losses import CrossEntropyLoss, cross_entropy_loss

LN3 = math.log(3.0)
L75 = -math.log(0.75)  # -log(3/4)
L50 = math.log(2.0)  # -log(1/2)


def example(dtype: torch.dtype = torch.float64, onehot: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """N=1, K=2, 2x2. Channel 0 logits 0, channel 1 logits [[ln3, 0], [-ln3, ln3]].

    Softmax: p1 = [[3/4, 1/2], [1/4, 3/4]], p0 = 1 - p1. Sigmoid: channel 0 = 1/2, channel 1 = p1 above.
    Target classes [[1, 0], [0, 1]].
    """
    logits = torch.zeros(1, 2, 2, 2, dtype=dtype)
    logits[0, 1] = torch.tensor([[LN3, 0.0], [-LN3, LN3]], dtype=dtype)
    target = torch.tensor([[[1, 0], [0, 1]]])
    if onehot:
        target = torch.stack([1 - target, target], dim=1).to(dtype)
    return logits, target


MASK = [[1.0, 0.0], [1.0, 1.0]]

HAND_CASES = [
    # (id, kwargs, expected) -- expected from the per-voxel probabilities in `example`, by hand
    ("softmax", {}, (3 * L75 + L50) / 4),
    # voxels of class 1 weighted 3: normalised by the voxel count (4), not by sum cw_y (8)
    ("softmax_class_weights", {"class_weights": [1.0, 3.0]}, (2 * 3 * L75 + L50 + L75) / 4),
    # mask drops voxel (0, 1), the only one with p = 1/2
    ("softmax_mask", {"voxel_weights": torch.tensor(MASK)}, L75),
    ("softmax_voxel_weights", {"voxel_weights": torch.tensor([[2.0, 1.0], [0.5, 1.0]])}, (3.5 * L75 + L50) / 4.5),
    # sigmoid: channel 0 is 1/2 everywhere (4 x log2); channel 1: three voxels -log(3/4), one log2; mean of 8
    ("sigmoid", {"activation": "sigmoid"}, (5 * L50 + 3 * L75) / 8),
    ("sigmoid_cw", {"activation": "sigmoid", "class_weights": [1.0, 3.0]}, (4 * L50 + 3 * (3 * L75 + L50)) / 8),
    ("sigmoid_mask", {"activation": "sigmoid", "voxel_weights": torch.tensor(MASK)}, (3 * L50 + 3 * L75) / 6),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("onehot", [False, True], ids=["index", "onehot"])
@pytest.mark.parametrize("case_id, kwargs, expected", HAND_CASES, ids=[c[0] for c in HAND_CASES])
def test_hand_computed(case_id: str, kwargs: dict, expected: float, onehot: bool, dtype: torch.dtype) -> None:
    logits, target = example(dtype, onehot)
    kwargs = {k: v.to(dtype) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
    loss = cross_entropy_loss(logits, target, **kwargs)
    assert loss.shape == ()
    assert loss.dtype == dtype
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    assert loss.item() == pytest.approx(expected, abs=tol, rel=tol)


def test_class_weighted_mean_differs_from_torch_weighted_mean() -> None:
    logits, target = example()
    weights = torch.tensor([1.0, 3.0], dtype=torch.float64)
    ours = cross_entropy_loss(logits, target, class_weights=weights)
    torchs = F.cross_entropy(logits, target, weight=weights)  # divides by sum of cw_y = 8
    assert torchs.item() == pytest.approx((2 * 3 * L75 + L50 + L75) / 8)
    assert ours.item() == pytest.approx(torchs.item() * 8 / 4)


@pytest.mark.parametrize("spatial", [(7,), (4, 5), (3, 4, 2)])
def test_equals_torch_cross_entropy(spatial: tuple[int, ...]) -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, *spatial, generator=gen, dtype=torch.float64) * 3
    index = torch.randint(0, 4, (3, *spatial), generator=gen)
    soft = torch.softmax(torch.randn(3, 4, *spatial, generator=gen, dtype=torch.float64), dim=1)
    for target in (index, soft):
        expected = F.cross_entropy(logits, target)
        got = cross_entropy_loss(logits, target)
        assert got.item() == pytest.approx(expected.item(), rel=1e-12)
        per_voxel = F.cross_entropy(logits, target, reduction="none")
        per_sample = cross_entropy_loss(logits, target, reduction="none")
        torch.testing.assert_close(per_sample, per_voxel.flatten(1).mean(1))
        total = cross_entropy_loss(logits, target, reduction="sum")
        assert total.item() == pytest.approx(per_voxel.flatten(1).mean(1).sum().item(), rel=1e-12)


def test_distillation_soft_target_of_tempered_logits() -> None:
    # the loss has no temperature of its own: distillation divides both models' logits by T before it
    gen = torch.Generator().manual_seed(1)
    teacher, student = torch.randn(2, 2, 3, 5, 4, 4, generator=gen, dtype=torch.float64).unbind(0)
    temperature = 20.0
    soft = torch.softmax(teacher / temperature, dim=1)
    loss = CrossEntropyLoss()(student / temperature, soft)
    manual = -(soft * torch.log_softmax(student / temperature, dim=1)).sum(1).mean()
    assert loss.item() == pytest.approx(manual.item(), rel=1e-12)
    # the student matching the teacher minimises it: the loss is the teacher's entropy
    entropy = -(soft * soft.log()).sum(1).mean()
    assert cross_entropy_loss(teacher / temperature, soft).item() == pytest.approx(entropy.item(), rel=1e-12)
    with pytest.raises(TypeError, match="temperature"):
        cross_entropy_loss(student, soft, temperature=temperature)


def test_sigmoid_equals_manual_bce_with_class_weights() -> None:
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64)
    target = torch.rand(2, 3, 4, 4, generator=gen, dtype=torch.float64)
    weights = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    p = 1.0 / (1.0 + torch.exp(-logits))
    bce = -(target * p.log() + (1 - target) * (1 - p).log())
    expected = (bce * weights.view(1, 3, 1, 1)).mean(dim=(1, 2, 3))
    got = cross_entropy_loss(logits, target, activation="sigmoid", class_weights=weights, reduction="none")
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
def test_mask_equals_sub_volume(activation: str) -> None:
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(1, 3, 3, 4, 2, generator=gen, dtype=torch.float64)
    target = torch.randint(0, 3, (1, 3, 4, 2), generator=gen)
    mask = torch.rand(3, 4, 2, generator=gen) > 0.4
    masked = cross_entropy_loss(logits, target, activation=activation, voxel_weights=mask)
    sub = cross_entropy_loss(logits[0][:, mask][None], target[0][mask][None], activation=activation)
    assert masked.item() == pytest.approx(sub.item(), rel=1e-12)
    assert masked.item() != pytest.approx(cross_entropy_loss(logits, target, activation=activation).item(), rel=1e-6)


def test_all_zero_voxel_weights_give_zero_and_finite_gradient() -> None:
    logits, target = example()
    logits.requires_grad_(True)
    loss = cross_entropy_loss(logits, target, voxel_weights=torch.zeros(2, 2, dtype=torch.float64))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_per_sample_is_each_sample_alone() -> None:
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(3, 2, 5, 5, generator=gen, dtype=torch.float64)
    target = torch.randint(0, 2, (3, 5, 5), generator=gen)
    weights = torch.rand(3, 5, 5, generator=gen, dtype=torch.float64)
    per_sample = cross_entropy_loss(logits, target, voxel_weights=weights, reduction="none")
    alone = [
        cross_entropy_loss(logits[i : i + 1], target[i : i + 1], voxel_weights=weights[i : i + 1]) for i in range(3)
    ]
    torch.testing.assert_close(per_sample, torch.stack(alone))
    assert cross_entropy_loss(logits, target, voxel_weights=weights).item() == pytest.approx(per_sample.mean().item())
    assert cross_entropy_loss(logits, target, voxel_weights=weights, reduction="sum").item() == pytest.approx(
        per_sample.sum().item()
    )


def test_module_matches_function_and_keeps_class_weights_as_buffer() -> None:
    logits, target = example()
    module = CrossEntropyLoss(class_weights=[1.0, 3.0], reduction="none")
    assert "class_weights" in dict(module.named_buffers())
    torch.testing.assert_close(module.class_weights, torch.tensor([1.0, 3.0]))
    mask = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    expected = cross_entropy_loss(
        logits, target, class_weights=[1.0, 3.0], voxel_weights=mask, reduction="none"
    )
    torch.testing.assert_close(module(logits, target, mask), expected)
    assert module.double().class_weights.dtype == torch.float64
    assert "reduction='none'" in repr(module)
