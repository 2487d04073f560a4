"""Deeply supervised models (issue 13): nnU-Net-style lists of heads and MONAI DynUNet's stacked heads; the
full-resolution head drives prediction, gradients and attacks, fit weights every head (checked against a hand
computation); MONAI losses through monai_loss as estimator, training and attack losses."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from art_seg.attacks import IterativeFGSM
from art_seg.estimators import PyTorchSegmenter, SlidingWindow
from art_seg.losses import monai_loss, per_sample_loss

monai = pytest.importorskip("monai")

SHAPE = (8, 8, 8)


class ListHeads(torch.nn.Module):
    """Built the way nnU-Net builds its outputs: a list of heads at full, half and quarter resolution, full
    resolution first, in training and in eval mode alike (``decoder.deep_supervision`` on)."""

    def __init__(self, nb_classes: int = 3) -> None:
        super().__init__()
        self.body = torch.nn.Conv3d(2, 4, 3, padding=1)
        self.heads = torch.nn.ModuleList(torch.nn.Conv3d(4, nb_classes, 1) for _ in range(3))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = torch.tanh(self.body(x))
        return [head(torch.nn.functional.avg_pool3d(features, 2**i)) for i, head in enumerate(self.heads)]


class MainHead(torch.nn.Module):
    """The same network without deep supervision: its first head only."""

    def __init__(self, net: ListHeads) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[0]


def dynunet(deep_supr_num: int = 1) -> torch.nn.Module:
    """A tiny DynUNet with ``deep_supr_num + 2`` levels (for inputs 8^3, or (16, 8, 8) with two extra heads)."""
    torch.manual_seed(0)
    levels = deep_supr_num + 2
    return monai.networks.nets.DynUNet(
        3, 2, 3, kernel_size=[3] * levels, strides=[1] + [2] * (levels - 1), upsample_kernel_size=[2] * (levels - 1),
        filters=[4] * levels, norm_name="instance", deep_supervision=True, deep_supr_num=deep_supr_num,
    ).double()  # fmt: skip


def wrap(model, loss="dice_ce", **kwargs):
    return PyTorchSegmenter(
        model, loss, input_shape=(2, *SHAPE), nb_classes=3, device_type="cpu",
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1), **kwargs,
    )  # fmt: skip


def data(n=2, seed=0, shape=SHAPE):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 2, *shape)), rng.integers(0, 3, size=(n, *shape))


def sgd_step(model, loss):
    """Parameters after one SGD step (lr 0.1) on ``loss(model)``, on a copy."""
    model = copy.deepcopy(model)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss(model).backward()
    optimizer.step()
    return [p.detach() for p in model.parameters()]


# ---------------------------------------------------------------------------------------------- list of heads
def test_list_heads_use_the_full_resolution_head_for_prediction_gradients_and_windows():
    torch.manual_seed(0)
    net = ListHeads().double()
    deep, plain = wrap(net), wrap(MainHead(net))
    x, y = data()
    np.testing.assert_array_equal(deep.predict(x), plain.predict(x))
    np.testing.assert_array_equal(deep.predict_labels(x), plain.predict_labels(x))
    np.testing.assert_allclose(deep.loss_gradient(x, y), plain.loss_gradient(x, y), rtol=1e-12)
    np.testing.assert_allclose(deep.class_gradient(x, label=1), plain.class_gradient(x, label=1), rtol=1e-12)
    deep.set_params(sliding_window=SlidingWindow(4, overlap=0.5))
    plain.set_params(sliding_window=SlidingWindow(4, overlap=0.5))
    np.testing.assert_allclose(deep.loss_gradient(x, y), plain.loss_gradient(x, y), rtol=1e-12)
    heads = deep.training_heads(torch.from_numpy(x))
    assert [tuple(h.shape[2:]) for h in heads] == [(8, 8, 8), (4, 4, 4), (2, 2, 2)]
    assert deep.head_weights(heads) == pytest.approx((2 / 3, 1 / 3, 0.0))  # "auto": shrinking heads -> nnU-Net


def test_fit_on_list_heads_takes_nnunet_deep_supervision_loss_by_hand():
    torch.manual_seed(0)
    net = ListHeads().double()
    x, y = data()
    x_t, y_t = torch.from_numpy(x), torch.from_numpy(y)
    dice_ce = per_sample_loss("dice_ce", activation="softmax")

    def by_hand(model):  # nnU-Net: weights 1, 1/2, 0 normalised; targets downsampled by nearest-exact
        h0, h1, _ = model(x_t)
        return (2 / 3 * dice_ce(h0, y_t, None) + 1 / 3 * dice_ce(h1, y_t[:, 1::2, 1::2, 1::2], None)).mean()

    expected = sgd_step(net, by_hand)
    seg = wrap(net)
    net.train()
    torch.testing.assert_close(seg.training_loss(seg.training_heads(x_t), y_t).mean(), by_hand(net))
    seg.fit(x, y, batch_size=2, nb_epochs=1, shuffle=False)
    for p, q in zip(net.parameters(), expected):
        torch.testing.assert_close(p.detach(), q)
    assert net.training  # the mode it had


# ---------------------------------------------------------------------------------------------- MONAI DynUNet
def test_dynunet_predicts_and_attacks_in_eval_and_training_mode():
    net = dynunet()
    seg = wrap(net, clip_values=(-5.0, 5.0))
    x, y = data()
    x = np.clip(x, -5, 5)
    net.eval()
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(seg.predict(x, logits=True), expected, rtol=1e-12)
    train_grad = seg.loss_gradient(x, y, training_mode=True)  # the stacked heads (N, 2, K, *spatial)
    assert train_grad.shape == x.shape and np.abs(train_grad).max() > 0
    assert not net.training
    x_adv = IterativeFGSM(seg, eps=0.2, eps_step=0.1, max_iter=2).generate(x, y)
    assert np.abs(x_adv - x).max() <= 0.2 + 1e-9 and np.abs(x_adv - x).max() > 0


@pytest.mark.parametrize("deep_supr_num", [1, 2])
def test_fit_on_dynunet_takes_monai_deep_supervision_loss_by_hand(deep_supr_num):
    net = dynunet(deep_supr_num)
    x, y = data(shape=SHAPE if deep_supr_num == 1 else (16, 8, 8))
    x_t, y_t = torch.from_numpy(x), torch.from_numpy(y)
    dice_ce = per_sample_loss("dice_ce", activation="softmax")

    def by_hand(model):  # MONAI "exp": 1, 0.5, 0.25 for full-resolution heads, not normalised
        heads = model(x_t).unbind(1)
        return sum(0.5**i * dice_ce(h, y_t, None) for i, h in enumerate(heads)).mean()

    expected = sgd_step(net, by_hand)
    seg = wrap(net)
    net.train()
    heads = seg.training_heads(x_t)
    assert len(heads) == 1 + deep_supr_num and seg.head_weights(heads) == tuple(0.5**i for i in range(len(heads)))
    torch.testing.assert_close(seg.training_loss(heads, y_t).mean(), by_hand(net))
    net.eval()
    seg.fit(x, y, batch_size=2, nb_epochs=1, shuffle=False)
    for p, q in zip(net.parameters(), expected):
        torch.testing.assert_close(p.detach(), q)
    assert not net.training


def test_deep_supervision_option_is_validated_and_selects_the_weights():
    net = dynunet()
    heads = [torch.zeros(1, 3, 8, 8, 8)] * 2
    assert wrap(net, deep_supervision="nnunet").head_weights(heads) == (1.0, 0.0)
    assert wrap(net, deep_supervision=None).head_weights(heads) == (1.0, 0.0)
    assert wrap(net, deep_supervision=[0.3, 0.7]).head_weights(heads) == (0.3, 0.7)
    with pytest.raises(ValueError, match=r"deep_supervision must be one of \('auto', 'nnunet', 'monai', None\)"):
        wrap(net, deep_supervision="exp")
    with pytest.raises(ValueError, match="at least one positive"):
        wrap(net, deep_supervision=[0, 0])
    with pytest.raises(ValueError, match="deep_supervision must be one of .* or 3 weights"):
        wrap(net, deep_supervision=[1.0, 0.5]).head_weights([heads[0]] * 3)


@pytest.mark.parametrize(
    ("output", "match"),
    [
        (lambda x: {"out": x}, r"got dict"),
        (lambda x: [x[:, :3, ::2], x[:, :3]], r"got a list of \(1, 3, 4, 8, 8\), \(1, 3, 8, 8, 8\)"),
        (lambda x: x[:, :2], r"got a tensor of shape \(1, 2, 8, 8, 8\)"),
    ],
)
def test_an_output_that_is_neither_logits_nor_heads_says_what_to_do(output, match):
    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv3d(2, 3, 1)

        def forward(self, x):
            return output(self.conv(x))

    seg = wrap(Odd().double())
    with pytest.raises(ValueError, match="deep-supervision heads as a list or tuple.*" + match):
        seg.predict(np.zeros((1, 2, *SHAPE)))


# ---------------------------------------------------------------------------------------------- MONAI losses
def test_monai_dice_ce_as_estimator_loss_equals_autograd_of_the_monai_loss():
    torch.manual_seed(0)
    net = ListHeads().double()
    dice_ce = monai.losses.DiceCELoss(to_onehot_y=True, softmax=True)
    seg = wrap(MainHead(net), monai_loss(dice_ce))
    x, y = data()
    x_t = torch.tensor(x, requires_grad=True)
    total = sum(dice_ce(net(x_t[i : i + 1])[0], torch.from_numpy(y[i : i + 1, None]).double()) for i in range(2))
    (expected,) = torch.autograd.grad(total, x_t)
    np.testing.assert_allclose(seg.loss_gradient(x, y), expected.numpy(), rtol=1e-10)
    one_hot = np.eye(3)[y].transpose(0, 4, 1, 2, 3)  # maps pass as they are
    monai_one_hot = monai_loss(monai.losses.DiceCELoss(softmax=True))
    np.testing.assert_allclose(seg.loss_gradient(x, one_hot, loss=monai_one_hot), expected.numpy(), rtol=1e-10)
    before = seg.compute_loss(x, y, reduction="mean")
    seg.fit(x, y, batch_size=2, nb_epochs=3)
    assert seg.compute_loss(x, y, reduction="mean") < before
    x_adv = IterativeFGSM(seg, eps=0.3, eps_step=0.1, max_iter=2, loss=monai_loss(dice_ce)).generate(x, y)
    assert seg.compute_loss(x_adv, y, reduction="mean") > seg.compute_loss(x, y, reduction="mean")


def test_monai_adapter_rejects_what_is_not_a_loss():
    with pytest.raises(TypeError, match="loss must be a callable MONAI loss, got str"):
        monai_loss("dice")
