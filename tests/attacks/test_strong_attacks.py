"""SegPGD, CosPGD, APGD and the worst-case ensemble: losses by hand, budgets, Dice drops, ensemble minimality."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from art.attacks.evasion import ProjectedGradientDescent

from art_seg.attacks import (
    FGSM,
    AutoPGDSegmentation,
    CosPGD,
    IterativeFGSM,
    SegPGD,
    TargetedIterativeFGSM,
    WorstCaseEnsemble,
)
from art_seg.attacks.apgd import dlr_loss, masked_ce_loss
from art_seg.attacks.cospgd import cospgd_loss
from art_seg.attacks.sea_losses import js_loss, masked_spherical_loss
from art_seg.attacks.segpgd import segpgd_loss
from art_seg.losses import per_sample_loss
from tests.helpers import TASK_CLASSES, assert_gradients_per_sample, mean_dice, sample_dice

EPS = 0.4


def two_voxels() -> tuple[torch.Tensor, torch.Tensor]:
    # (1, 3, 2): voxel 0 right (argmax 0 = label 0), voxel 1 wrong (argmax 1, label 2)
    logits = torch.tensor([[[2.0, 0.0], [0.5, 3.0], [-1.0, 1.0]]], dtype=torch.float64)
    return logits, torch.tensor([[0, 2]])


def test_segpgd_loss_weighs_correct_and_fooled_voxels_by_hand() -> None:
    logits, target = two_voxels()
    ce = F.cross_entropy(logits, target, reduction="none")[0]
    for w in (0.0, 0.25, 0.45):
        expected = ((1 - w) * ce[0] + w * ce[1]) / 2
        assert segpgd_loss(logits, target, weight=w).item() == pytest.approx(expected.item())
    weights = torch.tensor([[1.0, 3.0]], dtype=torch.float64)
    expected = (0.75 * ce[0] + 3 * 0.25 * ce[1]) / 4
    assert segpgd_loss(logits, target, weight=0.25, voxel_weights=weights).item() == pytest.approx(expected.item())


def test_cospgd_loss_scales_by_cosine_by_hand() -> None:
    logits, target = two_voxels()
    p = logits.softmax(1)[0]
    ce = F.cross_entropy(logits, target, reduction="none")[0]
    cos = torch.stack([p[0, 0] / p[:, 0].norm(), p[2, 1] / p[:, 1].norm()])
    assert cospgd_loss(logits, target).item() == pytest.approx((cos * ce).mean().item())
    assert cospgd_loss(logits, target, targeted=True).item() == pytest.approx(((1 - cos) * ce).mean().item())
    # the scale is detached: the gradient is that of cos-weighted CE with cos held constant
    leaf = logits.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(cospgd_loss(leaf, target), leaf)
    (expected,) = torch.autograd.grad((cos * F.cross_entropy(leaf, target, reduction="none")[0]).mean(), leaf)
    torch.testing.assert_close(grad, expected)


def test_apgd_losses_by_hand_and_schedule() -> None:
    logits, target = two_voxels()
    ce = F.cross_entropy(logits, target, reduction="none")[0]
    assert masked_ce_loss(logits, target).item() == pytest.approx(ce[0].item() / 2)
    # voxel 0: -(2 - 0.5) / (2 - (-1)) = -0.5; voxel 1: -(1 - 3) / (3 - 0) = 2/3
    assert dlr_loss(logits, target).item() == pytest.approx((-0.5 + 2 / 3) / 2)


def test_apgd_checkpoints_follow_croce_and_hein(trained_segmenter) -> None:
    # p = 0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 of N = 100 iterations
    assert AutoPGDSegmentation(trained_segmenter, max_iter=100).checkpoints() == [22, 41, 57, 70, 80, 87, 93, 99]


def attacks(segmenter, iterations: int = 5) -> dict:
    step = EPS / 4
    return {
        "i-FGSM": IterativeFGSM(segmenter, eps=EPS, eps_step=step, max_iter=iterations),
        "SegPGD": SegPGD(segmenter, eps=EPS, eps_step=step, max_iter=iterations),
        "CosPGD": CosPGD(segmenter, eps=EPS, eps_step=step, max_iter=iterations),
        "APGD-CE": AutoPGDSegmentation(segmenter, eps=EPS, max_iter=iterations),
        "APGD-DLR": AutoPGDSegmentation(segmenter, eps=EPS, max_iter=iterations, loss="dlr", random_start=True, seed=1),
        **sea_members(segmenter, iterations),
    }


def sea_members(segmenter, iterations: int) -> dict:
    """APGD with SEA's losses and options (tracked loss, progressive radius), as SEA runs them."""
    return {
        "APGD-JS": AutoPGDSegmentation(segmenter, eps=EPS, max_iter=iterations, loss="js"),
        "APGD-masked-spherical": AutoPGDSegmentation(
            segmenter, eps=EPS, max_iter=iterations, loss="masked_spherical", track_loss="spherical"
        ),
        "APGD-SegPGD": AutoPGDSegmentation(
            segmenter, eps=EPS, max_iter=iterations, loss="segpgd", track_loss="ce", random_start=True, seed=2,
            progressive_radius=True,
        ),
    }  # fmt: skip


