"""Mixed precision: bf16 autocast on the CPU keeps predictions, float32 gradients and training working."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from art_seg.attacks import IterativeFGSM
from art_seg.defences import SegmentationTrainer, copy_segmenter
from tests.helpers import TASK_CLASSES, make_blob_task, mean_dice


def test_bf16_predict_and_gradients_track_float32(trained_segmenter, blob_data) -> None:
    x, y = blob_data
    fast = copy_segmenter(trained_segmenter, autocast="bfloat16")
    assert fast.autocast == "bfloat16" and trained_segmenter.autocast is None
    full, half = trained_segmenter.predict(x), fast.predict(x)
    assert half.dtype == np.float32
    agreement = (full.argmax(1) == half.argmax(1)).mean()
    assert agreement > 0.98, agreement
    g_full = trained_segmenter.loss_gradient(torch.as_tensor(x), torch.as_tensor(y))
    g_half = fast.loss_gradient(torch.as_tensor(x), torch.as_tensor(y))
    assert g_half.dtype == torch.float32
    cosine = torch.nn.functional.cosine_similarity(g_full.flatten(), g_half.flatten(), dim=0)
    assert cosine > 0.9, cosine
    # the attack step stays in float32 and within budget
    x_adv = IterativeFGSM(fast, eps=0.4, eps_step=0.1, max_iter=3).generate(x, y)
    assert x_adv.dtype == np.float32 and np.abs(x_adv - x).max() <= 0.4 + 1e-6
    assert mean_dice(fast.predict(x_adv).argmax(1), y, TASK_CLASSES) < mean_dice(half.argmax(1), y, TASK_CLASSES) - 0.2


def test_bf16_training_learns(trained_segmenter) -> None:
    x, y = make_blob_task(8, seed=5)
    student = copy_segmenter(trained_segmenter, autocast="bfloat16")
    torch.manual_seed(0)
    for p in student.model.parameters():  # start from scratch, keep the architecture
        torch.nn.init.normal_(p, std=0.1)
    history = SegmentationTrainer(student, seed=0).fit(x, y, batch_size=4, nb_epochs=6)
    assert history[-1].loss < history[0].loss
    assert all(p.dtype == torch.float32 for p in student.model.parameters())


def test_bad_autocast_value(trained_segmenter) -> None:
    with pytest.raises(ValueError, match=r"autocast must be one of \(None, 'bfloat16', 'float16'\), got 'fp8'"):
        copy_segmenter(trained_segmenter, autocast="fp8")


def test_channels_last_and_compile_change_nothing_but_speed(trained_segmenter, blob_data) -> None:
    import copy

    from art_seg.estimators import PyTorchSegmenter

    x, y = blob_data
    reference_grad = trained_segmenter.loss_gradient(x, y)
    for options in ({"channels_last": True}, {"compile": "eager"}):
        other = PyTorchSegmenter(
            copy.deepcopy(trained_segmenter.model), trained_segmenter.loss, input_shape=trained_segmenter.input_shape,
            nb_classes=trained_segmenter.nb_classes, clip_values=(-3.0, 5.0), device_type="cpu", **options,
        )  # fmt: skip
        np.testing.assert_allclose(other.predict(x), trained_segmenter.predict(x), atol=1e-5)
        np.testing.assert_allclose(other.loss_gradient(x, y), reference_grad, atol=1e-6)
    with pytest.raises(TypeError, match="channels_last must be bool"):
        PyTorchSegmenter(trained_segmenter.model, input_shape=(2, 12, 12, 12), nb_classes=3, channels_last="yes")
