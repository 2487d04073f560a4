"""Sliding-window prediction and gradients: the scan, the blending weights, exact stitching for pointwise models,
the two-pass window-by-window gradient against autograd through the whole stitched graph, options."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from art.defences.preprocessor import SpatialSmoothing
from hypothesis import given, settings
from hypothesis import strategies as st

from art_seg.attacks import IterativeFGSM
from art_seg.estimators import PyTorchSegmenter
from art_seg.estimators.sliding_window import (
    SlidingWindow,
    blending_weights,
    effective_roi_size,
    sliding_window_gradients,
    sliding_window_logits,
    window_slices,
)
from art_seg.models import UNet3D

LOSS_NAMES = ["ce", "dice", "generalized_dice", "dice_ce", "margin"]
SHAPE = (7, 5, 3)  # not divisible by the window; the last dimension is shorter than it
WINDOW = {"roi_size": (4, 3, 4), "overlap": 0.4, "windows_per_batch": 3}


pytestmark = pytest.mark.usefixtures("one_thread_module")  # tiny tensors: one thread is faster


def pointwise_model(seed=0):
    """1x1x1 convolutions with a nonlinearity: each voxel's logits depend on that voxel only, so stitching is exact."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv3d(2, 4, 1), torch.nn.Tanh(), torch.nn.Conv3d(4, 3, 1)).double()


def segmenter(model, sliding_window=None, **kwargs):
    kwargs.setdefault("preprocessing", ([0.2, -0.1], [1.5, 0.8]))
    return PyTorchSegmenter(
        model,
        "dice_ce",
        input_shape=(2, *SHAPE),
        nb_classes=3,
        device_type="cpu",
        sliding_window=sliding_window,
        **kwargs,
    )


def batch(seed=0, n=2, shape=SHAPE):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 2, *shape)), rng.integers(0, 3, size=(n, *shape))


# ---------------------------------------------------------------------------------------------- options
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"roi_size": 0}, ValueError, "roi_size must be >= 1, got 0"),
        ({"roi_size": (4, -2, 4)}, ValueError, "roi_size must be >= 1, got -2"),
        ({"roi_size": 4.0}, TypeError, "roi_size must be an integer, got 4.0"),
        ({"roi_size": ()}, ValueError, r"roi_size must be an int or 1 to 3 ints .*\(\)"),
        ({"roi_size": 4, "overlap": 1.0}, ValueError, "overlap must be < 1.0, got 1.0"),
        ({"roi_size": 4, "overlap": -0.1}, ValueError, "overlap must be >= 0.0, got -0.1"),
        ({"roi_size": 4, "mode": "linear"}, ValueError, "mode must be one of .*got 'linear'"),
        ({"roi_size": 4, "sigma_scale": 0}, ValueError, "sigma_scale must be > 0.0, got 0"),
        ({"roi_size": 4, "windows_per_batch": 0}, ValueError, "windows_per_batch must be >= 1, got 0"),
        ({"roi_size": 4, "windows_per_batch": True}, TypeError, "windows_per_batch must be an integer"),
        ({"roi_size": 4, "placement": "nnU-Net"}, ValueError, "placement must be one of .*got 'nnU-Net'"),
    ],
)
def test_bad_options_raise_naming_field_and_value(kwargs, error, match):
    with pytest.raises(error, match=match):
        SlidingWindow(**kwargs)


def test_window_is_frozen_and_normalises_roi():
    window = SlidingWindow([4, 3, 4])
    assert window.roi_size == (4, 3, 4) and window.roi(3) == (4, 3, 4)
    assert SlidingWindow(5).roi(2) == (5, 5)
    assert (window.overlap, window.mode, window.sigma_scale, window.windows_per_batch) == (0.25, "gaussian", 0.125, 4)
    with pytest.raises(ValueError, match=r"roi_size \(4, 3, 4\) has 3 dimension\(s\), the input has 2"):
        window.roi(2)
    with pytest.raises(AttributeError):
        window.overlap = 0.5


