"""Tests shared by every loss in art_seg.losses: target forms, gradcheck, errors, properties, devices, docs."""

from __future__ import annotations

import doctest
from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import art_seg.losses
from art_seg.losses import (
    CrossEntropyLoss,
    DiceCELoss,
    GeneralizedDiceLoss,
    LogitMarginLoss,
    SoftDiceLoss,
    cross_entropy,
    cross_entropy_loss,
    dice,
    dice_ce,
    dice_ce_loss,
    generalized_dice,
    generalized_dice_loss,
    logit_margin_loss,
    soft_dice_loss,
)
from art_seg.losses.registry import per_sample_loss
from tests.helpers import assert_gradients_per_sample

FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "ce": cross_entropy_loss,
    "dice": soft_dice_loss,
    "generalized_dice": generalized_dice_loss,
    "dice_ce": dice_ce_loss,
    "margin": logit_margin_loss,
}
MODULES: dict[str, type[torch.nn.Module]] = {
    "ce": CrossEntropyLoss,
    "dice": SoftDiceLoss,
    "generalized_dice": GeneralizedDiceLoss,
    "dice_ce": DiceCELoss,
    "margin": LogitMarginLoss,
}
NAMES = list(FUNCTIONS)
DICE_NAMES = ["dice", "generalized_dice", "dice_ce"]
CLASS_WEIGHTED = ["ce", "dice", "dice_ce"]
CUDA = pytest.param(
    "cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
)


def random_inputs(
    n: int = 2, k: int = 3, spatial: tuple[int, ...] = (4, 4), seed: int = 0, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, k, *spatial, generator=gen, dtype=torch.float64) * 2).to(dtype)
    target = torch.randint(0, k, (n, *spatial), generator=gen)
    weights = torch.rand(n, *spatial, generator=gen, dtype=torch.float64).to(dtype)
    return logits, target, weights


# --------------------------------------------------------------------------------------- target forms


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
@pytest.mark.parametrize("name", NAMES)
def test_index_and_onehot_targets_agree(name: str, activation: str, dtype: torch.dtype) -> None:
    logits, target, weights = random_inputs(spatial=(3, 4, 2), dtype=dtype)
    onehot = torch.stack([(target == k) for k in range(3)], dim=1).to(dtype)
    kwargs = {"activation": activation, "voxel_weights": weights, "reduction": "none"}
    from_index = FUNCTIONS[name](logits, target, **kwargs)
    from_onehot = FUNCTIONS[name](logits, onehot, **kwargs)
    assert from_index.shape == (2,)
    assert from_index.dtype == dtype
    torch.testing.assert_close(from_index, from_onehot)


@pytest.mark.parametrize("int_dtype", [torch.uint8, torch.int16, torch.int32])
@pytest.mark.parametrize("name", NAMES)
def test_any_integer_dtype_is_class_indices(name: str, int_dtype: torch.dtype) -> None:
    logits, target, _ = random_inputs()
    expected = FUNCTIONS[name](logits, target, reduction="none")
    torch.testing.assert_close(FUNCTIONS[name](logits, target.to(int_dtype), reduction="none"), expected)


@pytest.mark.parametrize("name", NAMES)
def test_voxel_weights_broadcast_from_spatial_shape(name: str) -> None:
    logits, target, weights = random_inputs()
    mask = weights[0] > 0.5
    expected = FUNCTIONS[name](logits, target, voxel_weights=mask.expand(2, 4, 4).double(), reduction="none")
    torch.testing.assert_close(FUNCTIONS[name](logits, target, voxel_weights=mask, reduction="none"), expected)
    assert not torch.allclose(FUNCTIONS[name](logits, target, reduction="none"), expected)


# ------------------------------------------------------------------------------------------- gradcheck

GRAD_CASES = [
    ("ce", {}),
    ("ce", {"class_weights": [1.0, 2.0, 0.5]}),
    ("dice", {}),
    ("dice", {"include_background": False, "class_weights": [1.0, 2.0, 0.5]}),
    ("dice", {"batch": True}),
    ("generalized_dice", {}),
    ("generalized_dice", {"weight_type": "simple", "batch": True}),
    ("dice_ce", {}),
    ("dice_ce", {"include_background": False, "lambda_dice": 0.7}),
]