def test_strong_attacks_stay_in_budget_and_lower_dice(trained_segmenter, blob_data, clean_dice) -> None:
    x, y = blob_data
    x_copy = x.copy()
    mask = np.ones_like(x, dtype=bool)
    mask[:, :, :3] = False
    low, high = trained_segmenter.clip_values
    for name, attack in attacks(trained_segmenter).items():
        x_adv = attack.generate(x, y, mask=mask)
        assert np.abs(x_adv - x).max() <= EPS + 1e-6, name
        assert x_adv.min() >= low - 1e-6 and x_adv.max() <= high + 1e-6, name
        np.testing.assert_array_equal(x_adv[~mask], x[~mask])
        dice = mean_dice(trained_segmenter.predict(x_adv).argmax(1), y, TASK_CLASSES)
        assert dice < clean_dice - 0.2, (name, dice)
    np.testing.assert_array_equal(x, x_copy)


def test_targeted_cospgd_moves_toward_the_target(trained_segmenter, blob_data) -> None:
    x, y = blob_data
    target = np.zeros_like(y)
    before = (trained_segmenter.predict(x).argmax(1) == 0).mean()
    x_adv = CosPGD(trained_segmenter, eps=EPS, eps_step=EPS / 4, max_iter=5, targeted=True).generate(x, target)
    after = (trained_segmenter.predict(x_adv).argmax(1) == 0).mean()
    assert after > before + 0.02


def test_ensemble_keeps_the_worst_case_per_sample(trained_segmenter, blob_data) -> None:
    x, y = blob_data

    def members() -> list:
        art_pgd = ProjectedGradientDescent(trained_segmenter, eps=EPS, eps_step=EPS / 4, max_iter=3, verbose=False)
        return [*attacks(trained_segmenter, iterations=3).values(), art_pgd]

    ensemble = WorstCaseEnsemble(members())
    x_adv = ensemble.generate(x, y)
    assert ensemble.scores_.shape == (len(ensemble.attacks), len(x))
    ours = sample_dice(trained_segmenter, x_adv, y)
    for member in members():  # fresh members: a seeded random start replays the ensemble's first call
        theirs = sample_dice(trained_segmenter, member.generate(x, y), y)
        assert np.all(ours <= theirs + 1e-12), type(member).__name__
    np.testing.assert_allclose(ours, ensemble.scores_.min(axis=0))
    np.testing.assert_array_equal(ensemble.chosen_, ensemble.scores_.argmin(axis=0))
    assert torch.is_tensor(ensemble.generate(torch.as_tensor(x), torch.as_tensor(y)))


