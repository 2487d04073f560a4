"""Metric sets in the evaluation: rows with every chosen metric equal to art_seg.metrics on the same masks, a
perfect model (lesion Dice 1) and a model predicting nothing, lesions removed by a "no tumour" attack, the paired
statistics and report sections for every metric, and resume with another metric set."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from art_seg.evaluation import RobustnessEvaluator, lesion_effects, metric_summaries, samples_from_arrays, write_report
from art_seg.evaluation.fingerprints import scoring_fingerprint
from art_seg.evaluation.metric_report import metrics_csv, row_metrics
from art_seg.metrics import hausdorff95, lesion_wise, matched_instances, nsd
from art_seg.stats import paired_wilcoxon
from tests.evaluation.oracles import empty_model, softmax_oracle
from tests.metrics.lesion_cases import ball

SHAPE = (16, 16, 16)
METRICS = ("dice", "hd95", "hd95-surfels", "nsd", "lesion-dice", "lesion-hd95", "lesion-f1")
WT = (1, 2, 3)


def lesion_data(n: int = 3):
    """``x (n, 2, 16, 16, 16)`` with the class map in channel 0 and ``y``: three lesions (57 voxels of class 2
    around a class-3 core, 19 voxels of class 1, 7 of class 3) moved a little per subject; subject 2 has no
    enhancing tumour."""
    y = np.zeros((n, *SHAPE), np.int64)
    for i in range(n):
        y[i][ball(SHAPE, (4 + i, 4, 4), 5)] = 2
        y[i][ball(SHAPE, (4 + i, 4, 4), 1)] = 3 if i != 2 else 1
        y[i][ball(SHAPE, (11, 11 - i, 11), 2)] = 1
        if i != 2:
            y[i][ball(SHAPE, (4, 12, 11 + i % 2), 1)] = 3
    rng = np.random.default_rng(0)
    x = np.stack([y.astype(np.float32), rng.normal(size=y.shape).astype(np.float32)], axis=1)
    return x, y


@pytest.fixture(scope="module")
def samples():
    x, y = lesion_data()
    return samples_from_arrays(x, y, spacing=(1.0, 1.2, 0.8))


def run(models, samples, folder, **settings):
    options = dict(attacks=["ti-fgsm"], eps=[3.0], iterations=4, metrics=METRICS, challenge="MET", seed=1)
    options.update(settings)
    return RobustnessEvaluator(models, **options).run(samples, folder)


def test_perfect_model_and_model_predicting_nothing(samples, tmp_path):
    models = {"perfect": softmax_oracle(shape=SHAPE), "nothing": empty_model(4, "softmax", shape=SHAPE)}
    rows = run(models, samples, tmp_path)
    clean = {(r["model"], r["subject"]): r for r in rows if r["attack"] == "clean"}
    for sample in samples:
        perfect, nothing = clean["perfect", sample.subject], clean["nothing", sample.subject]
        for metric, best in (("dice", 1.0), ("lesion-dice", 1.0), ("lesion-f1", 1.0), ("nsd", 1.0),
                             ("hd95", 0.0), ("hd95-surfels", 0.0), ("lesion-hd95", 0.0)):  # fmt: skip
            assert perfect[metric] == {"WT": best, "TC": best, "ET": best}, metric
        truth = lesion_wise(sample.label, sample.label, spacing=sample.spacing, challenge="MET")
        assert perfect["lesions"] == {r: {"found": [1] * s["nb_truth_lesions"], "false": 0} for r, s in truth.items()}
        for region, classes in {"WT": WT, "TC": (1, 3), "ET": (3,)}.items():
            present = bool(np.isin(sample.label, classes).any())
            assert nothing["lesion-dice"][region] == float(not present)
            assert nothing["lesion-hd95"][region] == (374.0 if present else 0.0)
            assert nothing["lesions"][region]["found"] == [0] * truth[region]["nb_truth_lesions"]
            expected_hd = hausdorff95(np.zeros(SHAPE, bool), np.isin(sample.label, classes), sample.spacing,
                                      empty_penalty=sample.hd95_penalty)  # fmt: skip
            assert nothing["hd95"][region] == expected_hd
    found_et = {r["subject"]: r["lesions"]["ET"]["found"] for r in clean.values() if r["model"] == "perfect"}
    assert found_et == {"subject_000": [1, 1], "subject_001": [1, 1], "subject_002": []}  # 2: no ET at all
    # "no tumour" (ti-FGSM at eps 3, enough to move class 3 to 0) erases every lesion of the perfect model
    effects = {(e.model, e.region): e for e in lesion_effects(rows)}
    wt = effects["perfect", "WT"]
    assert (wt.n, wt.removed, wt.found_attacked, wt.created) == (3, wt.lesions, 0, 0) and wt.lesions == 8
    assert effects["nothing", "WT"].removed == 0 and effects["nothing", "WT"].found_clean == 0


def test_attacked_rows_equal_the_metrics_on_the_attacked_prediction(samples, tmp_path):
    evaluator = RobustnessEvaluator({"m": softmax_oracle(shape=SHAPE)}, ["fgsm"], [0.7], metrics=METRICS,
                                    challenge="GLI", nsd_tolerance=1.5)  # fmt: skip
    rows = evaluator.run(samples, tmp_path)
    sample = samples[1]
    row = next(r for r in rows if r["attack"] == "FGSM" and r["subject"] == sample.subject)
    _, prediction = evaluator.attack_sample("m", "FGSM", 0.7, sample)
    pred, truth = np.isin(prediction, WT), np.isin(sample.label, WT)
    lesion = lesion_wise(pred, truth, spacing=sample.spacing, challenge="GLI")["mask"]
    assert row["lesion-dice"]["WT"] == lesion["dice"] and row["lesion-hd95"]["WT"] == lesion["hd95"]
    assert row["nsd"]["WT"] == nsd(pred, truth, spacing=sample.spacing, tolerance=1.5)
    assert row["hd95-surfels"]["WT"] == hausdorff95(pred, truth, sample.spacing, method="surfels",
                                                    empty_penalty=sample.hd95_penalty)  # fmt: skip
    assert row["lesions"]["WT"] == {"found": [int(f) for f in lesion["lesion_found"]], "false": lesion["fp"]}


def test_2025_rules(samples, tmp_path):
    metrics = ("lesion-dice", "lesion-hd95", "lesion-f1", "lesion-nsd")
    rows = run({"perfect": softmax_oracle(shape=SHAPE)}, samples, tmp_path, metrics=metrics, challenge="2025")
    clean = next(r for r in rows if r["attack"] == "clean" and r["subject"] == "subject_002")
    assert clean["lesion-dice"] == {"WT": 1.0, "TC": 1.0, "ET": 1.0}  # ET: no instance on either side -> 1
    attacked = next(r for r in rows if r["attack"] != "clean" and r["subject"] == "subject_000")
    expected = matched_instances(np.zeros(SHAPE, np.int64), samples[0].label, spacing=samples[0].spacing)
    assert attacked["lesion-hd95"] == {region: s["hd95"] for region, s in expected.items()} == {
        "WT": 373.0, "TC": 373.0, "ET": 373.0}  # fmt: skip
    with pytest.raises(ValueError, match="lesion-nsd"):
        RobustnessEvaluator({"p": softmax_oracle(shape=SHAPE)}, ["fgsm"], [0.1], metrics=["lesion-nsd"])


def test_statistics_and_report_for_every_metric(samples, tmp_path):
    models = {"perfect": softmax_oracle(shape=SHAPE), "nothing": empty_model(4, "softmax", shape=SHAPE)}
    rows = run(models, samples, tmp_path / "run", attacks=["ti-fgsm", "fgsm"], eps=[0.3, 3.0])
    assert set(row_metrics(rows)) == set(METRICS)
    by_metric = metric_summaries(rows, row_metrics(rows))
    summary = next(s for s in by_metric["lesion-dice"]
                   if (s.model, s.attack, s.eps, s.region) == ("perfect", "ti-FGSM", 3.0, "WT"))  # fmt: skip
    subjects = [s.subject for s in samples]
    before = [next(r["lesion-dice"]["WT"] for r in rows if (r["model"], r["attack"], r["subject"]) ==
                   ("perfect", "clean", s)) for s in subjects]  # fmt: skip
    after = [next(r["lesion-dice"]["WT"] for r in rows if (r["model"], r["attack"], r["eps"], r["subject"]) ==
                  ("perfect", "ti-FGSM", 3.0, s)) for s in subjects]  # fmt: skip
    assert summary.comparison == paired_wilcoxon(before, after, alternative="two-sided")
    assert (summary.clean_mean, summary.mean, summary.metric) == (1.0, 0.0, "lesion-dice")
    lines = metrics_csv(by_metric).splitlines()
    assert len(lines) == 1 + len(METRICS) * 2 * 2 * 2 * 3 and lines[0].startswith("metric,model,attack")
    report = write_report(rows, tmp_path / "report")
    text = report.read_text()
    assert "## Every metric" in text and "| Dice WT | lesion Dice WT | HD95 WT |" in text
    assert "## Lesions removed and created by the attacks" in text
    assert "| ti-FGSM | 3 | 3 | 8 → 0 of 8 | 8 | 0 → 0 | 0 |" in text
    assert (tmp_path / "report" / "metrics_summary.csv").read_text() == metrics_csv(by_metric)
    effects = (tmp_path / "report" / "lesion_effects.csv").read_text().splitlines()
    assert effects[0].startswith("model,attack,eps,region,n,lesions,found_clean")
    # Dice-only rows: no extra file, no extra section
    plain = [{k: v for k, v in r.items() if k in ("model", "attack", "eps", "subject", "dice")} for r in rows]
    text = write_report(plain, tmp_path / "plain").read_text()
    assert "## Every metric" not in text and not (tmp_path / "plain" / "metrics_summary.csv").exists()


def test_resume_with_another_metric_set_recomputes_every_row(samples, tmp_path):
    model = {"m": softmax_oracle(shape=SHAPE)}
    first = run(model, samples, tmp_path, metrics=("dice",))
    assert "lesion-dice" not in first[0]
    with pytest.warns(UserWarning, match="metric set"):
        second = run(model, samples, tmp_path)
    assert len(second) == len(first) and all("lesion-dice" in r for r in second)
    with pytest.warns(UserWarning, match="metric set"):
        third = run(model, samples, tmp_path, challenge="GLI")  # other lesion rules: other rows
    assert all(r["lesions"]["TC"]["found"] == [] or len(r["lesions"]["TC"]["found"]) < 3 for r in third)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = run(model, samples, tmp_path, challenge="GLI")
    assert [json.dumps(r, sort_keys=True) for r in again] == [json.dumps(r, sort_keys=True) for r in third]
    # a Dice (and HD95) only run keeps the setups of art_seg versions without metric sets
    assert scoring_fingerprint(("dice", "hd95"), "MET", 2.0) == {}
    assert scoring_fingerprint(("dice", "lesion-dice"), "MET", 2.0) == {"metrics": ["dice", "lesion-dice"],
                                                                       "challenge": "MET"}  # fmt: skip


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"metrics": ["dice", "surface-dice"]}, "metrics item"), ({"challenge": "BraTS-GLI"}, "challenge"),
     ({"metrics": ["dice", "dice"]}, "repeat"), ({"nsd_tolerance": -1.0}, "nsd_tolerance")],
)  # fmt: skip
def test_bad_metric_settings(settings, message):
    with pytest.raises(ValueError, match=message):
        RobustnessEvaluator({"m": softmax_oracle(shape=SHAPE)}, ["fgsm"], [0.1], **settings)


def test_region_model_scores_like_the_softmax_model(samples, tmp_path):
    """A perfect sigmoid region model (MONAI's TC, WT, ET channel order) gets the softmax oracle's rows."""
    from tests.evaluation.oracles import region_oracle

    models = {"softmax": softmax_oracle(shape=SHAPE), "monai": region_oracle("monai_brats", shape=SHAPE)}
    rows = run(models, samples, tmp_path, attacks=["fgsm"], eps=[0.3])
    by_model = {}
    for row in rows:
        kept = {k: v for k, v in row.items() if k not in ("model", "seconds", "fingerprint")}
        by_model.setdefault(row["model"], []).append(kept)
    assert by_model["softmax"][0]["lesion-dice"] == {"WT": 1.0, "TC": 1.0, "ET": 1.0}
    assert by_model["monai"][0]["lesion-dice"] == by_model["softmax"][0]["lesion-dice"]
    assert by_model["monai"][0]["lesions"] == by_model["softmax"][0]["lesions"]


def _row(attack, subject, found, false, eps=0.5):
    return {"model": "m", "attack": attack, "eps": 0.0 if attack == "clean" else eps, "subject": subject,
            "dice": {"WT": 0.5}, "lesions": {"WT": {"found": found, "false": false}}}  # fmt: skip


def test_lesion_effects_by_hand():
    rows = [_row("clean", "a", [1, 1, 0], 1), _row("clean", "b", [1], 0),
            _row("X", "a", [0, 1, 1], 0), _row("X", "b", [0], 3)]  # fmt: skip
    (effect,) = lesion_effects(rows)
    assert (effect.n, effect.lesions, effect.found_clean, effect.found_attacked) == (2, 4, 3, 2)
    assert (effect.removed, effect.restored, effect.created) == (2, 1, 3)
    assert (effect.false_clean, effect.false_attacked) == (1, 3)
    assert lesion_effects([{k: v for k, v in r.items() if k != "lesions"} for r in rows]) == []
    with pytest.raises(ValueError, match="other data"):
        lesion_effects([*rows[:2], _row("X", "a", [1], 0)])
    with pytest.raises(ValueError, match="no clean row"):
        lesion_effects(rows[2:])


def test_summarise_other_metrics_checks_their_range():
    rows = [{"model": "m", "attack": a, "eps": e, "subject": s, "dice": {"WT": 0.5}, "lesion-hd95": {"WT": v}}
            for s, v in (("a", 374.0), ("b", 12.5)) for a, e in (("clean", 0.0), ("X", 0.1))]  # fmt: skip
    from art_seg.evaluation import summarise

    (summary,) = summarise(rows, metric="lesion-hd95")
    assert (summary.metric, summary.mean, summary.clean_mean) == ("lesion-hd95", 193.25, 193.25)
    with pytest.raises(ValueError, match=r"lesion-dice\['WT'\]"):
        summarise([{**r, "lesion-dice": {"WT": 1.5}} for r in rows], metric="lesion-dice")
    with pytest.raises(ValueError, match="metric must be one of"):
        summarise(rows, metric="iou")
    with pytest.raises(ValueError, match="lacks key"):
        summarise(rows, metric="nsd")
