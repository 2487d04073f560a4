"""Tests for art_seg.metrics.lesions (BraTS 2023/2024 lesion-wise Dice and HD95) against a port of the reference
code (tests/metrics/brats2023_reference.py: github.com/rachitsaluja/BraTS-2023-Metrics, Rachit Saluja et al.,
with its NumPy 2 / pandas 2 faults named there), the issue's example, and every empty / missed / false-positive /
merged / small-lesion case."""

from __future__ import annotations

import numpy as np
import pytest

from art_seg.data.labels import REGION_CLASSES
from art_seg.data.regions import region_spec
from art_seg.metrics import dice_score, lesion_wise
from tests.metrics.lesion_cases import ball, issue_example, random_case

pytest.importorskip("cc3d")
pytest.importorskip("surface_distance")
pytest.importorskip("pandas")
from tests.metrics.brats2023_reference import lesion_wise_results  # noqa: E402

SHAPE = (30, 30, 24)


def assert_matches_reference(pred, truth, spacing, challenge):
    mine = lesion_wise(pred, truth, spacing=spacing, challenge=challenge)
    for name, classes in REGION_CLASSES.items():
        ref = lesion_wise_results(np.isin(pred, classes), np.isin(truth, classes), spacing, challenge)
        got = mine[name]
        assert got["dice"] == pytest.approx(ref["LesionWise_Score_Dice"], abs=1e-12), name
        assert got["hd95"] == pytest.approx(ref["LesionWise_Score_HD95"], abs=1e-9), name
        assert (got["tp"], got["fp"], got["fn"]) == (ref["Num_TP"], ref["Num_FP"], ref["Num_FN"]), name
    return mine


def test_issue_example():
    """48 x 48 x 40; WT lesions of 1365, 389 and 19 voxels; the first found shifted by a voxel, the others missed,
    one false positive: lesion-wise WT Dice 0.298 and HD95 249.67 mm, whole-volume Dice 0.7552."""
    pred, truth = issue_example()
    assert pred.shape == (48, 48, 40)
    assert dice_score(pred > 0, truth > 0) == pytest.approx(0.7552, abs=5e-5)
    wt = assert_matches_reference(pred, truth, (1.0, 1.0, 1.0), "GLI")["WT"]
    assert round(wt["dice"], 3) == 0.298
    assert wt["hd95"] == pytest.approx(249.67, abs=5e-3)
    assert (wt["tp"], wt["fn"], wt["fp"], wt["nb_small_lesions"]) == (1, 1, 1, 1)
    assert wt["truth_volumes"] == [1365.0, 389.0] and wt["lesion_hd95"] == [1.0, 374.0]
    assert sorted(wt["pred_volumes"]) == [93.0, 1365.0]


@pytest.mark.parametrize("seed", range(10))
def test_random_multi_lesion_volumes_match_reference(seed):
    pred, truth = random_case(seed)
    spacing = [(1.0, 0.8, 2.0), (1.2, 1.0, 0.9), (0.7, 1.3, 1.1)][seed % 3]
    assert_matches_reference(pred, truth, spacing, ["GLI", "SSA", "PED", "MEN", "MET"][seed % 5])


def _case(kind):
    truth, pred = np.zeros(SHAPE, np.int64), np.zeros(SHAPE, np.int64)
    big_a, big_b = ball(SHAPE, (8, 8, 8), 12), ball(SHAPE, (8, 18, 8), 12)  # 3 voxels apart: merged by 3 dilations
    far = ball(SHAPE, (22, 22, 16), 12)
    small = ball(SHAPE, (22, 6, 18), 1)  # 7 voxels: under 50, above 2
    if kind == "both empty":
        pass
    elif kind == "false positive only":
        pred[far] = 2
    elif kind == "missed only":
        truth[far] = 2
    elif kind == "merged lesions":
        truth[big_a | big_b] = 2
        pred[ball(SHAPE, (8, 8, 8), 12)] = 2  # finds one half of the merged lesion
    elif kind == "one prediction touches two lesions":
        truth[big_a | far] = 2
        pred[8:23, 8, 8] = 2
        pred[8, 8:23, 8] = 2
    elif kind == "small lesion found":
        truth[small | far] = 2
        pred[small | far] = 2
    elif kind == "small lesion missed, false positive":
        truth[small] = 2
        pred[ball(SHAPE, (5, 22, 5), 2)] = 3
    elif kind == "classes differ":
        truth[far] = 1
        pred[far] = 3
    return pred, truth