def test_estimator_validates_and_sets_sliding_window():
    with pytest.raises(TypeError, match="sliding_window must be SlidingWindow or NoneType, got dict"):
        segmenter(pointwise_model(), sliding_window={"roi_size": 4})
    with pytest.raises(ValueError, match=r"roi_size \(4, 4\) has 2 dimension\(s\), the input has 3"):
        segmenter(pointwise_model(), sliding_window=SlidingWindow((4, 4)))
    plain = segmenter(pointwise_model())
    x, _ = batch()
    before = plain.predict(x)
    window = SlidingWindow(**WINDOW)
    plain.set_params(sliding_window=window)
    assert plain.sliding_window is window and plain.get_params()["sliding_window"] is window
    np.testing.assert_allclose(plain.predict(x), before, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="has 1 dimension"):
        plain.set_params(sliding_window=SlidingWindow((4,)))
    assert plain.sliding_window is window
    plain.set_params(sliding_window=None)
    assert plain.sliding_window is None and np.array_equal(plain.predict(x), before)


# ---------------------------------------------------------------------------------------------- the scan
@pytest.mark.parametrize(
    ("size", "roi", "overlap", "starts"),
    [
        (10, 4, 0.25, [0, 3, 6]),  # step 3, last flush
        (10, 4, 0.5, [0, 2, 4, 6]),
        (11, 4, 0.0, [0, 4, 7]),  # step 4, last moved back to 7
        (4, 4, 0.5, [0]),  # exactly one window
        (3, 4, 0.25, [0]),  # shorter than the window: the window is clipped to 3
        (5, 3, 0.9, [0, 1, 2]),  # floor(0.3) = 0 -> step 1
    ],
)
def test_window_slices_by_hand(size, roi, overlap, starts):
    assert window_slices((size,), roi, overlap) == [(slice(s, s + min(roi, size)),) for s in starts]


def test_window_slices_product_and_clipping():
    slices = window_slices((7, 5, 3), (4, 3, 4), 0.4)
    assert len(slices) == 3 * 3 * 1  # 7: step 2, [0, 2, 3]; 5: step 1, [0, 1, 2]; 3: [0], the window clipped to 3
    assert slices[0] == (slice(0, 4), slice(0, 3), slice(0, 3))
    assert slices[-1] == (slice(3, 7), slice(2, 5), slice(0, 3))
    assert effective_roi_size((7, 5, 3), (4, 3, 4)) == (4, 3, 3)
    assert effective_roi_size((2,), 7) == (2,)
    assert window_slices((155, 240, 240), 1000, 0.5) == [(slice(0, 155), slice(0, 240), slice(0, 240))]
    with pytest.raises(ValueError, match="roi_size must be >= 1, got 0"):
        effective_roi_size((4, 4), (4, 0))
    with pytest.raises(ValueError, match="spatial_shape must be >= 1, got 0"):
        window_slices((0, 4), 2, 0.5)


@pytest.mark.parametrize("mode", ["gaussian", "constant"])
def test_a_window_larger_than_the_volume_is_whole_volume_inference_without_padding(mode):
    """Issue 12.10: ``--window 1000`` padded the volume to 1000^3 voxels; the window is now clipped to the
    volume, so the model only ever sees windows inside it and the result is whole-volume inference."""
    seen = []

    def spy(model):
        model.register_forward_pre_hook(lambda _m, inputs: seen.append(tuple(inputs[0].shape[2:])))
        return model

    huge = SlidingWindow(1000, mode=mode)
    whole = segmenter(spy(pointwise_model()))
    windowed = segmenter(spy(pointwise_model()), huge)
    x, y = batch()
    np.testing.assert_allclose(windowed.predict(x), whole.predict(x), rtol=0, atol=1e-12)
    np.testing.assert_allclose(windowed.loss_gradient(x, y), whole.loss_gradient(x, y), rtol=0, atol=1e-10)
    assert set(seen) == {SHAPE}
    # one huge dimension only: windows of (4, 5, 3), the long axis still scanned
    expected = whole.predict(x)
    seen.clear()
    partial = segmenter(spy(pointwise_model()), SlidingWindow((4, 1000, 1000), overlap=0.5, mode=mode))
    np.testing.assert_allclose(partial.predict(x), expected, rtol=0, atol=1e-12)
    assert set(seen) == {(4, 5, 3)}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 40), st.integers(1, 12)), min_size=1, max_size=3),
    st.floats(0.0, 0.95),
)
def test_window_slices_cover_every_voxel_from_0_to_the_end(dims, overlap):
    shape, roi = tuple(d[0] for d in dims), tuple(d[1] for d in dims)
    slices = window_slices(shape, roi, overlap)
    roi = tuple(min(s, r) for s, r in zip(shape, roi))
    covered = np.zeros(shape, dtype=int)
    for region in slices:
        assert all(sl.stop - sl.start == r and 0 <= sl.start and sl.stop <= s for sl, r, s in zip(region, roi, shape))
        covered[region] += 1
    assert covered.min() >= 1
    assert len({tuple(sl.start for sl in region) for region in slices}) == len(slices)
    for d, (size, r) in enumerate(zip(shape, roi)):
        starts = sorted({region[d].start for region in slices})
        assert starts[0] == 0 and starts[-1] == size - r
        step = max(1, int(r * (1 - overlap)))
        assert all(0 < b - a <= step for a, b in zip(starts, starts[1:]))


