"""Sliding-window modes against the tools they reproduce: MONAI's ``compute_importance_map`` and
``sliding_window_inference``, nnU-Net v2's ``compute_gaussian``, ``compute_steps_for_sliding_window``,
``pad_nd_image`` and ``nnUNetPredictor``'s own window slicers and stitching; and the window-by-window gradient
against autograd for the new modes (with nnU-Net's padding)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from art_seg.estimators.sliding_window import (
    SlidingWindow,
    blending_weights,
    padding,
    sliding_window_gradients,
    sliding_window_logits,
    window_slices,
)

ROIS = [(5, 5, 5), (4, 6, 8), (7, 4, 10), (9, 12)]  # odd, even, anisotropic, 2-D


pytestmark = pytest.mark.usefixtures("one_thread_module")  # tiny tensors: one thread is faster


def conv_model(dtype=torch.float32, channels=2, classes=3, seed=0):
    """A tiny 3-D conv net with a receptive field wider than one voxel: window borders change its logits."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Conv3d(channels, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.Conv3d(4, classes, 3, padding=1)
    )
    return model.to(dtype).eval()


# ---------------------------------------------------------------------------------------------- MONAI
@pytest.mark.parametrize("roi", ROIS)
@pytest.mark.parametrize("sigma_scale", [0.125, 0.3, 1.0])
def test_gaussian_mode_is_monai_compute_importance_map(roi, sigma_scale):
    monai_utils = pytest.importorskip("monai.data.utils")
    expected = monai_utils.compute_importance_map(roi, mode="gaussian", sigma_scale=sigma_scale, dtype=torch.float32)
    ours = blending_weights(roi, "gaussian", sigma_scale)
    torch.testing.assert_close(ours, expected, rtol=1e-6, atol=1e-7)
    if sigma_scale == 0.125 and len(roi) == 3:
        assert float(ours.min()) == pytest.approx(1e-3)  # MONAI's clamp is reached at the 1/8 corners
    constant = monai_utils.compute_importance_map(roi, mode="constant")
    assert torch.equal(blending_weights(roi, "constant"), constant)


@pytest.mark.parametrize("mode", ["gaussian", "constant"])
@pytest.mark.parametrize(
    ("shape", "roi", "overlap", "sigma_scale"),
    [
        ((13, 10, 9), (4, 6, 5), 0.25, 0.125),
        ((12, 12, 12), (6, 6, 6), 0.5, 0.125),
        ((11, 9, 8), (5, 4, 8), 0.6, 0.3),  # the last dimension exactly one window
    ],
)
def test_stitched_logits_equal_monai_sliding_window_inference(mode, shape, roi, overlap, sigma_scale):
    inferers = pytest.importorskip("monai.inferers")
    model = conv_model()
    x = torch.randn(2, 2, *shape, generator=torch.Generator().manual_seed(1))
    window = SlidingWindow(roi, overlap=overlap, mode=mode, sigma_scale=sigma_scale, windows_per_batch=3)
    with torch.no_grad():
        expected = inferers.sliding_window_inference(
            x, roi, 3, model, overlap=overlap, mode=mode, sigma_scale=sigma_scale
        )
        ours = sliding_window_logits(model, x, window)
        whole = model(x)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)
    assert float((expected - whole).abs().max()) > 1e-3  # the windows matter: not whole-volume logits


