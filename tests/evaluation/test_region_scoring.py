"""Region models are scored like softmax models (issue 13): perfect models score Dice 1.0 per region in every
preset convention, in the evaluator's rows, the gradient-masking check and the report; a model that predicts
nothing scores the BraTS empty-region values; resume tells region conventions apart."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from art_seg.attacks import IterativeFGSM
from art_seg.data import REGION_CLASSES, REGION_PRESETS
from art_seg.evaluation import (
    RobustnessEvaluator,
    gradient_masking_check,
    mean_region_dice,
    model_regions,
    region_channels,
    region_dice,
    region_hd95,
    samples_from_arrays,
    write_report,
)
from art_seg.metrics import dice_per_region
from tests.evaluation.oracles import empty_model, empty_region_dice, oracle_data, region_oracle, softmax_oracle

PRESETS = sorted(REGION_PRESETS)  # brats, brats2024, monai_brats, nnunet_brats
PERFECT = {"WT": 1.0, "TC": 1.0, "ET": 1.0}


def perfect_models() -> dict:
    return {"softmax": softmax_oracle(), **{preset: region_oracle(preset) for preset in PRESETS}}


def empty_models() -> dict:
    return {
        "softmax": empty_model(4, "softmax"),
        **{p: empty_model(REGION_PRESETS[p].nb_regions, "sigmoid", regions=p) for p in PRESETS},
    }


# ------------------------------------------------------------------------------------------ the scoring step
@pytest.mark.parametrize("preset", PRESETS)
def test_region_dice_of_a_perfect_region_model_is_one_whatever_the_channel_order(preset) -> None:
    x, y = oracle_data()
    seg = region_oracle(preset)
    prediction = seg.predict_labels(x)
    for i in range(len(y)):
        assert region_dice(seg, prediction[i], y[i]) == PERFECT
        assert list(region_dice(seg, prediction[i], y[i])) == ["WT", "TC", "ET"]  # the scored order, not channels
        assert region_hd95(seg, prediction[i], y[i]) == {"WT": 0.0, "TC": 0.0, "ET": 0.0}
    assert region_channels(seg) == {
        name: REGION_PRESETS[preset].classes.index(classes) for name, classes in REGION_CLASSES.items()
    }


def test_the_region_spec_says_what_each_channel_means() -> None:
    """MONAI's channels (TC, WT, ET) read as nnU-Net's (WT, TC, ET): WT and TC swapped, so both score below 1."""
    x, y = oracle_data()
    monai = region_oracle("monai_brats")
    misread = region_oracle("brats")
    prediction = monai.predict_labels(x)[0]
    dice = region_dice(misread, prediction, y[0])
    assert dice["ET"] == 1.0 and dice["WT"] < 1.0 and dice["TC"] < 1.0


def test_softmax_scoring_is_dice_per_region_of_the_label_map() -> None:
    x, y = oracle_data()
    x[:, 0] += np.random.default_rng(1).normal(0, 0.4, size=y.shape)  # some voxels read as a neighbouring class
    seg = softmax_oracle()
    regions = {"c1": (1,), "c2": (2,), "both": (1, 2)}
    prediction = seg.predict_labels(x)
    for i in range(len(y)):
        expected = dice_per_region(seg.predict(x[i : i + 1]).argmax(1)[0], y[i], regions)
        assert region_dice(seg, prediction[i], y[i], regions) == expected
    assert 0 < region_dice(seg, prediction[0], y[0], regions)["c1"] < 1
    assert model_regions(seg) == {"1": (1,), "2": (2,), "3": (3,)}
    assert model_regions(region_oracle("monai_brats")) == {"TC": (1, 3), "WT": (1, 2, 3), "ET": (3,)}


def test_mean_region_dice_averages_the_samples_of_a_batch() -> None:
    x, y = oracle_data()
    for preset in ("monai_brats", "nnunet_brats"):
        assert mean_region_dice(region_oracle(preset), x, y, batch_size=2) == PERFECT
    empty = empty_model(3, "sigmoid", regions="monai_brats")
    expected = [empty_region_dice(label, REGION_CLASSES) for label in y]
    assert mean_region_dice(empty, x, y) == {r: np.mean([e[r] for e in expected]) for r in ("WT", "TC", "ET")}
    with pytest.raises(ValueError, match="x and y must hold the same number .* got 3 and 2"):
        mean_region_dice(empty, x, y[:2])


def test_unscorable_models_and_bad_predictions_are_clear_errors() -> None:
    x, y = oracle_data()
    partial = region_oracle({"WT": (1, 2, 3), "ET": (3,)})
    with pytest.raises(ValueError, match=r"region 'TC' \(1, 3\) is predicted by no channel .*WT \(1, 2, 3\), ET"):
        region_channels(partial)
    assert region_channels(partial, {"whole": (3, 2, 1)}) == {"whole": 0}  # the set of classes, not the name
    no_spec = empty_model(3, "sigmoid")
    with pytest.raises(ValueError, match="3 channels and no region spec .* regions="):
        region_channels(no_spec)
    with pytest.raises(ValueError, match="3 channels and no region spec"):
        model_regions(no_spec)
    seg = region_oracle("brats")
    prediction = seg.predict_labels(x)
    with pytest.raises(ValueError, match=r"prediction must have shape \(3, 6, 6, 6\) \(one mask per channel"):
        region_dice(seg, prediction, y[0])  # the batch, not one sample
    with pytest.raises(ValueError, match="prediction of a region model must hold masks"):
        region_dice(seg, seg.predict(x)[0], y[0])  # probabilities, not masks
    with pytest.raises(TypeError, match="label must be an integer class-index map"):
        region_dice(seg, prediction[0], y[0].astype(np.float32))
    with pytest.raises(ValueError, match="label_map must hold classes in"):
        region_dice(seg, prediction[0], np.full_like(y[0], 4))
    with pytest.raises(ValueError, match=r"regions\['WT'\] must list at least one class index"):
        region_dice(seg, prediction[0], y[0], {"WT": ()})


# ------------------------------------------------------------------------------------------ the evaluator
# One cheap attack per sweep: the clean rows are under test here (attacks on region models: tests/attacks).
ATTACK = ["fgm"]


def clean_rows(models: dict, tmp_path, x: np.ndarray, y: np.ndarray, **kwargs) -> list[dict]:
    evaluator = RobustnessEvaluator(models, ATTACK, [0.1], **kwargs)
    rows = evaluator.run(samples_from_arrays(x, y), tmp_path)
    return [row for row in rows if row["attack"] == "clean"]


def test_perfect_softmax_and_region_models_score_one_in_the_evaluator(tmp_path) -> None:
    """Before issue 13 the evaluator took predict(...).argmax(axis=1): a perfect region model scored 0."""
    x, y = oracle_data()
    rows = clean_rows(perfect_models(), tmp_path, x, y, hd95=True)
    assert {row["model"] for row in rows} == {"softmax", *PRESETS} and len(rows) == 5 * len(y)
    for row in rows:
        assert row["dice"] == PERFECT, row
        assert list(row["dice"]) == ["WT", "TC", "ET"]
        assert row["hd95"] == {"WT": 0.0, "TC": 0.0, "ET": 0.0}


def test_a_model_that_predicts_nothing_scores_the_brats_empty_region_values(tmp_path) -> None:
    x, y = oracle_data()
    rows = clean_rows(empty_models(), tmp_path, x, y)
    expected = {f"subject_{i:03d}": empty_region_dice(y[i], REGION_CLASSES) for i in range(len(y))}
    assert expected["subject_001"] == {"WT": 0.0, "TC": 0.0, "ET": 1.0}
    assert expected["subject_002"] == PERFECT
    for row in rows:
        assert row["dice"] == expected[row["subject"]], row


def test_an_unscorable_model_is_refused_before_any_work(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"models\['partial'\]: region 'TC' \(1, 3\) is predicted by no channel"):
        RobustnessEvaluator({"partial": region_oracle({"WT": (1, 2, 3), "ET": (3,)})}, ATTACK, [0.1])
    with pytest.raises(ValueError, match=r"models\['bare'\]: a sigmoid model with 3 channels and no region spec"):
        RobustnessEvaluator({"bare": empty_model(3, "sigmoid")}, ATTACK, [0.1])


def test_attack_sample_gives_a_class_label_map_for_region_models() -> None:
    x, y = oracle_data()
    evaluator = RobustnessEvaluator({"r": region_oracle("monai_brats")}, ATTACK, [1e-3])
    x_adv, prediction = evaluator.attack_sample("r", "ART FGM", 1e-3, samples_from_arrays(x, y)[0])
    assert x_adv.shape == x[0].shape
    np.testing.assert_array_equal(prediction, y[0])  # a tiny eps changes nothing: the painted truth


def test_resume_with_another_region_convention_recomputes_its_rows(tmp_path) -> None:
    """The same weights read with another region spec predict other regions: the rows must not be reused."""
    x, y = oracle_data(n=2)
    samples = samples_from_arrays(x, y)
    model = region_oracle("monai_brats")
    RobustnessEvaluator({"m": model}, ATTACK, [0.1]).run(samples, tmp_path)
    relabelled = region_oracle("monai_brats")
    relabelled.set_params(regions="brats")  # its TC, WT, ET channels read as WT, TC, ET
    with pytest.warns(UserWarning, match=r"model 'm' \(regions\) changed since its rows were made: recomputing 4"):
        rows = RobustnessEvaluator({"m": relabelled}, ATTACK, [0.1]).run(samples, tmp_path)
    clean = [row for row in rows if row["attack"] == "clean"]
    assert clean[0]["dice"]["ET"] == 1.0 and clean[0]["dice"]["WT"] < 1.0  # recomputed with the new spec


# ------------------------------------------------------------------------------------------ masking check
def make_attack(estimator, loss):
    return IterativeFGSM(estimator, eps=0.05, eps_step=0.05, max_iter=1, loss=loss)


@pytest.mark.parametrize("name", ["softmax", *PRESETS])
def test_perfect_models_score_one_in_the_gradient_masking_check(name) -> None:
    x, y = oracle_data()
    model = perfect_models()[name]
    for regions in (REGION_CLASSES, None):  # the BraTS regions, or the model's own regions / classes
        check = gradient_masking_check(model, make_attack, x, y, regions=regions, reference=softmax_oracle())
        np.testing.assert_array_equal(check.clean, np.ones(len(y)))


@pytest.mark.parametrize("name", ["softmax", *PRESETS])
def test_a_model_that_predicts_nothing_scores_the_empty_values_in_the_gradient_masking_check(name) -> None:
    x, y = oracle_data()
    model = empty_models()[name]
    check = gradient_masking_check(model, make_attack, x, y, regions=REGION_CLASSES)
    expected = [np.mean(list(empty_region_dice(label, REGION_CLASSES).values())) for label in y]
    np.testing.assert_allclose(check.clean, expected)
    np.testing.assert_allclose(check.white_box, expected)  # nothing to lose


# ------------------------------------------------------------------------------------------ the report
def test_the_report_of_perfect_models_shows_clean_dice_one_per_region(tmp_path) -> None:
    x, y = oracle_data()
    evaluator = RobustnessEvaluator(perfect_models(), ATTACK, [0.1])
    rows = evaluator.run(samples_from_arrays(x, y), tmp_path)
    write_report(rows, tmp_path)
    with (tmp_path / "summary.csv").open() as f:
        summary = list(csv.DictReader(f))
    assert {(line["model"], line["region"]) for line in summary} == {
        (m, r) for m in ["softmax", *PRESETS] for r in ("WT", "TC", "ET")
    }
    for line in summary:
        assert float(line["clean_mean"]) == 1.0, line
    report = (tmp_path / "report.md").read_text()
    for model in ["softmax", *PRESETS]:
        assert model in report
    assert json.loads((tmp_path / "run.json").read_text())["regions"] == {k: list(v) for k, v in REGION_CLASSES.items()}
