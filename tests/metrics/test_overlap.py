"""Tests for art_seg.metrics.overlap: hand-computed Dice, per class and region, empty conventions, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from art_seg.metrics import check_regions, dice_per_class, dice_per_region, dice_score, sensitivity, specificity

# 2x2x2 masks, voxels numbered 0..7 in C order (index = 4 * i + 2 * j + k):
# pred  = {0, 1, 2}     (3 voxels)
# truth = {0, 1, 4, 7}  (4 voxels)
# TP = {0, 1} = 2, FP = {2} = 1, FN = {4, 7} = 2, TN = {3, 5, 6} = 3
# Dice = 2 * 2 / (3 + 4) = 4/7, sensitivity = 2/4, specificity = 3/4
PRED = np.isin(np.arange(8), [0, 1, 2]).reshape(2, 2, 2)
TRUTH = np.isin(np.arange(8), [0, 1, 4, 7]).reshape(2, 2, 2)

# 4-class 2x2x2 maps, flattened: pred 0 1 2 3 3 3 0 1, truth 0 1 2 2 3 0 0 1
# class 0: pred {0, 6}, truth {0, 5, 6}, I = 2 -> 4/5
# class 1: pred {1, 7}, truth {1, 7}, I = 2 -> 1
# class 2: pred {2}, truth {2, 3}, I = 1 -> 2/3
# class 3: pred {3, 4, 5}, truth {4}, I = 1 -> 2/4
# WT {1,2,3}: pred {1,2,3,4,5,7}, truth {1,2,3,4,7}, I = 5 -> 10/11
# TC {1,3}: pred {1,3,4,5,7}, truth {1,4,7}, I = 3 -> 6/8
# ET {3}: as class 3 -> 1/2
PRED_MAP = np.array([0, 1, 2, 3, 3, 3, 0, 1]).reshape(2, 2, 2)
TRUTH_MAP = np.array([0, 1, 2, 2, 3, 0, 0, 1]).reshape(2, 2, 2)
CLASS_DICE = [4 / 5, 1.0, 2 / 3, 1 / 2]
REGION_DICE = {"WT": 10 / 11, "TC": 3 / 4, "ET": 1 / 2}

AS_INPUT = {
    "bool": lambda a: a,
    "uint8": lambda a: a.astype(np.uint8),
    "float32": lambda a: a.astype(np.float32),
    "torch": torch.from_numpy,
    "torch_grad": lambda a: torch.tensor(a, dtype=torch.float64, requires_grad=True),
}


@pytest.mark.parametrize("kind", AS_INPUT)
@pytest.mark.parametrize(("metric", "expected"), [(dice_score, 4 / 7), (sensitivity, 1 / 2), (specificity, 3 / 4)])
def test_hand_computed_masks(metric, expected, kind):
    value = metric(AS_INPUT[kind](PRED), AS_INPUT[kind](TRUTH))
    assert type(value) is float
    assert value == pytest.approx(expected)


def test_two_dimensional_masks():
    # pred {0, 1}, truth {1, 2} on 2x2: I = 1 -> Dice 2/4
    pred, truth = np.array([[1, 1], [0, 0]]), np.array([[0, 1], [1, 0]])
    assert dice_score(pred, truth) == 0.5
    assert sensitivity(pred, truth) == 0.5
    assert specificity(pred, truth) == 0.5


@pytest.mark.parametrize(
    ("pred", "truth", "dice", "sens", "spec"),
    [
        (np.zeros(4, bool), np.zeros(4, bool), 1.0, 1.0, 1.0),  # both empty: perfect (BraTS)
        (np.array([1, 0, 0, 0]), np.zeros(4, bool), 0.0, 1.0, 0.75),  # false positives only
        (np.zeros(4, bool), np.array([1, 1, 0, 0]), 0.0, 0.0, 1.0),  # everything missed
        (np.ones(4, bool), np.ones(4, bool), 1.0, 1.0, 1.0),  # no negative voxel: specificity 1
        (np.zeros(4, bool), np.ones(4, bool), 0.0, 0.0, 1.0),
    ],
    ids=["both_empty", "truth_empty", "pred_empty", "all_foreground", "all_missed"],
)
def test_empty_conventions(pred, truth, dice, sens, spec):
    assert dice_score(pred, truth) == dice
    assert sensitivity(pred, truth) == sens
    assert specificity(pred, truth) == spec


@pytest.mark.parametrize("kind", ["numpy", "uint8", "torch"])
def test_dice_per_class_hand_computed(kind):
    convert = {"numpy": np.asarray, "uint8": lambda a: a.astype(np.uint8), "torch": torch.from_numpy}[kind]
    with_background = dice_per_class(convert(PRED_MAP), convert(TRUTH_MAP), 4, include_background=True)
    assert with_background.dtype == np.float64
    np.testing.assert_allclose(with_background, CLASS_DICE)
    np.testing.assert_allclose(dice_per_class(convert(PRED_MAP), convert(TRUTH_MAP), 4), CLASS_DICE[1:])


def test_dice_per_class_absent_classes():
    # class 4 absent from both maps: 1.0; class 2 missing from truth but predicted: 0.0
    truth = np.where(TRUTH_MAP == 2, 0, TRUTH_MAP)
    dice = dice_per_class(PRED_MAP, truth, 5)
    assert dice[1] == 0.0 and dice[3] == 1.0


def test_dice_per_region_hand_computed():
    dice = dice_per_region(PRED_MAP, TRUTH_MAP)
    assert list(dice) == ["WT", "TC", "ET"]
    assert dice == pytest.approx(REGION_DICE)
    assert dice_per_region(torch.from_numpy(PRED_MAP), torch.from_numpy(TRUTH_MAP)) == pytest.approx(REGION_DICE)


def test_dice_per_region_custom_regions_keep_order():
    dice = dice_per_region(PRED_MAP, TRUTH_MAP, {"edema": (2,), "core": [1, 3], "label7": (7,)})
    assert list(dice) == ["edema", "core", "label7"]
    assert dice == pytest.approx({"edema": 2 / 3, "core": 3 / 4, "label7": 1.0})


def test_dice_per_region_empty_regions():
    background = np.zeros((2, 2, 2), dtype=np.int64)
    assert dice_per_region(background, background) == {"WT": 1.0, "TC": 1.0, "ET": 1.0}
    edema = background.copy()
    edema[0, 0, 0] = 2
    assert dice_per_region(edema, background) == {"WT": 0.0, "TC": 1.0, "ET": 1.0}


BRATS_VALUES = np.where(TRUTH_MAP == 3, 4, TRUTH_MAP)  # BraTS label value 4 instead of class 3

BAD_INPUTS = [
    (dice_score, (np.zeros((2, 2)), np.zeros((2, 3))), ValueError, r"same shape.*pred \(2, 2\).*truth \(2, 3\)"),
    (dice_score, (np.array([0, 2]), np.array([0, 1])), ValueError, r"pred must be a boolean mask.*\[2\]"),
    (sensitivity, (np.array([0, 1]), np.array([0.5, 1.0])), ValueError, r"truth must be a boolean mask.*\[0\.5\]"),
    (specificity, ([0, 1], np.array([0, 1])), TypeError, r"pred must be ndarray or Tensor, got list"),
    (dice_per_class, (PRED_MAP, TRUTH_MAP + 4, 4), ValueError, r"truth must hold class indices 0\.\.3.*\[4, 5, 6, 7\]"),
    (dice_per_class, (PRED_MAP - 1, TRUTH_MAP, 4), ValueError, r"pred must hold class indices 0\.\.3.*\[-1\]"),
    (dice_per_class, (PRED_MAP.astype(float), TRUTH_MAP, 4), ValueError, r"pred must be an integer map.*float64"),
    (dice_per_class, (PRED_MAP, TRUTH_MAP[0], 4), ValueError, r"pred \(2, 2, 2\) and truth \(2, 2\)"),
    (dice_per_class, (PRED_MAP, TRUTH_MAP, 1), ValueError, r"nb_classes must be >= 2, got 1"),
    (dice_per_class, (PRED_MAP, TRUTH_MAP, 4.0), TypeError, r"nb_classes must be an integer, got 4\.0"),
    (dice_per_region, (PRED_MAP, BRATS_VALUES), ValueError, r"truth must hold class indices 0\.\.3.*\[4\]"),
    (dice_per_region, (PRED_MAP, TRUTH_MAP, {}), ValueError, r"regions must name at least one region"),
    (dice_per_region, (PRED_MAP, TRUTH_MAP, {"WT": ()}), ValueError, r"regions\['WT'\] must list at least one"),
    (dice_per_region, (PRED_MAP, TRUTH_MAP, {"WT": (1, -2)}), ValueError, r"regions\['WT'\] class index .*, got -2"),
    (dice_per_region, (PRED_MAP, TRUTH_MAP, [(1, 2)]), TypeError, r"regions must be Mapping, got list"),
    (check_regions, ({"WT": (1, True)},), TypeError, r"regions\['WT'\] class index must be an integer, got True"),
    (check_regions, ({"WT": 3},), TypeError, r"regions\['WT'\] must be tuple or list, got int"),
]


def test_check_regions_defaults_to_brats_and_normalises_to_tuples_of_ints():
    # one check for every caller of regions (metrics, scoring, certification)
    assert check_regions(None) == {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}
    assert check_regions({"core": [np.int64(1), 3]}) == {"core": (1, 3)}
    assert type(check_regions({"core": [np.int64(1)]})["core"][0]) is int


@pytest.mark.parametrize(("metric", "args", "error", "match"), BAD_INPUTS)
def test_bad_input_messages(metric, args, error, match):
    with pytest.raises(error, match=match):
        metric(*args)


def test_include_background_must_be_bool():
    with pytest.raises(TypeError, match="include_background must be bool, got int"):
        dice_per_class(PRED_MAP, TRUTH_MAP, 4, include_background=1)


@pytest.mark.parametrize(
    ("metric", "pred", "truth", "args"),
    [
        (dice_score, PRED.astype(np.uint8), TRUTH, ()),
        (sensitivity, PRED, TRUTH.astype(np.float32), ()),
        (specificity, PRED, TRUTH, ()),
        (dice_per_class, PRED_MAP, TRUTH_MAP, (4,)),
        (dice_per_region, PRED_MAP, TRUTH_MAP, ()),
    ],
)
@pytest.mark.parametrize("as_torch", [False, True], ids=["numpy", "torch"])
def test_inputs_not_modified(metric, pred, truth, args, as_torch):
    pred, truth = pred.copy(), truth.copy()
    before = (pred.copy(), truth.copy())
    if as_torch:
        metric(torch.from_numpy(pred), torch.from_numpy(truth), *args)
    else:
        metric(pred, truth, *args)
    np.testing.assert_array_equal(pred, before[0])
    np.testing.assert_array_equal(truth, before[1])


@settings(max_examples=40, deadline=None)
@given(
    maps=arrays(np.int64, st.tuples(*[st.integers(1, 4)] * 3), elements=st.integers(0, 3)).flatmap(
        lambda a: st.tuples(st.just(a), arrays(np.int64, a.shape, elements=st.integers(0, 3)))
    )
)
def test_dice_invariants(maps):
    """Per-class Dice is the mask Dice of each class; Dice is symmetric, in [0, 1], and 1 on identical maps."""
    pred, truth = maps
    per_class = dice_per_class(pred, truth, 4, include_background=True)
    for k in range(4):
        assert per_class[k] == pytest.approx(dice_score(pred == k, truth == k))
        assert dice_score(pred == k, truth == k) == dice_score(truth == k, pred == k)
    assert np.all((per_class >= 0) & (per_class <= 1))
    np.testing.assert_array_equal(dice_per_class(truth, truth, 4, include_background=True), 1.0)
    assert dice_per_region(pred, truth)["ET"] == per_class[3]


def test_mean_dice_per_region_averages_samples_by_hand() -> None:
    from art_seg.metrics import mean_dice_per_region

    # sample 1 perfect (ET empty in both: 1); sample 2: pred {3, 3}, truth {0, 3}: 2*1/(2+1) for every region
    result = mean_dice_per_region(np.array([[0, 1], [3, 3]]), np.array([[0, 1], [0, 3]]))
    assert result == pytest.approx({"WT": (1 + 2 / 3) / 2, "TC": (1 + 2 / 3) / 2, "ET": (1 + 2 / 3) / 2})
    with pytest.raises(ValueError, match="same number"):
        mean_dice_per_region(np.zeros((2, 3), int), np.zeros((1, 3), int))
