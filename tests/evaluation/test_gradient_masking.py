"""The gradient-masking check: flags shattered gradients through transfer, and reports the margin attack."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from art_seg.attacks import FGSM, IterativeFGSM
from art_seg.estimators import PyTorchSegmenter
from art_seg.evaluation import gradient_masking_check


class Quantised(torch.nn.Module):
    """Input quantised to steps of 0.25 before the model: the same predictions up to rounding, and an input
    gradient of exactly zero everywhere (shattered gradients, Athalye et al. 2018)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(torch.round(x * 4) / 4)


def make_attack(estimator, loss):
    return IterativeFGSM(estimator, eps=0.8, eps_step=0.2, max_iter=5, loss=loss)


def wrap(model: torch.nn.Module, like: PyTorchSegmenter) -> PyTorchSegmenter:
    return PyTorchSegmenter(
        model,
        "ce",
        input_shape=like.input_shape,
        nb_classes=like.nb_classes,
        clip_values=(-3.0, 5.0),
        device_type="cpu",
    )


def test_shattered_gradients_are_flagged_by_transfer(trained_segmenter, blob_data, clean_dice) -> None:
    x, y = blob_data
    masked = wrap(Quantised(copy.deepcopy(trained_segmenter.model)), trained_segmenter)
    check = gradient_masking_check(masked, make_attack, x, y, reference=trained_segmenter)
    assert check.clean.mean() == pytest.approx(clean_dice, abs=0.05)
    # zero gradients: neither white-box attack moves the input, so Dice stays clean
    np.testing.assert_array_equal(check.white_box, check.clean)
    np.testing.assert_array_equal(check.margin, check.clean)
    assert check.transfer is not None and check.transfer.mean() < check.clean.mean() - 0.4
    assert check.masking_suspected
    assert check.overstatement == pytest.approx(check.white_box.mean() - check.transfer.mean())
    names = [name for name, _ in check.rows()]
    assert names == [
        "clean",
        "white-box",
        "white-box, margin loss",
        "transfer from reference",
        "strongest of the above",
    ]


def test_ordinary_model_is_not_flagged_and_margin_is_reported(trained_segmenter, blob_data) -> None:
    x, y = blob_data
    twin = wrap(copy.deepcopy(trained_segmenter.model), trained_segmenter)
    twin.set_params(loss=trained_segmenter.loss)
    check = gradient_masking_check(trained_segmenter, make_attack, x, y, reference=twin)
    # transfer from an identical model is the white-box attack itself
    np.testing.assert_allclose(check.transfer, check.white_box)
    assert not check.masking_suspected
    # the margin loss does not saturate where cross-entropy does: a stronger attack (measured 0.05 vs 0.30)
    assert check.margin.mean() < check.white_box.mean() - 0.1
    np.testing.assert_array_equal(check.strongest, np.minimum(check.white_box, check.margin))
    assert gradient_masking_check(trained_segmenter, make_attack, x, y).transfer is None


def test_bad_arguments(trained_segmenter, blob_data) -> None:
    x, y = blob_data
    other = wrap(copy.deepcopy(trained_segmenter.model), trained_segmenter)
    with pytest.raises(TypeError, match="make_attack must be a callable"):
        gradient_masking_check(trained_segmenter, "fgsm", x, y)
    with pytest.raises(ValueError, match="make_attack must build the attack on the estimator it is given"):
        gradient_masking_check(trained_segmenter, lambda est, loss: FGSM(other, eps=0.1), x, y)
    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        gradient_masking_check(trained_segmenter, make_attack, x, y, tolerance=-1.0)