def test_bad_arguments(trained_segmenter) -> None:
    from tests.estimators.test_pytorch_segmenter import tiny_segmenter

    other = tiny_segmenter("ce")
    with pytest.raises(ValueError, match="built on another estimator"):
        WorstCaseEnsemble([FGSM(trained_segmenter), FGSM(other)])
    with pytest.raises(ValueError, match="all targeted or all untargeted"):
        WorstCaseEnsemble([FGSM(trained_segmenter), TargetedIterativeFGSM(trained_segmenter)])
    with pytest.raises(ValueError, match="non-empty list"):
        WorstCaseEnsemble([])
    with pytest.raises(ValueError, match="y is required"):
        WorstCaseEnsemble([FGSM(trained_segmenter)]).generate(np.zeros((1, 2, 12, 12, 12), np.float32))
    with pytest.raises(ValueError, match="loss must be one of"):
        AutoPGDSegmentation(trained_segmenter, loss="hinge")
    own = AutoPGDSegmentation(trained_segmenter, eps=0.2, max_iter=2, loss="own")
    assert (
        np.abs(own.generate(np.zeros((1, 2, 12, 12, 12), np.float32), np.zeros((1, 12, 12, 12), int))).max()
        <= 0.2 + 1e-6
    )
    with pytest.raises(ValueError, match="max_iter must be >= 1"):
        SegPGD(trained_segmenter, max_iter=0)
    with pytest.raises(TypeError, match="targeted must be bool"):
        CosPGD(trained_segmenter, targeted="yes")


