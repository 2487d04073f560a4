"""ART's own evasion attacks run unchanged against PyTorchSegmenter, with voxel labels and with y=None."""

from __future__ import annotations

import numpy as np
import pytest
from art.attacks.evasion import BasicIterativeMethod, FastGradientMethod, ProjectedGradientDescent
from art.attacks.evasion.projected_gradient_descent.projected_gradient_descent_numpy import (
    ProjectedGradientDescentNumpy,
)

from tests.helpers import TASK_CLASSES, mean_dice

EPS_INF = 0.8
EPS_L2 = 40.0


def _attacks(estimator):
    return {
        "fgm-inf": (FastGradientMethod(estimator, norm=np.inf, eps=EPS_INF, eps_step=EPS_INF), np.inf, EPS_INF),
        "fgm-l2": (FastGradientMethod(estimator, norm=2, eps=EPS_L2, eps_step=EPS_L2), 2, EPS_L2),
        "bim-inf": (
            BasicIterativeMethod(estimator, eps=EPS_INF, eps_step=0.2, max_iter=6, verbose=False),
            np.inf,
            EPS_INF,
        ),
        "pgd-inf": (
            ProjectedGradientDescent(estimator, norm=np.inf, eps=EPS_INF, eps_step=0.2, max_iter=6, verbose=False),
            np.inf,
            EPS_INF,
        ),
        "pgd-l2": (
            ProjectedGradientDescent(estimator, norm=2, eps=EPS_L2, eps_step=13.0, max_iter=6, verbose=False),
            2,
            EPS_L2,
        ),
    }


@pytest.mark.parametrize("name", ["fgm-inf", "fgm-l2", "bim-inf", "pgd-inf", "pgd-l2"])
@pytest.mark.parametrize("labels", ["given", "none"])
def test_art_attack_bounded_and_lowers_dice(name, labels, trained_segmenter, blob_data, clean_dice):
    x, y = blob_data
    x_before, y_before = x.copy(), y.copy()
    attack, norm, eps = _attacks(trained_segmenter)[name]
    if name.startswith("pgd"):
        # the dispatcher picks ART's numpy implementation for every estimator that is not a PyTorchClassifier
        assert isinstance(attack._attack, ProjectedGradientDescentNumpy)

    x_adv = attack.generate(x, y if labels == "given" else None)

    assert x_adv.shape == x.shape and x_adv.dtype == np.float32
    delta = (x_adv - x).reshape(len(x), -1)
    size = np.abs(delta).max(axis=1) if norm == np.inf else np.linalg.norm(delta, axis=1)
    assert (size <= eps * (1 + 1e-5)).all(), size
    # ART projects after clipping, in float32, so its result may leave the box by one rounding step
    assert x_adv.min() >= -3.0 - 1e-5 and x_adv.max() <= 5.0 + 1e-5
    adv_dice = mean_dice(trained_segmenter.predict(x_adv).argmax(1), y, TASK_CLASSES)
    assert adv_dice < clean_dice - 0.25, (clean_dice, adv_dice)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(y, y_before)


def test_fgm_with_y_none_attacks_the_prediction(trained_segmenter, blob_data):
    """With y=None ART passes predict's probability maps as y; that must equal attacking the one-hot prediction."""
    x, _ = blob_data
    attack = FastGradientMethod(trained_segmenter, norm=np.inf, eps=0.3, eps_step=0.3)
    probabilities = trained_segmenter.predict(x)
    x_adv_none = attack.generate(x)
    x_adv_soft = attack.generate(x, probabilities)
    np.testing.assert_array_equal(x_adv_none, x_adv_soft)


def test_pgd_honours_perturbation_mask(trained_segmenter, blob_data):
    x, y = blob_data
    mask = np.zeros(x.shape, dtype=np.float32)
    mask[:, :, 3:9, 3:9, 3:9] = 1.0
    attack = ProjectedGradientDescent(trained_segmenter, eps=0.5, eps_step=0.2, max_iter=3, verbose=False)
    x_adv = attack.generate(x, y, mask=mask)
    outside = mask == 0
    np.testing.assert_array_equal(x_adv[outside], x[outside])
    assert np.abs(x_adv - x)[~outside].max() > 0.1