# ---------------------------------------------------------------------------------------------- blending weights
def test_gaussian_weights_by_hand_and_properties():
    weights = blending_weights((3,), "gaussian", sigma_scale=1.0, dtype=torch.float64)
    expected = math.exp(-1 / (2 * 3.0**2))
    torch.testing.assert_close(weights, torch.tensor([expected, 1.0, expected], dtype=torch.float64))
    # even size: no voxel at the centre, and MONAI does not renormalise, so the maximum is below 1
    even = blending_weights((2,), "gaussian", sigma_scale=1.0, dtype=torch.float64)
    torch.testing.assert_close(even, torch.full((2,), math.exp(-0.25 / (2 * 2.0**2)), dtype=torch.float64))
    cube = blending_weights((6, 5, 4), dtype=torch.float64)
    assert cube.shape == (6, 5, 4) and cube.dtype == torch.float64
    centre = math.exp(-0.25 / (2 * 0.75**2)) * math.exp(-0.25 / (2 * 0.5**2))  # (6: sigma 0.75, 4: sigma 0.5)
    assert float(cube.max()) == pytest.approx(centre) and float(cube.min()) == pytest.approx(1e-3)
    torch.testing.assert_close(cube, cube.flip(0).flip(1).flip(2))
    big = blending_weights((63, 64, 65))
    assert big.dtype == torch.float32 and float(big.min()) >= 1e-3 and float(big.max()) < 1.0
    assert torch.equal(blending_weights((2, 3), "constant"), torch.ones(2, 3))
    with pytest.raises(ValueError, match="mode must be one of"):
        blending_weights((2,), "cosine")


# ---------------------------------------------------------------------------------------------- differentiability
@pytest.mark.parametrize("mode", ["gaussian", "constant"])
def test_sliding_window_logits_passes_gradcheck(mode):
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(2, 2, kernel_size=3, padding=1).double()
    x = torch.randn(2, 2, 5, 3, 2, dtype=torch.float64, requires_grad=True)
    window = SlidingWindow((3, 3, 3), overlap=0.5, mode=mode, sigma_scale=0.5, windows_per_batch=3)
    assert torch.autograd.gradcheck(lambda v: sliding_window_logits(conv, v, window), (x,))


# ---------------------------------------------------------------------------------------------- exact stitching
@pytest.mark.parametrize("mode", ["gaussian", "constant"])
def test_pointwise_model_gives_whole_volume_results_for_every_loss(mode):
    whole = segmenter(pointwise_model())
    windowed = segmenter(pointwise_model(), SlidingWindow(**WINDOW, mode=mode))
    x, y = batch()
    for loss in LOSS_NAMES:
        grad = windowed.loss_gradient(x, y, loss=loss)
        np.testing.assert_allclose(grad, whole.loss_gradient(x, y, loss=loss), rtol=0, atol=1e-10, err_msg=loss)
        assert np.abs(grad).max() > 1e-4
    np.testing.assert_allclose(windowed.predict(x), whole.predict(x), rtol=0, atol=1e-12)
    np.testing.assert_allclose(windowed.predict(x, logits=True), whole.predict(x, logits=True), rtol=0, atol=1e-12)
    np.testing.assert_allclose(windowed.compute_loss(x, y), whole.compute_loss(x, y), rtol=0, atol=1e-12)
    np.testing.assert_allclose(windowed.class_gradient(x), whole.class_gradient(x), rtol=0, atol=1e-10)


def test_pointwise_equality_with_masks_tensors_and_sigmoid():
    whole = segmenter(pointwise_model(), activation="sigmoid")
    windowed = segmenter(pointwise_model(), SlidingWindow(**WINDOW), activation="sigmoid")
    x, _ = batch(seed=1)
    rng = np.random.default_rng(2)
    y = (rng.uniform(size=(2, 3, *SHAPE)) > 0.5).astype(np.float64)
    mask = (rng.uniform(size=(2, *SHAPE)) > 0.3).astype(np.float64)
    x_t = torch.from_numpy(x)
    grad = windowed.loss_gradient(x_t, y, voxel_weights=mask)
    assert isinstance(grad, torch.Tensor)
    np.testing.assert_allclose(grad.numpy(), whole.loss_gradient(x, y, voxel_weights=mask), rtol=0, atol=1e-10)
    labels = [2, 0]
    np.testing.assert_allclose(
        windowed.class_gradient(x, label=labels, voxel_weights=mask, probabilities=True),
        whole.class_gradient(x, label=labels, voxel_weights=mask, probabilities=True),
        rtol=0,
        atol=1e-10,
    )


