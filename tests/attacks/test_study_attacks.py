"""FGSM, i-FGSM and ti-FGSM: effect on a trained model, equivalence with ART, bounds, masks, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from art.attacks.evasion import BasicIterativeMethod, FastGradientMethod, ProjectedGradientDescent
from art.exceptions import EstimatorError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from art_seg.attacks import FGSM, AutoPGDSegmentation, CosPGD, IterativeFGSM, SegPGD, TargetedIterativeFGSM
from art_seg.attacks.targets import erase_labels
from art_seg.estimators import PyTorchSegmenter
from tests.helpers import TASK_CLASSES, mean_dice


def ce_twin(segmenter: PyTorchSegmenter) -> PyTorchSegmenter:
    """The same model wrapped with cross-entropy, for comparisons with ART's attacks."""
    return PyTorchSegmenter(
        segmenter.model,
        "ce",
        input_shape=segmenter.input_shape,
        nb_classes=segmenter.nb_classes,
        clip_values=segmenter.clip_values,
        device_type="cpu",
    )


# ---------------------------------------------------------------------------------------------- effect
@pytest.mark.parametrize("labels", ["given", "predicted"])
def test_fgsm_and_ifgsm_lower_dice(labels, trained_segmenter, blob_data, clean_dice):
    x, y = blob_data
    dice = {}
    for name, attack in {
        "fgsm": FGSM(trained_segmenter, eps=0.8),
        "ifgsm": IterativeFGSM(trained_segmenter, eps=0.8, eps_step=0.16, max_iter=8),
    }.items():
        x_adv = attack.generate(x, y if labels == "given" else None)
        dice[name] = mean_dice(trained_segmenter.predict(x_adv).argmax(1), y, TASK_CLASSES)
    assert dice["fgsm"] < clean_dice - 0.25, dice
    assert dice["ifgsm"] < dice["fgsm"] - 0.1 and dice["ifgsm"] < clean_dice - 0.5, dice


def test_ti_fgsm_erases_the_tumour(trained_segmenter, blob_data):
    x, y = blob_data
    target = erase_labels(y, labels=[1, 2])
    predicted_before = trained_segmenter.predict(x).argmax(1)
    attack = TargetedIterativeFGSM(trained_segmenter, eps=0.5, eps_step=0.1, max_iter=10)
    x_adv = attack.generate(x, target)
    predicted_after = trained_segmenter.predict(x_adv).argmax(1)

    volume_before, volume_after = (predicted_before > 0).sum(), (predicted_after > 0).sum()
    assert volume_before > 500
    assert volume_after <= 0.1 * volume_before, (volume_before, volume_after)

    # Dice against the target map rises: the target is all background, so that is the background class's Dice
    def background_dice(predicted):
        agree = ((predicted == 0) & (target == 0)).sum()
        return 2 * agree / ((predicted == 0).sum() + (target == 0).sum())

    before, after = background_dice(predicted_before), background_dice(predicted_after)
    assert after > 0.999 and (1 - after) <= 0.1 * (1 - before), (before, after)
    np.testing.assert_array_equal(attack.iterations_, 10)


def test_ti_fgsm_early_stop_bookkeeping(trained_segmenter, blob_data):
    x, y = blob_data
    target = erase_labels(y, labels=[1, 2])
    attack = TargetedIterativeFGSM(
        trained_segmenter, eps=0.5, eps_step=0.1, max_iter=30, early_stop_dice=0.999, batch_size=4
    )
    x_adv = attack.generate(x, target)
    used = attack.iterations_
    assert used.shape == (6,) and (used >= 1).all() and (used < 30).all(), used
    assert len(set(used.tolist())) > 1  # samples stop independently
    predicted = trained_segmenter.predict(x_adv).argmax(1)
    for i in range(6):  # each sample stopped because it met the target
        assert mean_dice(predicted[i : i + 1], target[i : i + 1], TASK_CLASSES) >= 0.999