@pytest.mark.parametrize("spatial", [(3, 3), (2, 3, 2)], ids=["2d", "3d"])
@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
@pytest.mark.parametrize("name, kwargs", GRAD_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(GRAD_CASES)])
def test_gradcheck(name: str, kwargs: dict, activation: str, spatial: tuple[int, ...]) -> None:
    logits, target, weights = random_inputs(spatial=spatial, seed=3)
    logits.requires_grad_(True)

    def loss(z: torch.Tensor) -> torch.Tensor:
        return FUNCTIONS[name](z, target, activation=activation, voxel_weights=weights, **kwargs)

    assert torch.autograd.gradcheck(loss, (logits,), eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", NAMES)
def test_gradcheck_soft_target(name: str) -> None:
    logits, _, weights = random_inputs(spatial=(3, 2, 2), seed=4)
    soft = torch.softmax(torch.randn_like(logits), dim=1)
    logits.requires_grad_(True)
    loss = FUNCTIONS[name]
    assert torch.autograd.gradcheck(lambda z: loss(z, soft, voxel_weights=weights), (logits,), eps=1e-6, atol=1e-8)


# ---------------------------------------------------------------------------------------------- errors

BAD_OPTIONS = [
    # (losses, kwargs, exception, message pattern)
    (NAMES, {"activation": "relu"}, ValueError, r"activation must be one of .*'relu'"),
    (NAMES, {"reduction": "avg"}, ValueError, r"reduction must be one of .*'avg'"),
    (["ce"], {"temperature": 2.0}, TypeError, r"temperature"),  # only DistillationTrainer tempers logits
    (DICE_NAMES, {"smooth_nr": -1e-5}, ValueError, r"smooth_nr must be >= 0"),
    (DICE_NAMES, {"smooth_dr": 0.0}, ValueError, r"smooth_dr must be > 0, got 0.0"),
    (DICE_NAMES, {"include_background": "no"}, TypeError, r"include_background must be bool"),
    (["dice", "generalized_dice"], {"batch": 1}, TypeError, r"batch must be bool"),
    (["dice", "generalized_dice"], {"batch": True, "reduction": "none"}, ValueError, r"undefined when batch=True"),
    (["generalized_dice"], {"weight_type": "cubic"}, ValueError, r"weight_type must be one of .*'cubic'"),
    (["dice_ce"], {"lambda_dice": -1.0}, ValueError, r"lambda_dice must be >= 0, got -1.0"),
    (["dice_ce"], {"lambda_ce": -0.5}, ValueError, r"lambda_ce must be >= 0, got -0.5"),
    (["dice_ce"], {"lambda_dice": 0.0, "lambda_ce": 0}, ValueError, r"lambda_dice and lambda_ce must not both be 0"),
    (CLASS_WEIGHTED, {"class_weights": [1.0, -1.0, 1.0]}, ValueError, r"class_weights must be finite and >= 0"),
    (CLASS_WEIGHTED, {"class_weights": [0.0, 0.0, 0.0]}, ValueError, r"class_weights .*at least one > 0"),
    (CLASS_WEIGHTED, {"class_weights": torch.tensor([1.0, float("nan"), 1.0])}, ValueError, r"must be finite"),
    (CLASS_WEIGHTED, {"class_weights": [1.0, float("nan"), 1.0]}, ValueError, r"class_weights entry must be finite"),
    (CLASS_WEIGHTED, {"class_weights": torch.ones(3, 1)}, ValueError, r"class_weights must be 1-D .*\(3, 1\)"),
    (CLASS_WEIGHTED, {"class_weights": "abc"}, TypeError, r"class_weights must be a 1-D tensor or a sequence"),
    (CLASS_WEIGHTED, {"class_weights": torch.ones(3, dtype=torch.bool)}, TypeError, r"class_weights must be a real"),
    (
        ["dice", "dice_ce"],
        {"class_weights": [1.0, 0.0, 0.0], "include_background": False},
        ValueError,
        r"class_weights .*include_background=False",
    ),
]
OPTION_CASES = [(name, kwargs, exc, match) for names, kwargs, exc, match in BAD_OPTIONS for name in names]
OPTION_IDS = [f"{name}-{'-'.join(kwargs)}-{i}" for i, (name, kwargs, _, _) in enumerate(OPTION_CASES)]


@pytest.mark.parametrize("name, kwargs, exc, match", OPTION_CASES, ids=OPTION_IDS)
def test_bad_option_raises_in_function(name: str, kwargs: dict, exc: type[Exception], match: str) -> None:
    logits, target, _ = random_inputs()
    with pytest.raises(exc, match=match):
        FUNCTIONS[name](logits, target, **kwargs)


@pytest.mark.parametrize("name, kwargs, exc, match", OPTION_CASES, ids=OPTION_IDS)
def test_bad_option_raises_at_construction(name: str, kwargs: dict, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        MODULES[name](**kwargs)


def test_module_checks_class_weight_values_held_on_any_device() -> None:
    # the functional skips value checks for accelerator tensors (no sync); modules check once at construction
    with pytest.raises(ValueError, match="class_weights"):
        SoftDiceLoss(class_weights=torch.tensor([-1.0, 1.0]))


def good() -> tuple[torch.Tensor, torch.Tensor]:
    logits, target, _ = random_inputs()
    return logits, target


LOGITS = good()[0]
TARGET = good()[1]
BAD_INPUTS = [
    # (losses, logits, target, extra kwargs, exception, message pattern)
    (NAMES, LOGITS.numpy(), TARGET, {}, TypeError, r"logits must be Tensor"),
    (NAMES, LOGITS.long(), TARGET, {}, TypeError, r"logits must be a floating tensor, got dtype torch.int64"),
    (NAMES, LOGITS[:, :, 0, 0], TARGET[:, 0, 0], {}, ValueError, r"logits must have shape .*got shape \(2, 3\)"),
    (NAMES, LOGITS[..., None, None, None], TARGET, {}, ValueError, r"logits must have shape .*\(2, 3, 4, 4, 1, 1, 1\)"),
    (NAMES, LOGITS[:, :, :0], TARGET[:, :0], {}, ValueError, r"logits must not have an empty axis"),
    (NAMES, LOGITS, TARGET.tolist(), {}, TypeError, r"target must be Tensor"),
    (NAMES, LOGITS, TARGET.bool(), {}, TypeError, r"target must be an integer .*torch.bool"),
    (NAMES, LOGITS, TARGET[:, None], {}, ValueError, r"target of integer .*got shape \(2, 1, 4, 4\)"),
    (NAMES, LOGITS, TARGET[:, :3], {}, ValueError, r"target of integer dtype .*got shape \(2, 3, 4\)"),
    (NAMES, LOGITS, TARGET.double(), {}, ValueError, r"target of floating .*got shape \(2, 4, 4\)"),
    (NAMES, LOGITS, torch.rand(2, 2, 4, 4), {}, ValueError, r"target of floating dtype .*got shape \(2, 2, 4, 4\)"),
    (NAMES, LOGITS, TARGET, {"voxel_weights": torch.ones(3, 3)}, ValueError, r"voxel_weights of shape \(3, 3\)"),
    (NAMES, LOGITS, TARGET, {"voxel_weights": torch.ones(2, 3, 4, 4)}, ValueError, r"of shape \(2, 3, 4, 4\)"),
    (NAMES, LOGITS, TARGET, {"voxel_weights": np.ones((2, 4, 4))}, TypeError, r"voxel_weights must be Tensor"),
    (NAMES, LOGITS, TARGET, {"voxel_weights": torch.ones(2, 4, 4, dtype=torch.complex64)}, TypeError, r"voxel_weights"),
    (CLASS_WEIGHTED, LOGITS, TARGET, {"class_weights": [1.0, 2.0]}, ValueError, r"must have K = 3 .*got 2"),
    (DICE_NAMES, LOGITS[:, :1], TARGET, {"include_background": False}, ValueError, r"False needs K >= 2"),
]
INPUT_IDS = [f"{name}-{i}" for i, (names, *_rest) in enumerate(BAD_INPUTS) for name in names]


@pytest.mark.parametrize(
    "name, logits, target, kwargs, exc, match",
    [(name, *rest) for names, *rest in BAD_INPUTS for name in names],
    ids=INPUT_IDS,
)
def test_bad_input_raises(
    name: str, logits: object, target: object, kwargs: dict, exc: type[Exception], match: str
) -> None:
    with pytest.raises(exc, match=match):
        FUNCTIONS[name](logits, target, **kwargs)
    with pytest.raises(exc, match=match):
        MODULES[name](**{k: v for k, v in kwargs.items() if k != "voxel_weights"})(
            logits, target, kwargs.get("voxel_weights")
        )


# ------------------------------------------------------------------------------------------ properties


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 3),
    k=st.integers(1, 4),
    spatial=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple),
    scale=st.sampled_from([0.1, 1.0, 10.0, 50.0]),
    activation=st.sampled_from(["softmax", "sigmoid"]),
    soft=st.booleans(),
    weighted=st.booleans(),
)
def test_property_ranges(
    data: st.DataObject,
    n: int,
    k: int,
    spatial: tuple[int, ...],
    scale: float,
    activation: str,
    soft: bool,
    weighted: bool,
) -> None:
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1), label="seed"))
    logits = torch.randn(n, k, *spatial, generator=gen, dtype=torch.float64) * scale
    if soft:
        target = torch.rand(n, k, *spatial, generator=gen, dtype=torch.float64)
    else:
        target = torch.randint(0, k, (n, *spatial), generator=gen)
    weights = (torch.rand(n, *spatial, generator=gen, dtype=torch.float64) > 0.3).double() if weighted else None
    for name in DICE_NAMES[:2]:
        loss = FUNCTIONS[name](logits, target, activation=activation, voxel_weights=weights, reduction="none")
        assert loss.shape == (n,)
        assert torch.isfinite(loss).all()
        assert ((loss >= -1e-12) & (loss <= 1 + 1e-12)).all(), (name, loss)
    for name in ("ce", "dice_ce"):
        loss = FUNCTIONS[name](logits, target, activation=activation, voxel_weights=weights, reduction="none")
        assert torch.isfinite(loss).all()
        assert (loss >= 0).all(), (name, loss)