# ---------------------------------------------------------------------------------------------- two classes (12.2)
def test_dlr_of_two_classes_is_the_logit_margin_by_hand() -> None:
    # (1, 2, 2): voxel 0 right by 1.5 (label 0), voxel 1 wrong by 2 (label 0, class 1 wins)
    logits = torch.tensor([[[2.0, 1.0], [0.5, 3.0]]], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([[0, 0]])
    value = dlr_loss(logits, target)
    assert value.item() == pytest.approx((-1.5 + 2.0) / 2)  # the ratio alone would be (-1 + 1) / 2 = 0 here
    (grad,) = torch.autograd.grad(value, logits)
    torch.testing.assert_close(grad, torch.tensor([[[-0.5, -0.5], [0.5, 0.5]]], dtype=torch.float64))
    weights = torch.tensor([[1.0, 3.0]], dtype=torch.float64)
    assert dlr_loss(logits, target, voxel_weights=weights).item() == pytest.approx((-1.5 + 3 * 2.0) / 4)


def test_apgd_dlr_lowers_dice_of_a_two_class_model(binary_segmenter, binary_task) -> None:
    x, y = binary_task
    clean = mean_dice(binary_segmenter.predict(x).argmax(1), y, 2)
    assert clean > 0.8, clean
    attack = AutoPGDSegmentation(binary_segmenter, eps=EPS, max_iter=5, loss="dlr")
    x_adv = attack.generate(x, y)
    assert np.abs(x_adv - x).max() <= EPS + 1e-6
    attacked = mean_dice(binary_segmenter.predict(x_adv).argmax(1), y, 2)
    assert attacked < clean - 0.3, (clean, attacked)


# ---------------------------------------------------------------------------------------------- sigmoid forms (13)
def two_regions() -> tuple[torch.Tensor, torch.Tensor]:
    # (1, 2, 2): region 0 on at both voxels, logits 1 (right) and -2 (wrong); region 1 off, logits -0.5 (right)
    # and 0.3 (wrong)
    logits = torch.tensor([[[1.0, -2.0], [-0.5, 0.3]]], dtype=torch.float64)
    return logits, torch.tensor([[[1.0, 1.0], [0.0, 0.0]]], dtype=torch.float64)


def test_sigmoid_losses_by_hand() -> None:
    logits, target = two_regions()
    z, t = logits[0], target[0]
    bce = torch.log1p(torch.exp(-(2 * t - 1) * z))  # binary cross-entropy of each voxel-channel
    correct = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    for w in (0.0, 0.3):
        expected = (((1 - w) * correct + w * (1 - correct)) * bce).mean()
        assert segpgd_loss(logits, target, weight=w, activation="sigmoid").item() == pytest.approx(expected.item())
    weights = torch.tensor([[1.0, 3.0]], dtype=torch.float64)
    per_voxel = ((0.7 * correct + 0.3 * (1 - correct)) * bce).mean(0)
    expected = (per_voxel[0] + 3 * per_voxel[1]) / 4
    got = segpgd_loss(logits, target, weight=0.3, activation="sigmoid", voxel_weights=weights)
    assert got.item() == pytest.approx(expected.item())

    p = torch.sigmoid(z)
    cosine = torch.where(t > 0.5, p, 1 - p) / torch.sqrt(p**2 + (1 - p) ** 2)  # cos((1 - p, p), (1 - t, t))
    assert cospgd_loss(logits, target, activation="sigmoid").item() == pytest.approx((cosine * bce).mean().item())
    targeted = cospgd_loss(logits, target, targeted=True, activation="sigmoid")
    assert targeted.item() == pytest.approx(((1 - cosine) * bce).mean().item())

    assert masked_ce_loss(logits, target, activation="sigmoid").item() == pytest.approx((correct * bce).mean().item())
    # per-channel margin (1 - 2 t) z: -1, 2, -0.5, 0.3
    assert dlr_loss(logits, target, activation="sigmoid").item() == pytest.approx(0.8 / 4)


def test_sigmoid_forms_accept_bool_and_integer_multi_hot_targets() -> None:
    logits, target = two_regions()
    for loss in (partial(segpgd_loss, weight=0.3), cospgd_loss, masked_ce_loss, dlr_loss):
        expected = loss(logits, target, activation="sigmoid")
        for other in (target > 0.5, target.long()):
            assert torch.equal(loss(logits, other, activation="sigmoid"), expected)


def test_softmax_forms_are_unchanged_bit_for_bit() -> None:
    """Outputs of the softmax SegPGD, CosPGD and APGD before the sigmoid forms (commit 757c0e8), on a tiny
    float64 model; regenerate with ``np.savez_compressed(path, **{name: attack.generate(x, y, mask=mask,
    voxel_weights=weights)})`` over :func:`softmax_reference_case`'s attacks."""
    saved = np.load(Path(__file__).parent / "data" / "softmax_forms_757c0e8.npz")
    x, y, mask, weights, attacks = softmax_reference_case()
    assert sorted(attacks) == sorted(saved.files)
    for name, attack in attacks.items():
        x_adv = attack.generate(x, y, mask=mask, voxel_weights=weights)
        assert np.array_equal(x_adv, saved[name]), (name, np.abs(x_adv - saved[name]).max())


def softmax_reference_case() -> tuple:
    from art_seg.estimators import PyTorchSegmenter

    torch.manual_seed(0)
    conv = torch.nn.Conv3d
    model = torch.nn.Sequential(conv(2, 4, 3, padding=1), torch.nn.Tanh(), conv(4, 3, 1)).double()
    estimator = PyTorchSegmenter(
        model, "ce", input_shape=(2, 4, 5, 3), nb_classes=3, clip_values=(-1.0, 1.5), device_type="cpu"
    )
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 1.5, size=(2, 2, 4, 5, 3))
    y = rng.integers(0, 3, size=(2, 4, 5, 3))
    mask = (rng.uniform(size=(2, 1, 4, 5, 3)) > 0.3).astype(np.float64)
    weights = rng.uniform(size=(2, 4, 5, 3))
    attacks = {
        "segpgd": SegPGD(estimator, eps=0.3, eps_step=0.1, max_iter=4),
        "segpgd_l2": SegPGD(estimator, norm=2, eps=2.0, eps_step=0.7, max_iter=4),
        "cospgd": CosPGD(estimator, eps=0.3, eps_step=0.1, max_iter=4),
        "cospgd_targeted": CosPGD(estimator, eps=0.3, eps_step=0.1, max_iter=4, targeted=True),
        "apgd_ce": AutoPGDSegmentation(estimator, eps=0.3, max_iter=6),
        "apgd_masked_ce": AutoPGDSegmentation(estimator, eps=0.3, max_iter=6, loss="masked_ce"),
        "apgd_dlr": AutoPGDSegmentation(estimator, eps=0.3, max_iter=6, loss="dlr", random_start=True, seed=3),
    }
    return x, y, mask, weights, attacks