# ---------------------------------------------------------------------------------------------- ART equivalence
@pytest.mark.parametrize("norm,eps", [(np.inf, 0.3), (2, 20.0)])
def test_fgsm_equals_art_fast_gradient_method(norm, eps, trained_segmenter, blob_data):
    estimator = ce_twin(trained_segmenter)
    x, y = blob_data
    ours = FGSM(estimator, norm=norm, eps=eps).generate(x, y)
    art = FastGradientMethod(estimator, norm=norm, eps=eps, eps_step=eps).generate(x, y)
    np.testing.assert_allclose(ours, art, rtol=0, atol=2e-6)
    assert np.abs(ours - x).max() > 0.1


@pytest.mark.parametrize("norm,eps,step", [(np.inf, 0.4, 0.1), (2, 20.0, 6.0)])
def test_ifgsm_equals_art_basic_iterative_method(norm, eps, step, trained_segmenter, blob_data):
    estimator = ce_twin(trained_segmenter)
    x, y = blob_data
    ours = IterativeFGSM(estimator, norm=norm, eps=eps, eps_step=step, max_iter=5, batch_size=3).generate(x, y)
    if norm == np.inf:
        art_attack = BasicIterativeMethod(estimator, eps=eps, eps_step=step, max_iter=5, verbose=False)
    else:
        art_attack = ProjectedGradientDescent(estimator, norm=2, eps=eps, eps_step=step, max_iter=5, verbose=False)
    art = art_attack.generate(x, y)
    np.testing.assert_allclose(ours, art, rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------------- bounds (property)
def tiny_estimator(nb_channels: int, spatial: tuple[int, ...], clip: bool, activation: str = "softmax"):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d if len(spatial) == 2 else torch.nn.Conv3d
    model = torch.nn.Sequential(conv(nb_channels, 4, 3, padding=1), torch.nn.Tanh(), conv(4, 3, 1))
    return PyTorchSegmenter(
        model,
        "dice_ce",
        input_shape=(nb_channels, *spatial),
        nb_classes=3,
        activation=activation,
        clip_values=(-1.0, 1.5) if clip else None,
        device_type="cpu",
    )


def bounded_attack(kind: str, estimator: PyTorchSegmenter, norm, eps, iterations: int, random_start: bool, seed: int):
    """One of the L-inf / L2 attacks the property test covers, with ``eps_step = 0.4 eps``."""
    if kind.startswith("apgd-"):
        return AutoPGDSegmentation(
            estimator, norm=norm, eps=eps, max_iter=iterations, loss=kind[5:], random_start=random_start, seed=seed
        )
    attack = {"i-fgsm": IterativeFGSM, "segpgd": SegPGD, "cospgd": CosPGD}[kind]
    return attack(
        estimator, norm=norm, eps=eps, eps_step=0.4 * eps, max_iter=iterations, random_start=random_start, seed=seed
    )


@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
@pytest.mark.parametrize("kind", ["i-fgsm", "segpgd", "cospgd", "apgd-ce", "apgd-masked_ce", "apgd-dlr"])
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spatial=st.sampled_from([(5, 6), (4, 4, 3), (7, 3)]),
    nb_channels=st.integers(1, 3),
    norm=st.sampled_from([np.inf, 2]),
    per_channel=st.booleans(),
    eps_scale=st.floats(0.01, 2.0),
    iterations=st.integers(1, 4),
    random_start=st.booleans(),
    masked=st.booleans(),
    clip=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_perturbation_stays_in_budget_box_and_mask(
    kind, activation, spatial, nb_channels, norm, per_channel, eps_scale, iterations, random_start, masked, clip, seed
):
    # softmax models get class indices, sigmoid (region) models multi-hot maps of 3 overlapping regions
    estimator = tiny_estimator(nb_channels, spatial, clip, activation)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.5, size=(3, nb_channels, *spatial)).astype(np.float32)
    if activation == "softmax":
        y = rng.integers(0, 3, size=(3, *spatial))
    else:
        y = rng.integers(0, 2, size=(3, 3, *spatial)).astype(np.float32)
    eps = eps_scale * (np.linspace(0.5, 1.5, nb_channels) if per_channel else 1.0)
    mask = (rng.uniform(size=(3, 1, *spatial)) > 0.4).astype(np.float32) if masked else None
    x_before, y_before = x.copy(), y.copy()
    mask_before = None if mask is None else mask.copy()
    attack = bounded_attack(kind, estimator, norm, eps, iterations, random_start, seed)

    x_adv = attack.generate(x, y, mask=mask)

    delta = (x_adv - x).astype(np.float64)
    budget = np.broadcast_to(np.reshape(eps, (-1,) + (1,) * len(spatial)), x.shape[1:])
    if norm == np.inf:
        assert (np.abs(delta) <= budget[None] * (1 + 1e-6) + 1e-7).all()
    elif per_channel:
        per_channel_norm = np.sqrt((delta**2).reshape(3, nb_channels, -1).sum(-1))
        assert (per_channel_norm <= eps[None] * (1 + 1e-5) + 1e-6).all()
    else:
        assert (np.linalg.norm(delta.reshape(3, -1), axis=1) <= eps * (1 + 1e-5) + 1e-6).all()
    if clip:
        assert x_adv.min() >= -1.0 and x_adv.max() <= 1.5
    if mask is not None:
        outside = np.broadcast_to(mask == 0, x.shape)
        assert np.array_equal(x_adv[outside].view(np.uint32), x[outside].view(np.uint32))  # bit for bit
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(y, y_before)
    if mask is not None:
        np.testing.assert_array_equal(mask, mask_before)


