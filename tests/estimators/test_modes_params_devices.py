"""PyTorchSegmenter leaves the caller's model in the mode it had, validates set_params as its constructor does,
and returns tensors on the input's device (issue 12.14)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from art_seg.estimators import PyTorchSegmenter, SlidingWindow
from art_seg.estimators import pytorch_segmenter as module
from art_seg.estimators.conversion import like_input
from art_seg.models import UNet2D
from tests.helpers import requires_cuda


def tiny(**kwargs):
    torch.manual_seed(0)
    model = UNet2D(in_channels=2, nb_classes=3, base_filters=2, depth=1, norm="batch").double()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    kwargs = {
        "loss": "ce", "input_shape": (2, 4, 4), "nb_classes": 3, "device_type": "cpu", "optimizer": optimizer,
        **kwargs,
    }  # fmt: skip
    return PyTorchSegmenter(model, **kwargs)


def batch(n=2):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 2, 4, 4)), rng.integers(0, 3, size=(n, 4, 4))


def modes(model):
    return {name: m.training for name, m in model.named_modules()}


CALLS = {
    "predict": lambda s, x, y, t: s.predict(x, training_mode=t),
    "loss_gradient": lambda s, x, y, t: s.loss_gradient(x, y, training_mode=t),
    "compute_loss": lambda s, x, y, t: s.compute_loss(x, y, training_mode=t),
    "class_gradient": lambda s, x, y, t: s.class_gradient(x, label=1, training_mode=t),
    "get_activations": lambda s, x, y, t: s.get_activations(x, -1),
    "fit": lambda s, x, y, t: s.fit(x, y, nb_epochs=1, batch_size=2, training_mode=t),
    "fit_generator": lambda s, x, y, t: s.fit_generator([(x, y)], nb_epochs=1),
}


# ---------------------------------------------------------------------------------------------- model mode
@pytest.mark.parametrize("window", [None, SlidingWindow(2, overlap=0.5)], ids=["whole", "window"])
@pytest.mark.parametrize("training_mode", [False, True])
@pytest.mark.parametrize("call", sorted(CALLS))
def test_every_call_restores_the_mode_of_every_submodule(call, training_mode, window):
    segmenter = tiny(sliding_window=window)
    x, y = batch()
    model = segmenter.model
    model.train()
    next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)).eval()  # a frozen-BN mix
    before = modes(model)
    seen = []
    model.register_forward_hook(lambda m, _i, _o: seen.append(m.training))
    CALLS[call](segmenter, x, y, training_mode)
    assert modes(model) == before
    expected = False if call == "get_activations" else (True if call == "fit_generator" else training_mode)
    assert seen and set(seen) == {expected}


def test_mode_is_restored_when_the_call_raises():
    segmenter = tiny()
    segmenter.model.train()
    x, y = batch()
    with pytest.raises(ValueError, match="takes no voxel_weights"):
        segmenter.loss_gradient(x, y, voxel_weights=np.ones((4, 4)), loss=lambda logits, target: logits.sum())
    assert all(modes(segmenter.model).values())


# ---------------------------------------------------------------------------------------------- set_params
@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"nb_classes": "two"}, TypeError, "nb_classes must be an integer, got 'two'"),
        ({"nb_classes": 0}, ValueError, "nb_classes must be >= 1, got 0"),
        ({"nb_classes": 1}, ValueError, "nb_classes must be >= 2 with activation='softmax'"),
        ({"activation": "relu"}, ValueError, "activation must be one of"),
        ({"loss": "focal"}, ValueError, "loss must be one of"),
        ({"input_shape": (2,)}, ValueError, r"input_shape must be \(C, \*spatial\)"),
        ({"input_shape": (2, 4, 4, 4)}, ValueError, r"roi_size \(2, 2\) has 2 dimension\(s\), the input has 3"),
        ({"clip_values": (1.0, 0.0)}, ValueError, "clip_values must have min < max"),
        ({"preprocessing": (0.0, -1.0)}, ValueError, "preprocessing std must be > 0"),
        ({"optimizer": "adam"}, TypeError, "optimizer must be Optimizer"),
        ({"sliding_window": 4}, TypeError, "sliding_window must be SlidingWindow"),
        ({"autocast": "fp8"}, ValueError, "autocast must be one of"),
        ({"channels_first": False}, ValueError, "channels_first must be True"),
        ({"device_type": "tpu"}, ValueError, r"device_type must be one of \('cpu', 'gpu'\), got 'tpu'"),
        ({"model": "net"}, TypeError, "model must be Module"),
    ],
)
def test_set_params_rejects_what_the_constructor_rejects_and_changes_nothing(params, error, match):
    segmenter = tiny(sliding_window=SlidingWindow((2, 2)))
    before = {k: v for k, v in segmenter.get_params().items() if k != "model"}
    with pytest.raises(error, match=match):
        segmenter.set_params(**params)
    after = {k: v for k, v in segmenter.get_params().items() if k != "model"}
    assert after.keys() == before.keys()
    for key in before:
        assert after[key] is before[key], key
    constructor_params = {"sliding_window": SlidingWindow((2, 2)), **params}
    with pytest.raises(error, match=match):
        if "model" in params:
            PyTorchSegmenter(params["model"], input_shape=(2, 4, 4), nb_classes=3)
        else:
            tiny(**constructor_params)


def test_set_params_accepts_and_normalises_what_the_constructor_accepts():
    segmenter = tiny()
    x, _ = batch()
    segmenter.set_params(nb_classes=np.int64(3), clip_values=(-5, [5.0, 6.0]), input_shape=[2, 8, 8])
    assert segmenter.nb_classes == 3 and type(segmenter.nb_classes) is int
    assert segmenter.input_shape == (2, 8, 8)
    assert segmenter.clip_values[1].shape == (2, 1, 1) and segmenter.clip_values[0].dtype == np.float32
    segmenter.set_params(activation="sigmoid", loss="dice")
    assert (segmenter.activation, segmenter.loss) == ("sigmoid", "dice")
    np.testing.assert_allclose(segmenter.predict(x), 1 / (1 + np.exp(-segmenter.predict(x, logits=True))))


def test_set_params_model_is_moved_to_the_device_and_used():
    segmenter = tiny()
    x, _ = batch()
    other = torch.nn.Conv2d(2, 3, 1).double()
    segmenter.set_params(model=other)
    assert segmenter.model is other
    with torch.no_grad():
        np.testing.assert_allclose(segmenter.predict(x, logits=True), other(torch.from_numpy(x)).numpy())


# ---------------------------------------------------------------------------------------------- device rule
def test_like_input_follows_the_input_kind_and_device():
    result = torch.arange(3.0)
    assert isinstance(like_input(result, np.zeros(3)), np.ndarray)
    assert like_input(result, torch.zeros(3)) is result
    moved = like_input(result, torch.empty(0, device="meta"))
    assert moved.device.type == "meta" and moved.shape == (3,)


def test_every_output_follows_the_input_device(monkeypatch):
    """The device rule's code path on a CPU-only machine: every public output goes through ``like_input``, told
    here that the input lives on the meta device."""
    segmenter = tiny()
    x, y = batch()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    real = module.like_input
    monkeypatch.setattr(module, "like_input", lambda result, _x: real(result, torch.empty(0, device="meta")))
    for out in (
        segmenter.predict(xt),
        segmenter.predict(xt, logits=True),
        segmenter.loss_gradient(xt, yt),
        segmenter.compute_loss(xt, yt),
        segmenter.compute_loss(xt, yt, reduction="mean"),
        segmenter.class_gradient(xt, 0),
        segmenter.get_activations(xt, -1),
        segmenter.get_activations(xt, -1, framework=True),
    ):
        assert out.device.type == "meta"


@requires_cuda
def test_cpu_estimator_returns_cuda_tensors_for_cuda_input():
    segmenter = tiny()
    x, y = batch()
    xt, yt = torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda()
    assert segmenter.predict(xt).is_cuda and segmenter.loss_gradient(xt, yt).is_cuda


def test_fit_stops_on_a_non_finite_loss_naming_the_epoch_and_batch() -> None:
    # NaN weights made fit train on a NaN loss without a word (issue 12.8); now it stops before the step
    from art_seg.estimators import NonFiniteLossError
    from art_seg.models import UNet2D

    model = UNet2D(in_channels=1, nb_classes=2, base_filters=2, depth=1, norm=None)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    seg = PyTorchSegmenter(model, "ce", input_shape=(1, 4, 4), nb_classes=2, optimizer=optimizer, device_type="cpu")
    x = np.zeros((3, 1, 4, 4), np.float32)
    y = np.zeros((3, 4, 4), np.int64)
    seg.fit(x, y, batch_size=2, nb_epochs=1)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(NonFiniteLossError, match=r"not finite \(nan\) at epoch 1, batch 1"):
        seg.fit(x, y, batch_size=2, nb_epochs=1)
    with pytest.raises(NonFiniteLossError, match=r"at epoch 1, batch 1"):
        seg.fit_generator([(x[:2], y[:2])], nb_epochs=1)
    for p, q in zip(model.parameters(), before):
        torch.testing.assert_close(p, q, equal_nan=True)
