"""Trainers on deeply supervised networks (issue 13): MONAI's DynUNet (heads stacked on dim 1) and nnU-Net's
PlainConvUNet (a list of heads, full resolution first) train through AdversarialTrainer and DistillationTrainer
with the deep-supervision loss, checked against a hand computation of one SGD step: MONAI's
``DeepSupervisionLoss`` weights for DynUNet, nnU-Net's (1 / 2**i, lowest head 0, normalised; targets downsampled
by nearest-exact) for PlainConvUNet. Adversarial examples and the teacher's soft labels come from the main head."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from art_seg.attacks import FGSM
from art_seg.defences import AdversarialTrainer, DistillationTrainer, SegmentationTrainer
from art_seg.estimators import PyTorchSegmenter
from art_seg.losses import monai_loss

monai = pytest.importorskip("monai")

#: input sizes: DynUNet's heads at 8, 4; PlainConvUNet's at 16, 8, 4 (its bottleneck at 2)
SHAPES = {"dynunet": (8, 8, 8), "plain_conv_unet": (16, 16, 16)}
EPS, T, ALPHA, LR = 0.1, 2.0, 0.5, 0.1


def dynunet(seed: int = 0) -> torch.nn.Module:
    """A tiny MONAI DynUNet with one extra head: in training mode ``(N, 2, 3, 8, 8, 8)``, in eval mode the main."""
    torch.manual_seed(seed)
    return monai.networks.nets.DynUNet(
        3, 2, 3, kernel_size=[3, 3, 3], strides=[1, 2, 2], upsample_kernel_size=[2, 2], filters=[4, 8, 16],
        norm_name="instance", deep_supervision=True, deep_supr_num=1,
    ).double()  # fmt: skip


def plain_conv_unet(seed: int = 0) -> torch.nn.Module:
    """A tiny nnU-Net PlainConvUNet (as nnU-Net's ``get_network_from_plans`` builds it) returning heads at 16, 8 and
    4 voxels, in training and in eval mode."""
    unet = pytest.importorskip("dynamic_network_architectures.architectures.unet")
    torch.manual_seed(seed)
    return unet.PlainConvUNet(
        2, 4, [4, 8, 16, 16], torch.nn.Conv3d, 3, [1, 2, 2, 2], 1, 3, 1, conv_bias=True,
        norm_op=torch.nn.InstanceNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True}, nonlin=torch.nn.LeakyReLU,
        nonlin_kwargs={"inplace": True}, deep_supervision=True,
    ).double()  # fmt: skip


NETWORKS = {"dynunet": dynunet, "plain_conv_unet": plain_conv_unet}


def dice_ce() -> torch.nn.Module:
    return monai.losses.DiceCELoss(to_onehot_y=True, softmax=True)


def wrap(model: torch.nn.Module, name: str, **kwargs) -> PyTorchSegmenter:
    return PyTorchSegmenter(
        model, monai_loss(dice_ce()), input_shape=(2, *SHAPES[name]), nb_classes=3, device_type="cpu",
        optimizer=torch.optim.SGD(model.parameters(), lr=LR), **kwargs,
    )  # fmt: skip


def data(name: str, n: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Two volumes with a cube of class 1 around a cube of class 2."""
    side = SHAPES[name][0]
    rng = np.random.default_rng(0)
    y = np.zeros((n, side, side, side), np.int64)
    y[:, side // 4 : -side // 4, side // 4 : -side // 4, side // 4 : -side // 4] = 1
    y[:, 3 * side // 8 : -3 * side // 8, 3 * side // 8 : -3 * side // 8, 3 * side // 8 : -3 * side // 8] = 2
    return rng.normal(size=(n, 2, side, side, side)) + y[:, None], y


# ---------------------------------------------------------------------------------------------- by hand
def heads_of(name: str, model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    out = model(x)
    return list(out.unbind(1)) if name == "dynunet" else list(out)


def head_weights(name: str, nb_heads: int) -> list[float]:
    if name == "dynunet":  # MONAI's DeepSupervisionLoss(weight_mode="exp"), as its own code gives them
        return monai.losses.DeepSupervisionLoss(dice_ce(), weight_mode="exp").get_weights(nb_heads)
    weights = [1 / 2**i for i in range(nb_heads)]  # nnU-Net's nnUNetTrainer._build_loss
    weights[-1] = 0.0
    return [w / sum(weights) for w in weights]


def resized(target: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
    """nnU-Net's DownsampleSegForDSTransform (and MONAI's DeepSupervisionLoss): nearest-exact to the head's size."""
    values = target if target.ndim == head.ndim else target[:, None]
    return F.interpolate(values.double(), size=head.shape[2:], mode="nearest-exact")


def hard_loss(name: str, heads: list[torch.Tensor], y: torch.Tensor) -> torch.Tensor:
    """The deep-supervision Dice + CE of the heads, MONAI's DiceCELoss on the batch (the mean of per-sample ones)."""
    loss = dice_ce()
    return sum(w * loss(h, resized(y, h)) for w, h in zip(head_weights(name, len(heads)), heads) if w)


def step_by_hand(model: torch.nn.Module, objective) -> tuple[float, list[torch.Tensor]]:
    """The loss and the parameters after one SGD step on ``objective(model)`` (a copy, in training mode)."""
    model = copy.deepcopy(model).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    loss = objective(model)
    loss.backward()
    optimizer.step()
    return float(loss.detach()), [p.detach() for p in model.parameters()]


def fgsm_by_hand(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x + eps sign(grad) of each sample's loss on the main head, in eval mode."""
    model = copy.deepcopy(model).eval()
    x = x.clone().requires_grad_(True)
    main = model(x)
    main = main if isinstance(main, torch.Tensor) else main[0]
    total = sum(dice_ce()(main[i : i + 1], y[i : i + 1, None].double()) for i in range(len(x)))
    (grad,) = torch.autograd.grad(total, x)
    return (x + EPS * grad.sign()).detach()


def assert_same_step(trainer, model, expected: tuple[float, list[torch.Tensor]]) -> None:
    loss, parameters = expected
    assert trainer.history[0].loss == pytest.approx(loss, rel=1e-9)
    for p, q in zip(model.parameters(), parameters):
        torch.testing.assert_close(p.detach(), q)


# ---------------------------------------------------------------------------------------------- the tests
@pytest.mark.parametrize("name", list(NETWORKS))
def test_adversarial_training_takes_the_deep_supervision_loss_on_main_head_examples(name) -> None:
    net = NETWORKS[name]()
    x, y = data(name)
    x_t, y_t = torch.from_numpy(x), torch.from_numpy(y)
    assert len(heads_of(name, copy.deepcopy(net).train(), x_t)) == (2 if name == "dynunet" else 3)
    x_adv = fgsm_by_hand(net, x_t, y_t)  # made on the main head, as the attack does
    expected = step_by_hand(net, lambda m: hard_loss(name, heads_of(name, m, x_adv), y_t))
    seg = wrap(net, name)
    trainer = AdversarialTrainer(seg, FGSM(seg, eps=EPS), ratio=1.0, seed=0)
    trainer.fit(x, y, batch_size=2, nb_epochs=1)
    assert_same_step(trainer, net, expected)


@pytest.mark.parametrize("name", list(NETWORKS))
def test_distillation_applies_the_soft_term_to_every_head_with_the_teachers_main_head(name) -> None:
    # soft labels p = softmax(teacher main head / T); every student head i learns p resized to its size, with the
    # head weights of the hard term: (1 - alpha) T**2 sum_i w_i CE(h_i / T, p_i) + alpha sum_i w_i DiceCE(h_i, y_i)
    student, teacher = NETWORKS[name](seed=0), NETWORKS[name](seed=1)
    x, y = data(name)
    x_t, y_t = torch.from_numpy(x), torch.from_numpy(y)
    with torch.no_grad():
        main = copy.deepcopy(teacher).eval()(x_t)
        p = ((main if isinstance(main, torch.Tensor) else main[0]) / T).softmax(1)

    def objective(model):
        heads = heads_of(name, model, x_t)
        weights = head_weights(name, len(heads))
        soft = sum(w * F.cross_entropy(h / T, resized(p, h)) for w, h in zip(weights, heads) if w)
        return (1 - ALPHA) * T**2 * soft + ALPHA * hard_loss(name, heads, y_t)

    expected = step_by_hand(student, objective)
    trainer = DistillationTrainer(wrap(student, name), wrap(teacher, name), temperature=T, alpha=ALPHA, seed=0)
    trainer.fit(x, y, batch_size=2, nb_epochs=1)
    assert trainer.teacher_history == []  # a given teacher is taken as trained
    assert_same_step(trainer, student, expected)


def test_the_teacher_trains_at_temperature_on_every_head() -> None:
    net = plain_conv_unet()
    x, y = data("plain_conv_unet")
    x_t, y_t = torch.from_numpy(x), torch.from_numpy(y)
    tempered = lambda m: [h / T for h in heads_of("plain_conv_unet", m, x_t)]  # noqa: E731
    expected = step_by_hand(net, lambda m: hard_loss("plain_conv_unet", tempered(m), y_t))
    student = wrap(net, "plain_conv_unet")
    trainer = DistillationTrainer(student, temperature=T, teacher_epochs=1, seed=0)
    trainer.fit(x, y, batch_size=2, nb_epochs=0)
    assert_same_step(trainer._teacher_trainer, trainer.teacher.model, expected)


def test_deep_supervision_none_trains_the_main_head_only_and_validates_on_it() -> None:
    net = dynunet()
    x, y = data("dynunet")
    x_t, y_t = torch.from_numpy(x), torch.from_numpy(y)
    expected = step_by_hand(net, lambda m: dice_ce()(heads_of("dynunet", m, x_t)[0], y_t[:, None].double()))
    seg = wrap(net, "dynunet", deep_supervision=None)
    trainer = SegmentationTrainer(seg, seed=0, restore_best=False)
    trainer.fit(x, y, batch_size=2, nb_epochs=1, validation_data=(x, y))
    assert_same_step(trainer, net, expected)
    prediction = seg.predict_labels(x)
    truth = [(prediction == k, y == k) for k in (1, 2)]
    by_hand = np.mean([2 * (p[i] & t[i]).sum() / (p[i].sum() + t[i].sum()) for p, t in truth for i in range(2)])
    assert trainer.history[0].val_dice == pytest.approx(by_hand, abs=1e-12)


def test_distillation_copies_a_trained_dynunet_as_teacher_without_touching_it() -> None:
    # after a training forward DynUNet keeps its heads' outputs, non-leaf tensors, in self.heads: copy.deepcopy
    # refused them, so DistillationTrainer(teacher=None) failed on every trained DynUNet
    net = dynunet()
    x, y = data("dynunet")
    student = wrap(net, "dynunet")
    student.fit(x, y, batch_size=2, nb_epochs=1)
    heads = list(net.heads)
    assert heads and not any(h.is_leaf for h in heads)  # what deepcopy refuses
    with pytest.raises(RuntimeError, match="graph leaves"):
        copy.deepcopy(net)
    reference = dynunet()  # the trained weights, rebuilt from the state dict
    reference.load_state_dict(net.state_dict())
    weights = [p.detach().clone() for p in net.parameters()]

    trainer = DistillationTrainer(student, temperature=T, teacher_epochs=1, seed=0)
    teacher = trainer.teacher.model
    assert teacher is not net and all(a is b for a, b in zip(net.heads, heads))  # the student's model untouched
    assert not any(h.requires_grad for h in teacher.heads)
    for a, b in zip(teacher.heads, heads):
        torch.testing.assert_close(a, b.detach())
    for p, q in zip(teacher.parameters(), weights):
        torch.testing.assert_close(p.detach(), q)

    x_t, y_t = torch.from_numpy(x), torch.from_numpy(y)
    tempered = lambda m: [h / T for h in heads_of("dynunet", m, x_t)]  # noqa: E731
    expected = step_by_hand(reference, lambda m: hard_loss("dynunet", tempered(m), y_t))
    trainer.fit(x, y, batch_size=2, nb_epochs=1)
    assert_same_step(trainer._teacher_trainer, teacher, expected)  # the copy trains as its weights say
    assert len(trainer.history) == 1 and np.isfinite(trainer.history[0].loss)