def test_sigmoid_forms_lower_dice_at_least_as_much_as_ifgsm(region_segmenter, region_task) -> None:
    # same budget, step and iterations; i-FGSM on the same loss basis (binary cross-entropy per region channel)
    x, y = region_task

    def dice(x_at: np.ndarray) -> float:
        return float(sample_dice(region_segmenter, x_at, y).mean())

    clean = dice(x)
    assert clean > 0.85, clean
    step, iterations = EPS / 4, 5
    figures = {"i-FGSM": dice(IterativeFGSM(region_segmenter, eps=EPS, eps_step=step, max_iter=iterations, loss="ce")
                               .generate(x, y))}  # fmt: skip
    for name, attack in {
        "SegPGD": SegPGD(region_segmenter, eps=EPS, eps_step=step, max_iter=iterations),
        "CosPGD": CosPGD(region_segmenter, eps=EPS, eps_step=step, max_iter=iterations),
        "APGD-CE": AutoPGDSegmentation(region_segmenter, eps=EPS, max_iter=iterations),
        "APGD-DLR": AutoPGDSegmentation(region_segmenter, eps=EPS, max_iter=iterations, loss="dlr"),
    }.items():
        figures[name] = dice(attack.generate(x, y))
    assert figures["i-FGSM"] < clean - 0.2, (clean, figures)
    for name, value in figures.items():
        assert value <= figures["i-FGSM"], (clean, figures)


ATTACK_LOSSES = {
    "js": js_loss,
    "masked_spherical": masked_spherical_loss,
    "masked_spherical_targeted": partial(masked_spherical_loss, targeted=True),
    "spherical": partial(masked_spherical_loss, masked=False),
    "segpgd": partial(segpgd_loss, weight=0.3),
    "cospgd": cospgd_loss,
    "cospgd_targeted": partial(cospgd_loss, targeted=True),
    "masked_ce": masked_ce_loss,
    "dlr": dlr_loss,
}


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("spatial", [(4, 5), (3, 4, 2)], ids=["2d", "3d"])
@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
@pytest.mark.parametrize("name", list(ATTACK_LOSSES))
def test_attack_losses_are_batched_with_each_sample_its_own_gradient(name, activation, spatial, n) -> None:
    gen = torch.Generator().manual_seed(n)
    logits = torch.randn(n, 3, *spatial, generator=gen, dtype=torch.float64) * 2
    target = torch.randint(0, 3, (n, *spatial), generator=gen)
    weights = torch.rand(n, *spatial, generator=gen, dtype=torch.float64)
    loss_fn = per_sample_loss(partial(ATTACK_LOSSES[name], activation=activation), activation=activation)
    assert_gradients_per_sample(loss_fn, logits, target)
    assert_gradients_per_sample(loss_fn, logits, target, weights)
    mean = ATTACK_LOSSES[name](logits, target, activation=activation, voxel_weights=weights)
    torch.testing.assert_close(loss_fn(logits, target, weights).mean(), mean)


