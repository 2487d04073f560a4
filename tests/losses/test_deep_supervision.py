"""Deep-supervision weights (nnU-Net's, MONAI's) and the combined loss, against hand computations and MONAI's own
DeepSupervisionLoss."""

from __future__ import annotations

import pytest
import torch

from art_seg.losses import deep_supervision_loss, deep_supervision_weights, per_sample_loss
from art_seg.losses.deep_supervision import resize_target


@pytest.mark.parametrize(
    ("kind", "nb_heads", "expected"),
    [
        ("nnunet", 1, (1.0,)),
        ("nnunet", 2, (1.0, 0.0)),
        ("nnunet", 3, (2 / 3, 1 / 3, 0.0)),
        ("nnunet", 4, (4 / 7, 2 / 7, 1 / 7, 0.0)),
        ("monai", 1, (1.0,)),
        ("monai", 3, (1.0, 0.5, 0.25)),
        ("monai", 6, (1.0, 0.5, 0.25, 0.125, 0.0625, 0.0625)),
        (None, 3, (1.0, 0.0, 0.0)),
        ((0.5, 0.5), 2, (0.5, 0.5)),
    ],
)
def test_weights_by_hand(kind, nb_heads, expected):
    assert deep_supervision_weights(kind, nb_heads) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("kind", "nb_heads", "error", "match"),
    [
        ("deep", 2, ValueError, r"deep_supervision must be one of \('nnunet', 'monai'\), got 'deep'"),
        ((1.0,), 2, ValueError, "or 2 weights"),
        ((0.0, 0.0), 2, ValueError, "at least one positive"),
        ((1.0, -1.0), 2, ValueError, "deep_supervision weight must be >= 0"),
        ("nnunet", 0, ValueError, "nb_heads must be >= 1"),
    ],
)
def test_bad_weights(kind, nb_heads, error, match):
    with pytest.raises(error, match=match):
        deep_supervision_weights(kind, nb_heads)


def test_resize_target_is_nearest_exact_for_indices_maps_and_weights():
    target = torch.arange(16).reshape(1, 4, 4)
    small = resize_target(target, (2, 2))
    assert small.dtype == torch.long
    assert small.tolist() == [[[5, 7], [13, 15]]]  # nearest-exact: voxel floor((i + 0.5) * 2) = 2 i + 1
    maps = torch.rand(1, 3, 4, 4)
    torch.testing.assert_close(resize_target(maps, (2, 2)), maps[:, :, 1::2, 1::2])
    assert resize_target(target, (4, 4)) is target


def test_loss_is_the_weighted_sum_of_each_heads_loss_on_downsampled_targets():
    torch.manual_seed(0)
    heads = [torch.randn(2, 3, 4, 4, requires_grad=True), torch.randn(2, 3, 2, 2), torch.randn(2, 3, 1, 1)]
    target = torch.randint(0, 3, (2, 4, 4))
    loss_fn = per_sample_loss("dice_ce", activation="softmax")
    weights = deep_supervision_weights("nnunet", 3)
    value = deep_supervision_loss(heads, target, loss_fn, weights)
    expected = weights[0] * loss_fn(heads[0], target, None)
    expected = expected + weights[1] * loss_fn(heads[1], target[:, 1::2, 1::2], None)
    torch.testing.assert_close(value, expected)
    assert value.shape == (2,)
    (grad,) = torch.autograd.grad(value.sum(), heads[0])
    assert grad.abs().max() > 0
    voxel_weights = torch.rand(2, 4, 4)
    weighted = deep_supervision_loss(heads, target, loss_fn, weights, voxel_weights)
    torch.testing.assert_close(
        weighted,
        weights[0] * loss_fn(heads[0], target, voxel_weights)
        + weights[1] * loss_fn(heads[1], target[:, 1::2, 1::2], voxel_weights[:, 1::2, 1::2]),
    )
    with pytest.raises(ValueError, match="one weight per head"):
        deep_supervision_loss(heads, target, loss_fn, (1.0,))


def test_monai_weighting_equals_monai_deep_supervision_loss():
    monai = pytest.importorskip("monai")
    torch.manual_seed(1)
    heads = [torch.randn(1, 2, 4, 4, 4), torch.randn(1, 2, 4, 4, 4), torch.randn(1, 2, 2, 2, 2)]
    target = torch.randint(0, 2, (1, 4, 4, 4))
    dice_ce = monai.losses.DiceCELoss(to_onehot_y=True, softmax=True)
    expected = monai.losses.DeepSupervisionLoss(dice_ce, weight_mode="exp")(heads, target[:, None].float())
    loss_fn = per_sample_loss(lambda logits, t: dice_ce(logits, t[:, None].float()), activation="softmax")
    value = deep_supervision_loss(heads, target, loss_fn, deep_supervision_weights("monai", 3))
    torch.testing.assert_close(value.sum(), expected)