# ---------------------------------------------------------------------------------------------- kinds, seeds, weights
def test_tensors_in_tensors_out_and_numpy_in_numpy_out(trained_segmenter, blob_data):
    x, y = blob_data
    attack = IterativeFGSM(trained_segmenter, eps=0.2, eps_step=0.1, max_iter=2)
    from_numpy = attack.generate(x, y)
    from_torch = attack.generate(torch.from_numpy(x), torch.from_numpy(y))
    assert isinstance(from_numpy, np.ndarray) and from_numpy.dtype == np.float32
    assert isinstance(from_torch, torch.Tensor) and from_torch.device == trained_segmenter.device
    np.testing.assert_array_equal(from_torch.numpy(), from_numpy)
    as_float64 = attack.generate(x.astype(np.float64), y)
    assert as_float64.dtype == np.float64


def test_random_start_is_reproducible_with_a_seed(trained_segmenter, blob_data):
    x, y = blob_data

    def run(seed):
        attack = IterativeFGSM(trained_segmenter, eps=0.3, eps_step=0.1, max_iter=1, random_start=True, seed=seed)
        return attack.generate(x, y)

    np.testing.assert_array_equal(run(7), run(7))
    assert np.abs(run(7) - run(8)).max() > 0.01


def test_a_seeded_attack_advances_its_generator_across_calls(trained_segmenter, blob_data):
    # inside a trainer every batch of every epoch must get a new random start, and a fresh attack with the
    # same seed must replay the same sequence of starts
    x, y = blob_data[0][:2], blob_data[1][:2]

    def attack():
        return IterativeFGSM(trained_segmenter, eps=0.3, eps_step=0.1, max_iter=1, random_start=True, seed=7)

    first = attack()
    calls = [first.generate(x, y) for _ in range(3)]
    assert np.abs(calls[0] - calls[1]).max() > 0.01 and np.abs(calls[1] - calls[2]).max() > 0.01
    replay = attack()
    for expected in calls:
        np.testing.assert_array_equal(replay.generate(x, y), expected)
    first.set_params(seed=7)  # setting the seed restarts the sequence
    np.testing.assert_array_equal(first.generate(x, y), calls[0])


@pytest.mark.parametrize("seed", [None, 3])
def test_attacks_without_randomness_leave_torchs_global_generator_alone(seed, trained_segmenter, blob_data):
    x, y = blob_data[0][:2], blob_data[1][:2]
    for attack in (
        FGSM(trained_segmenter, eps=0.2),
        IterativeFGSM(trained_segmenter, eps=0.2, eps_step=0.1, max_iter=2, seed=seed),
        TargetedIterativeFGSM(trained_segmenter, eps=0.2, eps_step=0.1, max_iter=2, seed=seed),
        IterativeFGSM(trained_segmenter, eps=0.2, eps_step=0.1, max_iter=1, random_start=True, seed=3),
    ):
        if attack.seed is None and getattr(attack, "random_start", False):
            continue
        state = torch.random.get_rng_state()
        attack.generate(x, y)
        assert torch.equal(torch.random.get_rng_state(), state), type(attack).__name__


