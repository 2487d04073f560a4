"""Target builders: class-index maps, multi-hot region maps and bool labels; the "no tumour" target."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from art_seg.attacks import IterativeFGSM, TargetedIterativeFGSM, WorstCaseEnsemble
from art_seg.attacks.targets import erase_labels, no_tumour, relabel
from art_seg.estimators import PyTorchSegmenter
from tests.attacks.conftest import region_maps
from tests.helpers import make_blob_task

INDEX = np.array([[[0, 1], [2, 3]]])  # (1, 2, 2)
MULTI_HOT = np.array([[[[1, 1], [1, 0]], [[0, 1], [1, 0]], [[0, 0], [1, 0]]]], dtype=np.float32)  # (1, 3, 2, 2)


def test_erase_labels_switches_region_channels_off_in_multi_hot_maps() -> None:
    erased = erase_labels(MULTI_HOT, labels=[1, 2], multi_hot=True)
    expected = MULTI_HOT.copy()
    expected[:, 1:] = 0
    np.testing.assert_array_equal(erased, expected)
    assert erased.dtype == np.float32 and MULTI_HOT[0, 1].any()  # the caller's array untouched
    for kind in (MULTI_HOT > 0.5, MULTI_HOT.astype(np.int64), torch.as_tensor(MULTI_HOT > 0.5)):
        result = erase_labels(kind, labels=[0, 1, 2], multi_hot=True)
        assert type(result) is type(kind) and result.dtype == kind.dtype and not result.any()


def test_bool_class_maps_are_classes_0_and_1() -> None:
    y = np.array([[[False, True], [True, False]]])
    erased = erase_labels(y, labels=1)
    assert erased.dtype == np.bool_ and not erased.any()
    np.testing.assert_array_equal(relabel(y, {1: 0, 0: 1}), ~y)
    with pytest.raises(ValueError, match="background must be 0 or 1 for bool labels y, got 2"):
        erase_labels(y, labels=1, background=2)


def test_no_tumour_is_all_background_or_all_regions_off() -> None:
    for y in (INDEX, torch.as_tensor(INDEX), MULTI_HOT, MULTI_HOT > 0.5, torch.as_tensor(MULTI_HOT)):
        target = no_tumour(y)
        assert type(target) is type(y) and target.shape == y.shape and target.dtype == y.dtype
        assert not target.any()
    np.testing.assert_array_equal(no_tumour(INDEX), erase_labels(INDEX, [1, 2, 3]))


def test_target_builders_reject_bad_arguments() -> None:
    cases = [
        (lambda: erase_labels(MULTI_HOT, labels=3, multi_hot=True), ValueError, r"labels must name region channels"),
        (
            lambda: erase_labels(MULTI_HOT, labels=1, background=1, multi_hot=True),
            ValueError,
            "background applies to class-index maps only",
        ),
        (lambda: erase_labels(MULTI_HOT, labels=1), TypeError, "multi_hot=True"),
        (lambda: erase_labels(np.zeros((2, 3), np.float32), 1, multi_hot=True), ValueError, r"\(N, R, \*spatial\)"),
        (lambda: no_tumour([0, 1]), TypeError, "y must be a numpy array or a torch tensor"),
    ]
    for make, error, message in cases:
        with pytest.raises(error, match=message):
            make()


def test_ti_fgsm_erases_the_regions_of_a_sigmoid_model(region_segmenter, region_task) -> None:
    x, y = region_task
    before = (region_segmenter.predict(x) > 0.5).sum()
    attack = TargetedIterativeFGSM(region_segmenter, eps=0.5, eps_step=0.1, max_iter=10)
    after = (region_segmenter.predict(attack.generate(x, no_tumour(y))) > 0.5).sum()
    assert before > 300 and after <= 0.3 * before, (before, after)  # 1158 -> 246 voxel-channels on


def test_a_region_model_takes_class_index_labels_in_attacks_and_the_ensemble(region_segmenter):
    # class indices reach a region model through the estimator's own label conversion, in every attack: the same
    # adversarial example as from the region masks those classes stand for
    x, y_index = make_blob_task(2, seed=1)
    regions = {"both": (1, 2), "second": (2,)}
    seg = PyTorchSegmenter(
        region_segmenter.model, "dice_ce", input_shape=region_segmenter.input_shape, nb_classes=2,
        activation="sigmoid", regions=regions, clip_values=(-3.0, 5.0), device_type="cpu",
    )  # fmt: skip
    attack = IterativeFGSM(seg, eps=0.2, eps_step=0.05, max_iter=2)
    from_index = attack.generate(x, y_index)
    from_masks = attack.generate(x, region_maps(y_index))
    np.testing.assert_array_equal(from_index, from_masks)
    ensemble = WorstCaseEnsemble([IterativeFGSM(seg, eps=0.2, eps_step=0.05, max_iter=2)])
    np.testing.assert_array_equal(ensemble.generate(x, y_index), from_masks)