# --------------------------------------------------------------------------------------------- devices


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("device", ["cpu", CUDA])
@pytest.mark.parametrize("name", NAMES)
def test_device_and_dtype(name: str, device: str, dtype: torch.dtype) -> None:
    logits, target, weights = random_inputs(spatial=(3, 4, 5), dtype=dtype)
    kwargs = {"class_weights": [0.5, 1.0, 2.0]} if name in CLASS_WEIGHTED else {}
    module = MODULES[name](**kwargs, reduction="none").to(device)
    got = module(logits.to(device), target.to(device), weights.to(device))
    assert got.device.type == device
    assert got.dtype == dtype
    expected = FUNCTIONS[name](logits.double(), target, voxel_weights=weights.double(), reduction="none", **kwargs)
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(got.cpu().double(), expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", NAMES)
def test_inputs_on_another_device_raise(name: str) -> None:
    logits, target, weights = random_inputs()
    meta_target = torch.empty(target.shape, dtype=target.dtype, device="meta")
    with pytest.raises(ValueError, match="target must be on the logits' device"):
        FUNCTIONS[name](logits, meta_target)
    with pytest.raises(ValueError, match="voxel_weights must be on the logits' device"):
        FUNCTIONS[name](logits, target, voxel_weights=weights.to("meta"))


# ----------------------------------------------------------------------------------------- docs, registry


def test_public_api() -> None:
    losses = [f.__name__ for f in FUNCTIONS.values()] + [m.__name__ for m in MODULES.values()]
    helpers = ["DEEP_SUPERVISION", "deep_supervision_loss", "deep_supervision_weights"]
    helpers += ["MonaiLossAdapter", "monai_loss"]
    assert sorted(art_seg.losses.__all__) == sorted([*losses, *helpers, "LOSSES", "per_sample_loss"])
    assert art_seg.losses.LOSSES == FUNCTIONS
    for name in losses:
        obj = getattr(art_seg.losses, name)
        for section in ("Args:", "Raises:", "Example:"):
            assert section in obj.__doc__, (name, section)


@pytest.mark.parametrize("module", [cross_entropy, dice, generalized_dice, dice_ce], ids=lambda m: m.__name__)
def test_docstring_examples_run(module: object) -> None:
    result = doctest.testmod(module, extraglobs={"torch": torch}, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
def test_registry_resolves_names_to_per_sample_losses(name: str, activation: str) -> None:
    logits, target, weights = random_inputs()
    got = per_sample_loss(name, activation=activation)(logits, target, weights)
    expected = FUNCTIONS[name](logits, target, activation=activation, voxel_weights=weights, reduction="none")
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("spatial", [(4, 5), (3, 4, 2)], ids=["2d", "3d"])
@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
@pytest.mark.parametrize("name", NAMES)
def test_registry_gives_each_sample_the_gradient_of_its_own_loss(
    name: str, activation: str, spatial: tuple[int, ...], n: int
) -> None:
    logits, target, weights = random_inputs(n=n, spatial=spatial, seed=n)
    loss_fn = per_sample_loss(name, activation=activation)
    assert_gradients_per_sample(loss_fn, logits, target)
    assert_gradients_per_sample(loss_fn, logits, target, weights)


def test_registry_calls_a_loss_with_a_reduction_keyword_once_per_batch() -> None:
    calls = []

    def counted(logits, target, reduction="mean"):
        calls.append(logits.shape[0])
        return cross_entropy_loss(logits, target, reduction=reduction)

    def opaque(logits, target):
        calls.append(logits.shape[0])
        return cross_entropy_loss(logits, target)

    logits, target, _ = random_inputs(n=3)
    batched = per_sample_loss(counted, activation="softmax")(logits, target, None)
    assert calls == [3]
    torch.testing.assert_close(batched, per_sample_loss(opaque, activation="softmax")(logits, target, None))
    assert calls == [3, 1, 1, 1]  # a callable without reduction is evaluated sample by sample
    with pytest.raises(ValueError, match="reduction='none' must give one value per sample"):
        per_sample_loss(lambda logits, target, reduction: logits.mean(), activation="softmax")(logits, target, None)
    with pytest.raises(ValueError, match="takes no voxel_weights keyword"):
        per_sample_loss(counted, activation="softmax")(logits, target, torch.ones(3, 4, 4, dtype=torch.float64))