def test_an_unseeded_random_start_follows_torch_manual_seed(trained_segmenter, blob_data):
    x, y = blob_data[0][:2], blob_data[1][:2]
    attack = IterativeFGSM(trained_segmenter, eps=0.3, eps_step=0.1, max_iter=1, random_start=True)
    torch.manual_seed(11)
    first = attack.generate(x, y)
    torch.manual_seed(11)
    np.testing.assert_array_equal(attack.generate(x, y), first)
    assert np.abs(attack.generate(x, y) - first).max() > 0.01


def test_voxel_weights_restrict_which_voxels_the_loss_counts(trained_segmenter, blob_data):
    x, y = blob_data
    attack = IterativeFGSM(trained_segmenter, norm=2, eps=5.0, eps_step=2.0, max_iter=3)
    nothing_counts = attack.generate(x, y, voxel_weights=np.zeros(x.shape[2:], np.float32))
    np.testing.assert_array_equal(nothing_counts, x)  # zero loss, zero gradient, no step
    tumour_only = attack.generate(x, y, voxel_weights=(y > 0).astype(np.float32))
    everything = attack.generate(x, y)
    assert np.abs(tumour_only - everything).max() > 0.01


def test_fgsm_honours_the_perturbation_mask_unlike_art(trained_segmenter, blob_data):
    x, y = blob_data
    brain = np.zeros((1, 1, *x.shape[2:]), np.float32)
    brain[..., 2:10, 2:10, 2:10] = 1
    x_adv = FGSM(trained_segmenter, eps=0.3).generate(x, y, mask=brain)
    outside = np.broadcast_to(brain == 0, x.shape)
    np.testing.assert_array_equal(x_adv[outside], x[outside])
    np.testing.assert_allclose(np.abs(x_adv - x)[~outside].max(), 0.3, rtol=1e-6)


def test_per_channel_eps_bounds_each_modality(trained_segmenter, blob_data):
    x, y = blob_data
    x_adv = IterativeFGSM(trained_segmenter, eps=[0.1, 0.4], eps_step=[0.05, 0.2], max_iter=3).generate(x, y)
    per_channel = np.abs(x_adv - x).max(axis=(0, 2, 3, 4))
    np.testing.assert_allclose(per_channel, [0.1, 0.4], rtol=1e-5)


def test_l2_budgets_share_one_geometry(trained_segmenter):
    # an L2 step normalised per channel (per-channel eps_step) inside a ball over the whole sample (scalar eps),
    # or the reverse, is the steepest step of neither ball: both must be scalars or both per channel
    message = r"norm=2 needs eps and eps_step of the same shape .* got eps of shape \({}\) and eps_step of shape \({}\)"
    with pytest.raises(ValueError, match=message.format("", "2,")):
        IterativeFGSM(trained_segmenter, norm=2, eps=1.0, eps_step=[0.2, 0.3])
    with pytest.raises(ValueError, match=message.format("2,", "")):
        IterativeFGSM(trained_segmenter, norm=2, eps=[1.0, 2.0], eps_step=0.2)
    linf = IterativeFGSM(trained_segmenter, eps=[0.1, 0.4], eps_step=0.05)  # L-inf: every voxel is its own axis
    with pytest.raises(ValueError, match=message.format("2,", "")):
        linf.set_params(norm=2)
    IterativeFGSM(trained_segmenter, norm=2, eps=[1.0, 2.0], eps_step=[0.2, 0.4])