@pytest.mark.parametrize("mode", ["gaussian", "constant"])
@pytest.mark.parametrize(("shape", "roi"), [((13, 5, 9), (4, 6, 5)), ((3, 4, 2), (4, 6, 5)), ((12, 9, 7), (4, 6, 5))])
def test_monai_padded_equals_sliding_window_inference_on_smaller_volumes(mode, shape, roi):
    inferers = pytest.importorskip("monai.inferers")
    model = conv_model()
    x = torch.randn(2, 2, *shape, generator=torch.Generator().manual_seed(7))
    window = SlidingWindow(roi, overlap=0.5, mode=mode, windows_per_batch=2, placement="monai_padded")
    with torch.no_grad():
        expected = inferers.sliding_window_inference(x, roi, 2, model, overlap=0.5, mode=mode)
        ours = sliding_window_logits(model, x, window)
        clipped = sliding_window_logits(model, x, SlidingWindow(roi, overlap=0.5, mode=mode))
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)
    if any(s < r for s, r in zip(shape, roi)):
        assert float((clipped - expected).abs().max()) > 1e-3  # "monai" clips the window instead of padding
    else:
        torch.testing.assert_close(clipped, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize(("shape", "placement"), [((9, 8, 7), "monai"), ((3, 8, 2), "monai_padded")])
def test_monai_gradient_equals_autograd_through_sliding_window_inference(shape, placement):
    inferers = pytest.importorskip("monai.inferers")
    model = conv_model(torch.float64)
    x = torch.randn(1, 2, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    window = SlidingWindow((4, 5, 4), overlap=0.5, mode="gaussian", windows_per_batch=2, placement=placement)
    weights = torch.randn(1, 3, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    leaf = x.clone().requires_grad_(True)
    stitched = inferers.sliding_window_inference(leaf, (4, 5, 4), 2, model, overlap=0.5, mode="gaussian")
    (expected,) = torch.autograd.grad((stitched * weights).sum(), leaf)
    (ours,) = sliding_window_gradients(model, x, window, lambda logits: [(logits * weights).sum()])
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-7)  # MONAI computes its map in float32


# ---------------------------------------------------------------------------------------------- nnU-Net
def nnunet_functions():
    module = pytest.importorskip("nnunetv2.inference.sliding_window_prediction")
    return module.compute_gaussian, module.compute_steps_for_sliding_window


@pytest.mark.parametrize("roi", ROIS + [(10, 10, 10), (3, 4, 2)])
@pytest.mark.parametrize("sigma_scale", [0.125, 0.25, 0.01])  # 0.01: a kernel of one voxel, zeros replaced
def test_nnunet_mode_is_nnunet_compute_gaussian(roi, sigma_scale):
    compute_gaussian, _ = nnunet_functions()
    compute_gaussian.cache_clear()
    for dtype in (torch.float64, torch.float32):
        expected = compute_gaussian(roi, sigma_scale, 1, dtype=dtype, device=torch.device("cpu"))
        ours = blending_weights(roi, "nnunet", sigma_scale, dtype=dtype)
        torch.testing.assert_close(ours, expected, rtol=1e-12 if dtype == torch.float64 else 1e-6, atol=0)
    scaled = compute_gaussian(roi, sigma_scale, 10, dtype=torch.float64, device=torch.device("cpu"))
    torch.testing.assert_close(blending_weights(roi, "nnunet", sigma_scale, dtype=torch.float64), scaled / 10)
    if sigma_scale == 0.01:
        assert torch.equal(ours, torch.ones(roi))  # only the centre survived the filter; zeros -> that value
    else:
        assert float(ours.max()) == 1.0 and float(ours.min()) > 0


@pytest.mark.parametrize(
    ("size", "roi", "overlap"),
    [(155, 32, 0.5), (110, 64, 0.5), (64, 64, 0.5), (65, 64, 0.5), (240, 128, 0.5), (100, 32, 0.25), (97, 40, 0.0),
     (50, 7, 0.7), (33, 2, 0.5)],
)
def test_nnunet_placement_equals_compute_steps_for_sliding_window(size, roi, overlap):
    _, compute_steps = nnunet_functions()
    [expected] = compute_steps((size,), (roi,), 1 - overlap)
    assert [region[0].start for region in window_slices((size,), roi, overlap, "nnunet")] == expected
    assert all(region[0].stop - region[0].start == roi for region in window_slices((size,), roi, overlap, "nnunet"))


def test_nnunet_placement_by_hand_and_in_3d():
    _, compute_steps = nnunet_functions()
    starts = [region[0].start for region in window_slices((155,), 32, 0.5, "nnunet")]
    assert starts == [0, 15, 31, 46, 62, 77, 92, 108, 123]  # MONAI's scan: 0, 16, 32, ..., 112, 123
    assert [region[0].start for region in window_slices((155,), 32, 0.5)] == [*range(0, 113, 16), 123]
    shape, roi = (155, 70, 40), (32, 48, 40)
    expected = compute_steps(shape, roi, 0.5)
    slices = window_slices(shape, roi, 0.5, "nnunet")
    assert len(slices) == np.prod([len(e) for e in expected])
    for d in range(3):
        assert sorted({region[d].start for region in slices}) == expected[d]


def test_nnunet_padding_is_pad_nd_image():
    padding_module = pytest.importorskip("acvl_utils.cropping_and_padding.padding")
    for shape, roi in (((20, 40, 9), (32, 32, 32)), ((5, 6, 7), (4, 9, 10)), ((8, 8), (8, 8))):
        x = np.zeros((1, *shape))
        _, slicer = padding_module.pad_nd_image(x, roi, "constant", {"constant_values": 0}, True)
        expected = tuple((sl.start, roi_d - sl.stop) if sl.start is not None else (0, 0)
                         for sl, roi_d in zip(slicer[1:], (max(r, s) for r, s in zip(roi, shape))))
        assert padding(shape, roi, "nnunet") == expected
        assert padding(shape, roi, "monai_padded") == expected  # MONAI's sliding_window_inference pads alike
        assert padding(shape, roi, "monai") == ((0, 0),) * len(shape)
    with pytest.raises(ValueError, match="placement='nnunet' needs a volume at least roi_size"):
        window_slices((20, 40), 32, 0.5, "nnunet")


def nnunet_predictor(model, patch, step, classes):
    """``nnUNetPredictor`` with the plans' parts its sliding window reads (patch size, number of heads)."""
    predict = pytest.importorskip("nnunetv2.inference.predict_from_raw_data")
    predictor = predict.nnUNetPredictor(
        tile_step_size=step, use_mirroring=False, perform_everything_on_device=False, device=torch.device("cpu"),
        allow_tqdm=False,
    )
    predictor.network = model
    predictor.configuration_manager = SimpleNamespace(patch_size=list(patch))
    predictor.label_manager = SimpleNamespace(num_segmentation_heads=classes)
    predictor.allowed_mirroring_axes = None
    return predictor


def nnunet_reference(model, x, patch, step, classes=3):
    """nnUNetPredictor.predict_sliding_window_return_logits for one ``x (C, *spatial)``, in ``x``'s dtype (not
    float16) and differentiable: its own padding, window slicers and Gaussian, its accumulation."""
    compute_gaussian, _ = nnunet_functions()
    from acvl_utils.cropping_and_padding.padding import pad_nd_image

    predictor = nnunet_predictor(model, patch, step, classes)
    data, revert = pad_nd_image(x, patch, "constant", {"value": 0}, True, None)
    gaussian = compute_gaussian(tuple(patch), 1 / 8, 10, dtype=x.dtype, device=torch.device("cpu"))
    logits = torch.zeros((classes, *data.shape[1:]), dtype=x.dtype)
    counts = torch.zeros(data.shape[1:], dtype=x.dtype)
    for sl in predictor._internal_get_sliding_window_slicers(data.shape[1:]):
        logits[sl] += model(data[sl][None])[0] * gaussian
        counts[sl[1:]] += gaussian
    return (logits / counts)[(slice(None), *revert[1:])]


NNUNET_CASES = [((21, 13, 17), (8, 8, 8)), ((6, 13, 5), (8, 8, 8)), ((9, 10, 11), (4, 6, 8))]  # middle: padded


@pytest.mark.parametrize(("shape", "patch"), NNUNET_CASES)
def test_nnunet_window_equals_the_predictor(shape, patch):
    model = conv_model()
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(4))
    window = SlidingWindow(patch, overlap=0.5, mode="nnunet", placement="nnunet", windows_per_batch=5)
    with torch.no_grad():
        ours = sliding_window_logits(model, x[None], window)[0]
        torch.testing.assert_close(ours, nnunet_reference(model, x, patch, 0.5), rtol=0, atol=1e-6)
        compute_gaussian, _ = nnunet_functions()
        compute_gaussian.cache_clear()  # the predictor's float16 map is cached by (patch, sigma, scale, dtype, device)
        half = nnunet_predictor(model, patch, 0.5, 3).predict_sliding_window_return_logits(x)
    assert half.dtype == torch.float16 and half.shape == ours.shape
    # The predictor itself accumulates in float16 with a float16 map (whose corner weights underflow and are
    # replaced by its smallest value): measured here up to 0.37 apart at window corners, 98-99.7 % of voxels within
    # 0.02, argmax agreement 99.2-100 %.
    close = ((half.float() - ours).abs() < 2e-2).float().mean()
    agreement = (half.float().argmax(0) == ours.argmax(0)).float().mean()
    assert close >= 0.98 and agreement >= 0.99, (float(close), float(agreement))
    with torch.no_grad():
        monai_style = sliding_window_logits(model, x[None], SlidingWindow(patch, overlap=0.5))[0]
    assert float((monai_style - ours).abs().max()) > 1e-3  # the two reproductions differ


@pytest.mark.parametrize(("shape", "patch"), NNUNET_CASES[1:])
def test_nnunet_window_gradients_equal_autograd_through_the_predictor_reference(shape, patch):
    model = conv_model(torch.float64)
    x = torch.randn(1, 2, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    weights = torch.randn(1, 3, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    window = SlidingWindow(patch, overlap=0.5, mode="nnunet", placement="nnunet", windows_per_batch=3)
    leaf = x[0].clone().requires_grad_(True)
    (reference,) = torch.autograd.grad((nnunet_reference(model, leaf, patch, 0.5) * weights[0]).sum(), leaf)
    leaf = x.clone().requires_grad_(True)
    (autograd,) = torch.autograd.grad((sliding_window_logits(model, leaf, window) * weights).sum(), leaf)
    (ours,) = sliding_window_gradients(model, x, window, lambda logits: [(logits * weights).sum()])
    assert ours.shape == x.shape and ours.is_contiguous()
    torch.testing.assert_close(autograd[0], reference, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(ours, autograd, rtol=1e-9, atol=1e-12)


def test_padded_nnunet_window_passes_gradcheck():
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(2, 2, kernel_size=3, padding=1).double()
    x = torch.randn(1, 2, 3, 5, 2, dtype=torch.float64, requires_grad=True)  # padded to 4 in dims 0 and 2
    window = SlidingWindow((4, 3, 4), overlap=0.5, mode="nnunet", placement="nnunet", windows_per_batch=2)
    assert torch.autograd.gradcheck(lambda v: sliding_window_logits(conv, v, window), (x,))


def test_placement_is_validated_and_defaults_to_monai():
    assert SlidingWindow(4).placement == "monai"
    with pytest.raises(ValueError, match=r"placement must be one of \('monai', 'monai_padded', 'nnunet'\), got 'x'"):
        SlidingWindow(4, placement="x")
    with pytest.raises(ValueError, match=r"mode must be one of \('gaussian', 'nnunet', 'constant'\), got 'cosine'"):
        SlidingWindow(4, mode="cosine")
