"""PyTorchSegmenter: gradients against finite differences, shapes and kinds, ART contracts, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from art.defences.preprocessor import GaussianAugmentation, SpatialSmoothing, SpatialSmoothingPyTorch
from art.estimators.estimator import BaseEstimator, LossGradientsMixin
from art.estimators.pytorch import PyTorchEstimator

from art_seg.estimators import PyTorchSegmenter, SegmenterMixin
from art_seg.models import UNet2D, UNet3D
from tests.helpers import TASK_CLASSES, make_blob_task, requires_cuda

LOSS_NAMES = ["ce", "dice", "generalized_dice", "dice_ce"]


def tiny_segmenter(loss="ce", dtype=torch.float64, activation="softmax", nb_classes=3, device_type="cpu", **kwargs):
    torch.manual_seed(0)
    model = UNet2D(in_channels=2, nb_classes=nb_classes, base_filters=2, depth=1, norm=None).to(dtype)
    return PyTorchSegmenter(
        model,
        loss,
        input_shape=(2, 4, 4),
        nb_classes=nb_classes,
        device_type=device_type,
        activation=activation,
        **kwargs,
    )


def tiny_batch(seed=0, n=2, nb_classes=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2, 4, 4))
    y = rng.integers(0, nb_classes, size=(n, 4, 4))
    y[:, 0, 0] = np.arange(n) % nb_classes
    return x, y


def finite_difference_gradient(f, x, h=1e-6):
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = h
        grad[index] = (f(x + step) - f(x - step)) / (2 * h)
    return grad


# ---------------------------------------------------------------------------------------------- ART integration
def test_is_an_art_pytorch_estimator_with_loss_gradients_and_no_classifier_mixin(trained_segmenter):
    from art.estimators.classification.classifier import ClassifierMixin

    assert isinstance(trained_segmenter, PyTorchEstimator)
    assert isinstance(trained_segmenter, LossGradientsMixin)
    assert isinstance(trained_segmenter, BaseEstimator)
    assert isinstance(trained_segmenter, SegmenterMixin)
    assert not isinstance(trained_segmenter, ClassifierMixin)
    assert trained_segmenter.device == torch.device("cpu")
    assert trained_segmenter.input_shape == (2, 12, 12, 12)


# ---------------------------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("label_form", ["index", "one_hot"])
def test_loss_gradient_matches_finite_differences_with_preprocessing(loss, label_form):
    segmenter = tiny_segmenter(loss, preprocessing=([0.5, -0.2], [2.0, 0.7]))
    x, y = tiny_batch()
    if label_form == "one_hot":
        y = np.eye(3)[y].transpose(0, 3, 1, 2)
    grad = segmenter.loss_gradient(x, y)
    expected = finite_difference_gradient(lambda v: segmenter.compute_loss(v, y, reduction="sum"), x)
    assert grad.dtype == np.float64 and grad.shape == x.shape
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-8)
    assert np.abs(grad).max() > 1e-4


@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_loss_gradient_with_voxel_mask_matches_finite_differences(loss):
    segmenter = tiny_segmenter(loss, preprocessing=(0.1, 1.5))
    x, y = tiny_batch(seed=1)
    mask = np.zeros((2, 4, 4))
    mask[0, 1:3, 1:3] = 1.0
    mask[1, :, 2:] = 0.5
    grad = segmenter.loss_gradient(x, y, voxel_weights=mask)
    expected = finite_difference_gradient(
        lambda v: segmenter.compute_loss(v, y, reduction="sum", voxel_weights=mask), x
    )
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-8)
    unmasked = segmenter.loss_gradient(x, y)
    assert np.abs(grad - unmasked).max() > 1e-4


@pytest.mark.parametrize("loss", ["ce", "dice", "dice_ce"])
def test_sigmoid_activation_gradient_matches_finite_differences(loss):
    segmenter = tiny_segmenter(loss, activation="sigmoid")
    x, _ = tiny_batch(seed=2)
    rng = np.random.default_rng(3)
    y = (rng.uniform(size=(2, 3, 4, 4)) > 0.5).astype(np.float64)  # overlapping multi-hot regions
    grad = segmenter.loss_gradient(x, y)
    expected = finite_difference_gradient(lambda v: segmenter.compute_loss(v, y, reduction="sum"), x)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-8)


def test_callable_loss_is_evaluated_per_sample():
    def batch_mean_ce(logits, target):
        return torch.nn.functional.cross_entropy(logits, target)

    named, custom = tiny_segmenter("ce"), tiny_segmenter(batch_mean_ce)
    x, y = tiny_batch(n=3)
    np.testing.assert_allclose(custom.loss_gradient(x, y), named.loss_gradient(x, y), rtol=1e-10)
    np.testing.assert_allclose(custom.compute_loss(x, y), named.compute_loss(x, y), rtol=1e-10)


def test_gradient_of_a_sample_does_not_depend_on_the_batch():
    segmenter = tiny_segmenter("dice")
    x, y = tiny_batch(n=3)
    whole = segmenter.loss_gradient(x, y)
    for i in range(3):
        np.testing.assert_allclose(segmenter.loss_gradient(x[i : i + 1], y[i : i + 1])[0], whole[i], rtol=1e-10)


def test_label_forms_give_identical_gradients():
    segmenter = tiny_segmenter("dice_ce")
    x, y = tiny_batch()
    one_hot = np.eye(3, dtype=np.float32)[y].transpose(0, 3, 1, 2)
    reference = segmenter.loss_gradient(x, y)
    for labels in (y[:, None], y.astype(np.uint8), y.astype(np.float32), one_hot, torch.from_numpy(y)):
        np.testing.assert_allclose(segmenter.loss_gradient(x, labels), reference, rtol=1e-12)


def test_loss_override_per_call():
    segmenter = tiny_segmenter("ce")
    x, y = tiny_batch()
    np.testing.assert_allclose(
        segmenter.loss_gradient(x, y, loss="dice"), tiny_segmenter("dice").loss_gradient(x, y), rtol=1e-12
    )


def test_class_gradient_equals_autograd_of_summed_score():
    segmenter = tiny_segmenter()
    x, _ = tiny_batch()
    mask = np.zeros((2, 4, 4))
    mask[:, :2] = 1.0
    everything = segmenter.class_gradient(x)
    one = segmenter.class_gradient(x, label=[2, 0], voxel_weights=mask)
    assert everything.shape == (2, 3, 2, 4, 4) and one.shape == (2, 1, 2, 4, 4)
    for i, k in enumerate([2, 0]):
        xi = torch.tensor(x[i : i + 1], requires_grad=True)
        score = (segmenter.model(xi)[0, k] * torch.tensor(mask[i])).sum()
        (expected,) = torch.autograd.grad(score, xi)
        np.testing.assert_allclose(one[i, 0], expected[0].numpy(), rtol=1e-10)
    xt = torch.tensor(x, requires_grad=True)
    (expected,) = torch.autograd.grad(segmenter.model(xt)[:, 1].sum(), xt)
    np.testing.assert_allclose(everything[:, 1], expected.numpy(), rtol=1e-10)


def test_class_gradient_of_probabilities_matches_finite_differences():
    segmenter = tiny_segmenter()
    x, _ = tiny_batch()
    grad = segmenter.class_gradient(x, label=1, probabilities=True)[:, 0]
    expected = finite_difference_gradient(lambda v: segmenter.predict(v)[:, 1].sum(), x)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-9)


# ---------------------------------------------------------------------------------------------- predict and kinds
def test_predict_probabilities_logits_and_batching():
    segmenter = tiny_segmenter()
    x, _ = tiny_batch(n=5)
    probabilities = segmenter.predict(x, batch_size=2)
    logits = segmenter.predict(x, batch_size=5, logits=True)
    assert probabilities.shape == (5, 3, 4, 4) and isinstance(probabilities, np.ndarray)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(probabilities, torch.softmax(torch.from_numpy(logits), 1).numpy(), rtol=1e-12)
    with torch.no_grad():
        np.testing.assert_allclose(logits, segmenter.model(torch.from_numpy(x)).numpy(), rtol=1e-12)


def test_sigmoid_predict_gives_independent_probabilities():
    segmenter = tiny_segmenter(activation="sigmoid")
    x, _ = tiny_batch()
    logits = segmenter.predict(x, logits=True)
    np.testing.assert_allclose(segmenter.predict(x), 1 / (1 + np.exp(-logits)), rtol=1e-12)


@pytest.mark.parametrize(
    ("device_type", "input_devices"), [("cpu", ["cpu"]), pytest.param("gpu", ["cpu", "cuda"], marks=requires_cuda)]
)
def test_tensors_in_give_tensors_out_on_the_input_device_without_host_round_trip(device_type, input_devices):
    segmenter = tiny_segmenter(preprocessing=(0.0, 2.0), device_type=device_type)
    x, y = tiny_batch()
    for device in input_devices:  # a CUDA estimator gives CPU tensors for CPU input
        xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        for out in (
            segmenter.predict(xt),
            segmenter.loss_gradient(xt, yt),
            segmenter.compute_loss(xt, yt),
            segmenter.class_gradient(xt, 0),
            segmenter.get_activations(xt, -1),
        ):
            assert isinstance(out, torch.Tensor) and out.device.type == device
        np.testing.assert_allclose(segmenter.loss_gradient(xt, yt).cpu().numpy(), segmenter.loss_gradient(x, y))
        assert not segmenter.loss_gradient(xt, yt).requires_grad
        assert not xt.requires_grad


def test_float64_numpy_input_is_cast_to_the_model_dtype(trained_segmenter, blob_data):
    x, _ = blob_data
    out = trained_segmenter.predict(x[:1].astype(np.float64))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, trained_segmenter.predict(x[:1]), rtol=1e-5, atol=1e-6)


def test_compute_loss_reductions_and_values():
    segmenter = tiny_segmenter("ce")
    x, y = tiny_batch(n=3)
    per_sample = segmenter.compute_loss(x, y)
    with torch.no_grad():
        logits = segmenter.model(torch.from_numpy(x))
    expected = [
        torch.nn.functional.cross_entropy(logits[i : i + 1], torch.from_numpy(y[i : i + 1])).item() for i in range(3)
    ]
    np.testing.assert_allclose(per_sample, expected, rtol=1e-12)
    np.testing.assert_allclose(segmenter.compute_loss(x, y, reduction="mean"), np.mean(expected), rtol=1e-12)
    np.testing.assert_allclose(
        segmenter.compute_loss(x, y, reduction="sum", batch_size=1), np.sum(expected), rtol=1e-12
    )


def test_get_activations_by_name_and_index():
    segmenter = tiny_segmenter()
    x, _ = tiny_batch(n=3)
    names = segmenter.layer_names
    last = names[-1]
    by_name = segmenter.get_activations(x, last, batch_size=2)
    by_index = segmenter.get_activations(x, len(names) - 1)
    np.testing.assert_allclose(by_name, segmenter.predict(x, logits=True), rtol=1e-12)
    np.testing.assert_array_equal(by_name, by_index)
    with pytest.raises(ValueError, match="layer must be a name"):
        segmenter.get_activations(x, "no_such_layer")


# ---------------------------------------------------------------------------------------------- fit
def test_fit_lowers_the_loss_is_seeded_and_leaves_eval_mode():
    def train(seed):
        torch.manual_seed(0)
        model = UNet3D(2, TASK_CLASSES, base_filters=4, depth=1, norm="instance")
        segmenter = PyTorchSegmenter(
            model,
            "dice_ce",
            input_shape=(2, 12, 12, 12),
            nb_classes=TASK_CLASSES,
            optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
            device_type="cpu",
        )
        x, y = make_blob_task(8, seed=5)
        before = segmenter.compute_loss(x, y, reduction="mean")
        segmenter.fit(x, y, batch_size=4, nb_epochs=4, seed=seed)
        return segmenter, before, segmenter.compute_loss(x, y, reduction="mean")

    first, before, after = train(seed=3)
    again, _, after_again = train(seed=3)
    other, _, after_other = train(seed=4)
    assert after < 0.8 * before
    assert not first.model.training
    assert after == after_again
    for p, q in zip(first.model.parameters(), again.model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert after != after_other


def test_fit_generator_accepts_a_dataloader_and_an_art_generator():
    from art.data_generators import PyTorchDataGenerator

    x, y = make_blob_task(4, seed=6)
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    loader = torch.utils.data.DataLoader(dataset, batch_size=2)
    for generator in (loader, PyTorchDataGenerator(loader, size=4, batch_size=2)):
        torch.manual_seed(0)
        model = UNet3D(2, TASK_CLASSES, base_filters=2, depth=1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        segmenter = PyTorchSegmenter(
            model, input_shape=(2, 12, 12, 12), nb_classes=TASK_CLASSES, optimizer=optimizer, device_type="cpu"
        )
        before = segmenter.compute_loss(x, y, reduction="mean")
        segmenter.fit_generator(generator, nb_epochs=3)
        assert segmenter.compute_loss(x, y, reduction="mean") < before


def test_fit_without_optimizer_is_a_clear_error():
    segmenter = tiny_segmenter()
    x, y = tiny_batch()
    with pytest.raises(ValueError, match="optimizer is None"):
        segmenter.fit(x, y)


# ---------------------------------------------------------------------------------------------- ART preprocessors
def test_torch_spatial_smoothing_is_differentiated_through():
    smoothing = SpatialSmoothingPyTorch(window_size=3, channels_first=True, device_type="cpu")
    segmenter = tiny_segmenter(preprocessing_defences=[smoothing])
    x, y = tiny_batch()
    assert segmenter.all_framework_preprocessing
    with torch.no_grad():
        smoothed, _ = smoothing.forward(torch.from_numpy(x))
        expected = torch.softmax(segmenter.model(smoothed), 1).numpy()
    np.testing.assert_allclose(segmenter.predict(x), expected, rtol=1e-12)
    assert np.abs(segmenter.loss_gradient(x, y)).max() > 0


def test_numpy_spatial_smoothing_goes_through_art_gradient_estimate():
    segmenter = tiny_segmenter(preprocessing_defences=SpatialSmoothing(window_size=3, channels_first=True))
    x, y = tiny_batch()
    assert not segmenter.all_framework_preprocessing
    xt = torch.from_numpy(x)
    grad = segmenter.loss_gradient(xt, torch.from_numpy(y))
    assert isinstance(grad, torch.Tensor) and grad.shape == xt.shape and grad.abs().max() > 0


def test_gaussian_augmentation_doubles_training_batches(trained_segmenter):
    augmentation = GaussianAugmentation(sigma=0.1, augmentation=True, ratio=1.0)
    torch.manual_seed(0)
    model = UNet3D(2, TASK_CLASSES, base_filters=2, depth=1)
    seen = []
    model.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0].shape[0]) if model.training else None)
    segmenter = PyTorchSegmenter(
        model,
        input_shape=(2, 12, 12, 12),
        nb_classes=TASK_CLASSES,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
        preprocessing_defences=augmentation,
        device_type="cpu",
    )
    x, y = make_blob_task(4, seed=0)
    segmenter.fit(x, y, batch_size=2, nb_epochs=1)
    assert seen == [4, 4]
    assert segmenter.predict(x).shape == (4, TASK_CLASSES, 12, 12, 12)  # not applied at prediction


# ---------------------------------------------------------------------------------------------- bad input
def test_bad_labels_and_inputs_raise_clear_errors_and_leave_arrays_untouched():
    segmenter = tiny_segmenter()
    x, y = tiny_batch()
    x_before, y_before = x.copy(), y.copy()
    cases = [
        (x, y[:, :3], ValueError, r"y must be class indices of shape \(2, 4, 4\).*got shape \(2, 3, 4\)"),
        (x, y + 5, ValueError, r"y holds labels \[5, 6, 7\] outside \[0, 3\)"),
        (x, -y - 1, ValueError, r"y holds labels \[-3, -2, -1\] outside"),
        (x, y + 0.5, ValueError, "non-integral class indices"),
        (x, np.full((2, 3, 4, 4), 2.0), ValueError, r"must lie in \[0, 1\], got values in \[2.0, 2.0\]"),
        (x, [[0]], TypeError, "y must be a numpy array or a torch tensor, got list"),
        (
            np.where(np.eye(4, dtype=bool), np.nan, x),
            y,
            ValueError,
            r"x must be finite, got 16 NaN/Inf value\(s\), first at index \(0, 0, 0, 0\) \(nan\)",
        ),
        (
            np.full_like(x, np.inf),
            y,
            ValueError,
            r"x must be finite, got 64 NaN/Inf value\(s\), first at index \(0, 0, 0, 0\)",
        ),
        (x[:, :1], y, ValueError, r"x has 1 channel\(s\) in shape \(2, 1, 4, 4\), the estimator expects 2"),
        (x[0], y, ValueError, r"x must have shape \(N, 2, \*, \*\), got shape \(2, 4, 4\)"),
        (x.astype(np.complex64), y, TypeError, "x must hold real numbers"),
    ]
    for xs, ys, error, message in cases:
        with pytest.raises(error, match=message):
            segmenter.loss_gradient(xs, ys)
    with pytest.raises(ValueError, match=r"voxel_weights of shape \(3, 4, 4\) does not broadcast"):
        segmenter.loss_gradient(x, y, voxel_weights=np.ones((3, 4, 4)))
    with pytest.raises(ValueError, match="voxel_weights must be >= 0, got minimum -1.0"):
        segmenter.loss_gradient(x, y, voxel_weights=-np.ones((4, 4)))
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(y, y_before)


def test_bad_constructor_arguments_raise_clear_errors():
    model = UNet2D(2, 3, base_filters=2, depth=1)
    base = dict(input_shape=(2, 4, 4), nb_classes=3, device_type="cpu")
    cases = [
        (
            dict(loss="focal"),
            ValueError,
            r"loss must be one of \('ce', 'dice', 'generalized_dice', 'dice_ce', 'margin'\), got 'focal'",
        ),
        (dict(loss=3), TypeError, "loss must be one of .* or a callable"),
        (dict(clip_values=(1.0, 1.0)), ValueError, r"clip_values must have min < max"),
        (dict(clip_values=([0, 1], [1, 0])), ValueError, r"clip_values must have min < max"),
        (dict(clip_values=(0.0,)), ValueError, r"clip_values must be a \(min, max\)"),
        (dict(preprocessing=(0.0, 0.0)), ValueError, "preprocessing std must be > 0, got 0.0"),
        (dict(input_shape=(2,)), ValueError, r"input_shape must be \(C, \*spatial\)"),
        (dict(nb_classes=0), ValueError, "nb_classes must be >= 1, got 0"),
        (dict(nb_classes=1), ValueError, "nb_classes must be >= 2 with activation='softmax'"),
        (dict(activation="relu"), ValueError, "activation must be one of"),
        (dict(device_type="cuda"), ValueError, r"device_type must be one of \('cpu', 'gpu'\), got 'cuda'"),
        (dict(channels_first=False), ValueError, "channels_first must be True"),
        (dict(optimizer="adam"), TypeError, "optimizer must be Optimizer"),
    ]
    for overrides, error, message in cases:
        with pytest.raises(error, match=message):
            PyTorchSegmenter(model, **{**base, **overrides})
    with pytest.raises(TypeError, match="model must be Module"):
        PyTorchSegmenter(lambda v: v, **base)


def test_per_channel_clip_values_broadcast_for_art():
    segmenter = tiny_segmenter(clip_values=([-1.0, -2.0], [1.0, 2.0]))
    low, high = segmenter.clip_values
    assert low.shape == (2, 1, 1) and high.dtype == np.float32
    x = np.random.default_rng(0).normal(scale=5, size=(3, 2, 4, 4))
    clipped = np.clip(x, low, high)
    assert clipped[:, 0].max() <= 1 and clipped[:, 1].max() <= 2 and clipped[:, 1].max() > 1


def test_model_with_wrong_output_shape_is_reported():
    segmenter = PyTorchSegmenter(torch.nn.Conv2d(2, 4, 1), input_shape=(2, 4, 4), nb_classes=3, device_type="cpu")
    message = r"model must return logits of shape \(1, 3, 4, 4\).*got a tensor of shape \(1, 4, 4, 4\)"
    with pytest.raises(ValueError, match=message):
        segmenter.predict(np.zeros((1, 2, 4, 4), np.float32))


def test_callable_loss_without_voxel_weights_keyword_is_rejected_when_weights_are_given():
    segmenter = tiny_segmenter(lambda logits, target: logits.sum())
    x, y = tiny_batch()
    with pytest.raises(ValueError, match="takes no voxel_weights keyword"):
        segmenter.loss_gradient(x, y, voxel_weights=np.ones((4, 4)))


def test_set_params_keeps_torch_standardisation():
    segmenter = tiny_segmenter()
    segmenter.set_params(preprocessing=(1.0, 2.0))
    assert segmenter.all_framework_preprocessing
    x, _ = tiny_batch()
    with torch.no_grad():
        expected = torch.softmax(segmenter.model((torch.from_numpy(x) - 1.0) / 2.0), 1).numpy()
    np.testing.assert_allclose(segmenter.predict(x), expected, rtol=1e-6)


# ---------------------------------------------------------------------------------------------- GPU
@requires_cuda
def test_gpu_device_type_puts_model_and_outputs_on_cuda(blob_data):
    x, y = blob_data
    model = UNet3D(2, TASK_CLASSES, base_filters=4, depth=1)
    segmenter = PyTorchSegmenter(model, input_shape=(2, 12, 12, 12), nb_classes=TASK_CLASSES, device_type="gpu")
    assert segmenter.device.type == "cuda"
    assert next(segmenter.model.parameters()).is_cuda
    xt = torch.from_numpy(x).cuda()
    assert segmenter.loss_gradient(xt, torch.from_numpy(y).cuda()).is_cuda
    on_gpu = segmenter.predict(x)
    assert isinstance(on_gpu, np.ndarray)
    segmenter.model.cpu()
    with torch.no_grad():
        on_cpu = torch.softmax(segmenter.model(torch.from_numpy(x)), 1).numpy()
    np.testing.assert_allclose(on_gpu, on_cpu, rtol=1e-4, atol=1e-5)