def test_attack_loss_can_differ_from_the_estimators(trained_segmenter, blob_data):
    x, y = blob_data
    with_ce = FGSM(trained_segmenter, eps=0.2, loss="ce").generate(x, y)
    with_ce_twin = FGSM(ce_twin(trained_segmenter), eps=0.2).generate(x, y)
    np.testing.assert_array_equal(with_ce, with_ce_twin)
    assert np.abs(with_ce - FGSM(trained_segmenter, eps=0.2).generate(x, y)).max() > 0


# ---------------------------------------------------------------------------------------------- ART contracts, errors
def test_declared_requirements_reject_a_classifier():
    from art.estimators.classification import PyTorchClassifier

    model = torch.nn.Linear(4, 2)
    classifier = PyTorchClassifier(model, torch.nn.CrossEntropyLoss(), input_shape=(4,), nb_classes=2)
    with pytest.raises(EstimatorError):
        IterativeFGSM(classifier)


def test_set_params_validates(trained_segmenter):
    attack = IterativeFGSM(trained_segmenter, eps=0.2, eps_step=0.1)
    attack.set_params(eps=0.4, max_iter=3)
    assert attack.eps == 0.4 and attack.max_iter == 3
    with pytest.raises(ValueError, match="eps must be >= 0, got -1"):
        attack.set_params(eps=-1)
    with pytest.raises(ValueError, match='The attribute "eps_step" cannot be set'):
        FGSM(trained_segmenter).set_params(eps_step=0.1)


def test_bad_parameters_and_inputs_raise_clear_errors(trained_segmenter, blob_data):
    x, y = blob_data
    cases = [
        (lambda: IterativeFGSM(trained_segmenter, eps=-0.1), ValueError, r"eps must be >= 0, got -0.1"),
        (lambda: IterativeFGSM(trained_segmenter, max_iter=0), ValueError, "max_iter must be >= 1, got 0"),
        (lambda: IterativeFGSM(trained_segmenter, norm=1), ValueError, r"norm must be np.inf, 'inf' or 2, got 1"),
        (
            lambda: IterativeFGSM(trained_segmenter, eps=[0.1, 0.2, 0.3]),
            ValueError,
            r"eps must be a scalar or 2 per-channel values, got shape \(3,\)",
        ),
        (
            lambda: IterativeFGSM(trained_segmenter, eps=0.1, eps_step=0),
            ValueError,
            "eps_step must be > 0 where eps > 0",
        ),
        (lambda: IterativeFGSM(trained_segmenter, loss="focal"), ValueError, "loss must be one of"),
        (lambda: IterativeFGSM(trained_segmenter, batch_size=0), ValueError, "batch_size must be >= 1, got 0"),
        (
            lambda: TargetedIterativeFGSM(trained_segmenter, early_stop_dice=1.5),
            ValueError,
            "early_stop_dice must be <= 1.0, got 1.5",
        ),
        (
            lambda: TargetedIterativeFGSM(trained_segmenter).generate(x),
            ValueError,
            "is targeted: pass the target label map as y",
        ),
        (
            lambda: TargetedIterativeFGSM(trained_segmenter).generate(x, y[:, :5]),
            ValueError,
            r"y must be class indices of shape \(6, 12, 12, 12\)",
        ),
        (
            lambda: TargetedIterativeFGSM(trained_segmenter).generate(x, y + 3),
            ValueError,
            r"y holds labels \[3, 4, 5\] outside \[0, 3\)",
        ),
        (
            lambda: FGSM(trained_segmenter).generate(x, y, mask=np.ones((2, 5))),
            ValueError,
            r"mask of shape \(2, 5\) does not broadcast to x's shape \(6, 2, 12, 12, 12\)",
        ),
        (lambda: FGSM(trained_segmenter).generate(x + 10, y), ValueError, "outside the estimator's clip_values"),
        (lambda: FGSM(trained_segmenter).generate(x[:, :1], y), ValueError, r"x has 1 channel\(s\)"),
    ]
    for make, error, message in cases:
        with pytest.raises(error, match=message):
            make()
    with pytest.warns(UserWarning, match=r"eps_step 0.5 exceeds eps 0.1"):
        IterativeFGSM(trained_segmenter, eps=0.1, eps_step=0.5)