# ---------------------------------------------------------------------------------------------- SEA's losses (16)
def js_by_definition(p: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
    """JS(p, q) = (KL(p || m) + KL(q || m)) / 2, m = (p + q) / 2, over the class axis 0 (0 log 0 = 0)."""
    m = (p + onehot) / 2
    return (torch.xlogy(p, p / m).sum(0) + torch.xlogy(onehot, onehot / m).sum(0)) / 2


def test_js_loss_by_hand() -> None:
    logits, target = two_voxels()  # (1, 3, 2), labels 0 and 2
    p = logits.softmax(1)[0]
    onehot = F.one_hot(target[0], 3).T.to(p.dtype)
    expected = js_by_definition(p, onehot)
    assert js_loss(logits, target).item() == pytest.approx(expected.mean().item(), rel=1e-12)
    torch.testing.assert_close(js_loss(logits, target, reduction="none"), expected.mean().reshape(1))
    weights = torch.tensor([[1.0, 3.0]], dtype=torch.float64)
    weighted = (expected[0] + 3 * expected[1]) / 4
    assert js_loss(logits, target, voxel_weights=weights).item() == pytest.approx(weighted.item(), rel=1e-12)
    # bounds: 0 at a one-hot prediction of the label, log 2 when the label has probability 0
    assert js_loss(torch.tensor([[[60.0], [0.0]]], dtype=torch.float64), torch.tensor([[0]])).item() < 1e-12
    assert js_loss(torch.tensor([[[-60.0], [0.0]]], dtype=torch.float64), torch.tensor([[0]])).item() == (
        pytest.approx(np.log(2.0))
    )

    logits, target = two_regions()  # sigmoid: each channel the distribution (1 - s, s)
    s = torch.sigmoid(logits[0])
    per_channel = js_by_definition(torch.stack([1 - s, s]), torch.stack([1 - target[0], target[0]]))
    assert js_loss(logits, target, activation="sigmoid").item() == pytest.approx(per_channel.mean().item(), rel=1e-12)


def test_masked_spherical_loss_by_hand() -> None:
    logits, target = two_voxels()  # voxel 0 right (class 0), voxel 1 wrong (label 2, argmax 1)
    z = logits[0]
    normalised = torch.stack([z[0, 0] / z[:, 0].norm(), z[2, 1] / z[:, 1].norm()])  # the label's normalised logit
    assert masked_spherical_loss(logits, target).item() == pytest.approx(-normalised[0].item() / 2)
    unmasked = masked_spherical_loss(logits, target, masked=False)
    assert unmasked.item() == pytest.approx(-normalised.mean().item())
    # targeted at class 1 everywhere: voxel 1 is already there, so only voxel 0 counts, with its class-1 logit
    to_one = masked_spherical_loss(logits, torch.tensor([[1, 1]]), targeted=True)
    assert to_one.item() == pytest.approx(-(z[1, 0] / z[:, 0].norm()).item() / 2)

    logits, target = two_regions()  # channel logits 1 (right), -2 (wrong); -0.5 (right), 0.3 (wrong)
    z, t = logits[0], target[0]
    signed = (2 * t - 1) * z / z.norm(dim=0)  # normalised over the voxel's two region channels
    correct = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    got = masked_spherical_loss(logits, target, activation="sigmoid")
    assert got.item() == pytest.approx(-(correct * signed).mean().item())
    # sigmoid: the norm is held constant, so the gradient is that of the signed logit over the norm
    leaf = logits.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(masked_spherical_loss(leaf, target, activation="sigmoid", masked=False), leaf)
    torch.testing.assert_close(grad[0], -(2 * t - 1) / z.norm(dim=0) / 4)


@pytest.mark.parametrize(
    ("loss", "activation"),
    [(js_loss, "softmax"), (js_loss, "sigmoid"), (masked_spherical_loss, "softmax"),
     (partial(masked_spherical_loss, masked=False), "softmax"),
     (partial(masked_spherical_loss, targeted=True), "softmax")],
    ids=["js", "js_sigmoid", "masked_spherical", "spherical", "masked_spherical_targeted"],
)  # fmt: skip
def test_sea_losses_pass_gradcheck(loss, activation: str) -> None:
    """The sigmoid spherical loss holds its norm constant (detached), which gradcheck's finite differences do not:
    its gradient is checked by hand in :func:`test_masked_spherical_loss_by_hand`."""
    gen = torch.Generator().manual_seed(0)
    logits = (torch.randn(2, 3, 3, 2, generator=gen, dtype=torch.float64) * 2).requires_grad_(True)
    target = torch.randint(0, 3, (2, 3, 2), generator=gen)
    weights = torch.rand(2, 3, 2, generator=gen, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda z: loss(z, target, activation=activation, voxel_weights=weights), logits)
    assert torch.autograd.gradcheck(lambda z: loss(z, target, activation=activation, reduction="none"), logits)


def test_apgd_progressive_radius_follows_sea() -> None:
    from tests.estimators.test_pytorch_segmenter import tiny_segmenter

    segmenter = tiny_segmenter("ce")
    assert AutoPGDSegmentation(segmenter, max_iter=300, progressive_radius=True).stages() == [
        (90, 2.0), (90, 1.5), (120, 1.0)
    ]  # fmt: skip
    assert AutoPGDSegmentation(segmenter, max_iter=3, progressive_radius=True).stages() == [(3, 1.0)]
    assert AutoPGDSegmentation(segmenter, max_iter=7).stages() == [(7, 1.0)]
    assert AutoPGDSegmentation(segmenter, max_iter=10).checkpoints(4) == [1, 2, 3, 4]


def test_targeted_apgd_moves_toward_the_target(trained_segmenter, blob_data) -> None:
    x, y = blob_data
    target = np.zeros_like(y)
    before = (trained_segmenter.predict(x).argmax(1) == 0).mean()
    for loss in ("js", "masked_spherical", "ce"):
        attack = AutoPGDSegmentation(trained_segmenter, eps=EPS, max_iter=5, loss=loss, targeted=True)
        after = (trained_segmenter.predict(attack.generate(x, target)).argmax(1) == 0).mean()
        assert after > before + 0.02, loss
    for loss in ("masked_ce", "dlr", "segpgd"):
        with pytest.raises(ValueError, match=f"loss='{loss}' has no targeted form"):
            AutoPGDSegmentation(trained_segmenter, loss=loss, targeted=True)
    with pytest.raises(ValueError, match="track_loss must be one of"):
        AutoPGDSegmentation(trained_segmenter, track_loss="hinge")
    with pytest.raises(TypeError, match="progressive_radius must be bool"):
        AutoPGDSegmentation(trained_segmenter, progressive_radius=1)


def test_sea_losses_of_sigmoid_regions_lower_dice(region_segmenter, region_task) -> None:
    x, y = region_task
    clean = float(sample_dice(region_segmenter, x, y).mean())
    for name, attack in sea_members(region_segmenter, 5).items():
        x_adv = attack.generate(x, y)
        assert np.abs(x_adv - x).max() <= EPS + 1e-6, name
        dice = float(sample_dice(region_segmenter, x_adv, y).mean())
        assert dice < clean - 0.2, (name, clean, dice)


def test_sea_loss_docstring_examples_run() -> None:
    import doctest

    import art_seg.attacks.sea_losses

    result = doctest.testmod(art_seg.attacks.sea_losses, extraglobs={"torch": torch})
    assert result.attempted > 0 and result.failed == 0


def recorded_iterates(segmenter, monkeypatch) -> list[np.ndarray]:
    """Every point whose logits APGD's loop asks for (``predict(..., logits=True)``), in order."""
    seen, original = [], segmenter.predict

    def predict(x, *args, logits=False, **kwargs):
        if logits:
            seen.append(torch.as_tensor(x).detach().cpu().numpy().copy())
        return original(x, *args, logits=logits, **kwargs)

    monkeypatch.setattr(segmenter, "predict", predict)
    return seen


@pytest.mark.parametrize("targeted", [False, True])
def test_apgd_select_dice_returns_the_visited_iterate_of_lowest_dice(
    trained_segmenter, blob_data, monkeypatch, targeted
) -> None:
    x, y = blob_data
    y_attack = np.zeros_like(y) if targeted else y
    kwargs = dict(eps=EPS, max_iter=6, loss="js", random_start=True, targeted=targeted, batch_size=len(x))
    by_loss = AutoPGDSegmentation(trained_segmenter, seed=3, **kwargs).generate(x, y_attack)
    seen = recorded_iterates(trained_segmenter, monkeypatch)
    by_dice = AutoPGDSegmentation(trained_segmenter, seed=3, select="dice", **kwargs).generate(x, y_attack)
    monkeypatch.undo()
    # the same seed walks the same path (the step control follows the loss): both results were visited
    scores = np.stack([sample_dice(trained_segmenter, point, y_attack) for point in seen])
    assert len(seen) >= kwargs["max_iter"] + 1
    ours = sample_dice(trained_segmenter, by_dice, y_attack)
    theirs = sample_dice(trained_segmenter, by_loss, y_attack)
    worst = scores.max(0) if targeted else scores.min(0)
    np.testing.assert_allclose(ours, worst, rtol=1e-6)
    assert np.all(ours >= theirs - 1e-12) if targeted else np.all(ours <= theirs + 1e-12)
    for i in range(len(x)):  # the returned point is one of the visited ones
        assert any(np.array_equal(by_dice[i], point[i]) for point in seen), i
    assert np.abs(by_dice - x).max() <= EPS + 1e-6


def test_apgd_select_dice_with_progressive_radius_returns_the_last_stages_lowest_dice_iterate(
    trained_segmenter, blob_data, monkeypatch
) -> None:
    x, y = blob_data
    attack = AutoPGDSegmentation(
        trained_segmenter, eps=EPS, max_iter=10, loss="segpgd", track_loss="ce", random_start=True, seed=1,
        progressive_radius=True, select="dice", batch_size=len(x),
    )  # fmt: skip
    seen, stage_starts, run = recorded_iterates(trained_segmenter, monkeypatch), [], attack._run

    def recorded_run(x_clean, x_start, *args):
        stage_starts.append(len(seen))
        return run(x_clean, x_start, *args)

    monkeypatch.setattr(attack, "_run", recorded_run)
    x_adv = attack.generate(x, y)
    monkeypatch.undo()
    assert len(stage_starts) == len(attack.stages()) == 3
    last_stage = np.stack([sample_dice(trained_segmenter, p, y) for p in seen[stage_starts[-1] :]])
    np.testing.assert_allclose(sample_dice(trained_segmenter, x_adv, y), last_stage.min(0), rtol=1e-6)
    assert np.abs(x_adv - x).max() <= EPS + 1e-6  # the earlier stages' wider balls do not bound the result
    with pytest.raises(ValueError, match="select must be one of"):
        AutoPGDSegmentation(trained_segmenter, select="accuracy")


def test_apgd_evaluates_one_gradient_per_iteration(trained_segmenter, blob_data, monkeypatch) -> None:
    """Croce and Hein's budget: the start point's gradient and every iterate's but the last; restarts reuse the
    best point's stored gradient. So SEA's fast preset costs exactly a quarter of the full one."""
    x, y = blob_data
    calls, original = [], trained_segmenter.loss_gradient

    def loss_gradient(x_at, *args, **kwargs):
        calls.append(len(x_at))
        return original(x_at, *args, **kwargs)

    monkeypatch.setattr(trained_segmenter, "loss_gradient", loss_gradient)
    for iterations, progressive in ((8, False), (10, True), (1, False)):
        calls.clear()
        attack = AutoPGDSegmentation(
            trained_segmenter, eps=EPS, max_iter=iterations, progressive_radius=progressive, batch_size=len(x)
        )
        attack.generate(x, y)
        assert calls == [len(x)] * iterations, (iterations, progressive)
        np.testing.assert_array_equal(attack.iterations_, iterations)