CASES = ["both empty", "false positive only", "missed only", "merged lesions", "one prediction touches two lesions",
         "small lesion found", "small lesion missed, false positive", "classes differ"]  # fmt: skip


@pytest.mark.parametrize("challenge", ["GLI", "MEN", "MET"])
@pytest.mark.parametrize("kind", CASES)
def test_edge_cases_match_reference(kind, challenge):
    pred, truth = _case(kind)
    assert_matches_reference(pred, truth, (1.0, 1.5, 0.8), challenge)


def test_edge_case_values():
    both_empty = lesion_wise(*_case("both empty"))
    assert all(r["dice"] == 1.0 and r["hd95"] == 0.0 and r["tp"] + r["fp"] + r["fn"] == 0 for r in both_empty.values())
    fp = lesion_wise(*_case("false positive only"))["WT"]
    assert (fp["dice"], fp["hd95"], fp["fp"], fp["nb_pred_lesions"]) == (0.0, 374.0, 1, 1)
    missed = lesion_wise(*_case("missed only"), penalty=373.0)["WT"]
    assert (missed["dice"], missed["hd95"], missed["fn"]) == (0.0, 373.0, 1)
    gli, men = (lesion_wise(*_case("merged lesions"), challenge=c)["WT"] for c in ("GLI", "MEN"))
    assert (gli["nb_truth_lesions"], gli["tp"], gli["fn"]) == (1, 1, 0)  # 3 dilations merge the two balls
    assert (men["nb_truth_lesions"], men["tp"], men["fn"]) == (2, 1, 1)  # 1 dilation does not
    small = lesion_wise(*_case("small lesion found"))["WT"]
    assert (small["nb_small_lesions"], small["nb_truth_lesions"], small["fp"], small["dice"]) == (1, 1, 0, 1.0)
    met = lesion_wise(*_case("small lesion found"), challenge="MET")["WT"]
    assert (met["nb_small_lesions"], met["nb_truth_lesions"]) == (0, 2)
    only_small = lesion_wise(*_case("small lesion missed, false positive"))
    assert (only_small["WT"]["dice"], only_small["WT"]["fp"], only_small["WT"]["fn"]) == (0.0, 1, 0)
    assert (only_small["TC"]["dice"], only_small["TC"]["hd95"]) == (0.0, 374.0)  # class 3 is TC and ET


def test_region_masks_and_axes():
    pred, truth = random_case(3)
    by_labels = lesion_wise(pred, truth, spacing=(1.0, 0.8, 2.0))
    spec = region_spec("brats")
    by_masks = lesion_wise(spec.to_masks(pred), spec.to_masks(truth), spacing=(1.0, 0.8, 2.0), regions="brats")
    assert by_masks == by_labels
    single = lesion_wise(pred > 0, truth > 0, spacing=(1.0, 0.8, 2.0))
    assert list(single) == ["mask"] and single["mask"] == by_labels["WT"]
    # 4-D with a singleton axis: full connectivity and the 18-neighbourhood reduce to the 3-D ones (the voxel
    # surfaces do not: every voxel touches the singleton axis' border)
    flat = lesion_wise(pred, truth, hd95_method="voxels")["WT"]
    four = lesion_wise(pred[None], truth[None], hd95_method="voxels")["WT"]
    for key in ("dice", "tp", "fp", "fn", "nb_truth_lesions", "nb_small_lesions", "truth_volumes", "pred_volumes"):
        assert four[key] == flat[key], key
    # 2-D: one slice
    assert set(lesion_wise(pred[:, :, 10], truth[:, :, 10], spacing=(1.0, 0.5))) == {"WT", "TC", "ET"}


def test_inputs_unchanged_and_bad_options():
    pred, truth = random_case(1)
    copies = pred.copy(), truth.copy()
    lesion_wise(pred, truth)
    assert np.array_equal(pred, copies[0]) and np.array_equal(truth, copies[1])
    with pytest.raises(ValueError, match="challenge"):
        lesion_wise(pred, truth, challenge="BraTS-GLI")
    with pytest.raises(ValueError, match="hd95_method"):
        lesion_wise(pred, truth, hd95_method="medpy")
    with pytest.raises(ValueError, match="penalty"):
        lesion_wise(pred, truth, penalty=-1)
    with pytest.raises(ValueError, match="region masks"):
        lesion_wise(pred > 0, truth > 0, regions="brats")
    with pytest.raises(ValueError, match="surfels"):
        lesion_wise(pred.reshape(1, -1, 28, 1), truth.reshape(1, -1, 28, 1))
