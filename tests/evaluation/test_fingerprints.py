"""Fingerprints: equal for equal content whatever the object or layout; different for any change that matters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from art_seg.defences import copy_segmenter
from art_seg.estimators import PyTorchSegmenter, SlidingWindow
from art_seg.evaluation.attack_specs import attack_spec
from art_seg.evaluation.fingerprints import attack_fingerprint, digest, model_fingerprint
from art_seg.models import UNet3D
from tests.helpers import requires_cuda


def segmenter(device_type: str = "cpu") -> PyTorchSegmenter:
    torch.manual_seed(0)
    model = UNet3D(2, 3, base_filters=2, depth=1, norm="batch")
    return PyTorchSegmenter(model, "dice_ce", input_shape=(2, 8, 8, 8), nb_classes=3, device_type=device_type)


def test_digest_depends_on_content_only() -> None:
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    assert digest({"x": a, "eps": 0.1}) == digest({"eps": 0.1, "x": np.asfortranarray(a.copy())})
    assert digest(a[:, :, ::2]) == digest(np.ascontiguousarray(a[:, :, ::2]))
    assert digest(torch.from_numpy(a)) == digest(torch.from_numpy(a).to(memory_format=torch.contiguous_format))
    changed = a.copy()
    changed[1, 2, 3] = np.nextafter(changed[1, 2, 3], np.inf)  # one bit
    assert len({digest(a), digest(changed), digest(a.astype(np.float64)), digest(a.reshape(6, 4))}) == 4
    assert digest([1, 2]) != digest([[1, 2]]) and digest("1") != digest(1) and digest(None) != digest("null")
    with pytest.raises(TypeError, match="cannot fingerprint a object"):
        digest(object())


def test_model_fingerprint_sees_weights_buffers_and_inference_settings() -> None:
    seg = segmenter()
    base = model_fingerprint(seg)
    assert model_fingerprint(copy_segmenter(seg)) == base  # another object, the same function
    with torch.no_grad():
        other = copy_segmenter(seg)
        next(other.model.parameters())[0].add_(1e-6)
    assert model_fingerprint(other)["weights"] != base["weights"]
    moved = copy_segmenter(seg)
    next(b for b in moved.model.buffers() if b.is_floating_point()).add_(0.5)  # a BatchNorm running statistic
    assert model_fingerprint(moved)["weights"] != base["weights"]
    for change in ({"sliding_window": SlidingWindow(roi_size=8)}, {"autocast": "bfloat16"}, {"loss": "ce"}):
        [name] = change
        fingerprint = model_fingerprint(copy_segmenter(seg, **change))
        assert fingerprint["weights"] == base["weights"]
        assert [k for k in base["inference"] if base["inference"][k] != fingerprint["inference"][k]] == [name]
    windows = [
        SlidingWindow(roi_size=8),
        SlidingWindow(roi_size=8, placement="nnunet"),
        SlidingWindow(roi_size=8, mode="nnunet"),
        SlidingWindow(roi_size=8, mode="constant"),
        SlidingWindow(roi_size=8, sigma_scale=0.25),
        SlidingWindow(roi_size=8, overlap=0.5),
        SlidingWindow(roi_size=8, windows_per_batch=2),
    ]
    windowed = [
        model_fingerprint(copy_segmenter(seg, sliding_window=w))["inference"]["sliding_window"] for w in windows
    ]
    assert len({digest(w) for w in windowed}) == len(windows)  # every field of the window counts
    clipped = copy_segmenter(seg, clip_values=(-3.0, 5.0), preprocessing=(0.5, 2.0))
    changed = [k for k in base["inference"] if base["inference"][k] != model_fingerprint(clipped)["inference"][k]]
    assert changed == ["clip_values", "preprocessing"]


def test_attack_fingerprint_sees_the_parameters_and_target() -> None:
    seg = segmenter()
    base = attack_fingerprint(attack_spec("i-fgsm"), seg, 0.1)
    assert base == attack_fingerprint(attack_spec("i-fgsm"), seg, 0.1)
    assert base["params"]["eps_step"] == pytest.approx(0.025) and base["params"]["norm"] == "inf"
    assert attack_fingerprint(attack_spec("i-fgsm", step_fraction=0.5), seg, 0.1) != base
    assert attack_fingerprint(attack_spec("i-fgsm"), seg, 0.2) != base
    assert attack_fingerprint(attack_spec("ti-fgsm"), seg, 0.1)["target"].endswith("_erase_foreground")


@requires_cuda
def test_model_fingerprint_is_the_same_on_every_device() -> None:
    assert model_fingerprint(segmenter("gpu")) == model_fingerprint(segmenter("cpu"))