def test_numpy_preprocessing_defence_is_applied_to_the_whole_volume():
    def build(window):
        defence = SpatialSmoothing(window_size=3, channels_first=True)
        return segmenter(pointwise_model(), window, preprocessing=None, preprocessing_defences=defence)

    whole, windowed = build(None), build(SlidingWindow(**WINDOW))
    x, y = batch(seed=3)
    np.testing.assert_allclose(windowed.predict(x), whole.predict(x), rtol=0, atol=1e-12)
    np.testing.assert_allclose(windowed.loss_gradient(x, y), whole.loss_gradient(x, y), rtol=0, atol=1e-10)


def test_iterative_attack_with_a_sliding_window_matches_whole_volume():
    whole = segmenter(pointwise_model(), clip_values=(-4.0, 4.0))
    windowed = segmenter(pointwise_model(), SlidingWindow(**WINDOW), clip_values=(-4.0, 4.0))
    x, y = batch(seed=4)
    x = np.clip(x, -4, 4)
    kwargs = {"eps": 0.3, "eps_step": 0.1, "max_iter": 3}
    x_whole = IterativeFGSM(whole, **kwargs).generate(x, y)
    x_windowed = IterativeFGSM(windowed, **kwargs).generate(x, y)
    np.testing.assert_allclose(x_windowed, x_whole, rtol=0, atol=1e-12)
    assert np.abs(x_windowed - x).max() > 0.29


# ---------------------------------------------------------------------------------------------- any model
def unet_segmenter(window, dropout=0.0):
    torch.manual_seed(1)
    model = UNet3D(2, 3, base_filters=2, depth=1, norm="instance", dropout=dropout).double()
    return segmenter(model, window, preprocessing=(0.25, 1.5))  # exact in float32, as ART stores them


def full_graph_gradient(seg, x, objective):
    """Reference: autograd through the stitched logits of all windows built in one graph."""
    leaf = torch.tensor(x, requires_grad=True)
    stitched = sliding_window_logits(seg.logits, (leaf - 0.25) / 1.5, seg.sliding_window)
    return torch.autograd.grad(objective(stitched), leaf)[0].numpy()


@pytest.mark.parametrize("mode", ["gaussian", "constant"])
def test_window_by_window_gradient_equals_autograd_through_the_stitched_graph(mode):
    window = SlidingWindow((4, 4, 4), overlap=0.5, mode=mode, windows_per_batch=2)
    seg = unet_segmenter(window)
    x, y = batch(seed=5, shape=(7, 5, 4))  # every effective window 4 long: the UNet needs even sizes
    y_t = torch.from_numpy(y)
    for loss in ("dice_ce", "margin"):
        from art_seg.losses.registry import per_sample_loss

        loss_fn = per_sample_loss(loss, activation="softmax")
        expected = full_graph_gradient(seg, x, lambda logits: loss_fn(logits, y_t, None).sum())
        np.testing.assert_allclose(seg.loss_gradient(x, y, loss=loss), expected, rtol=1e-9, atol=1e-12)
    expected = full_graph_gradient(seg, x, lambda logits: logits[:, 1].sum())
    np.testing.assert_allclose(seg.class_gradient(x, label=1)[:, 0], expected, rtol=1e-9, atol=1e-12)


def test_functional_gradients_replay_dropout_masks():
    window = SlidingWindow((4, 4, 4), overlap=0.25, windows_per_batch=2)
    torch.manual_seed(2)
    model = UNet3D(2, 3, base_filters=2, depth=1, norm=None, dropout=0.5).double().train()
    x = torch.randn(1, 2, 6, 5, 4, dtype=torch.float64)
    torch.manual_seed(3)
    (grad,) = sliding_window_gradients(model, x, window, lambda logits: [(logits**2).sum()])
    torch.manual_seed(3)
    leaf = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad((sliding_window_logits(model, leaf, window) ** 2).sum(), leaf)
    torch.testing.assert_close(grad, expected, rtol=1e-9, atol=1e-12)
