"""RobustnessEvaluator: rows, resume without duplicates, settings, bad input, BraTS subjects."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import stat
import warnings

import numpy as np
import pytest
import torch

from art_seg import distributed
from art_seg.data import find_subjects, make_brats_phantom
from art_seg.defences import copy_segmenter
from art_seg.estimators import PyTorchSegmenter, SlidingWindow
from art_seg._files import folder_lock
from art_seg.evaluation.attack_specs import ATTACK_NAMES, attack_spec
from art_seg.evaluation.robustness import (
    RobustnessEvaluator,
    read_results,
    samples_from_arrays,
    samples_from_subjects,
)
from art_seg.metrics import dice_per_region

REGIONS = {"c1": (1,), "c2": (2,)}


def evaluator(segmenter, **overrides) -> RobustnessEvaluator:
    settings = dict(attacks=["fgsm", "i-fgsm"], eps=[0.8, 0.4], regions=REGIONS, iterations=2, seed=3)
    settings.update(overrides)
    return RobustnessEvaluator({"m": segmenter}, **settings)


def without_time(rows):
    return sorted((json.dumps({k: v for k, v in r.items() if k != "seconds"}, sort_keys=True) for r in rows))


@pytest.fixture(scope="module")
def samples(blob_data):
    x, y = blob_data
    masks = np.ones_like(y, dtype=bool)
    masks[:, :2] = False  # attacks may not touch the first two slices
    return samples_from_arrays(x[:4], y[:4], masks=masks[:4])


def test_rows_hold_per_subject_region_dice(trained_segmenter, samples, tmp_path) -> None:
    rows = evaluator(trained_segmenter).run(samples, tmp_path)
    assert len(rows) == 4 * (1 + 2 * 2)
    assert {(r["attack"], r["eps"]) for r in rows} == {
        ("clean", 0.0),
        ("FGSM", 0.4),
        ("FGSM", 0.8),
        ("i-FGSM", 0.4),
        ("i-FGSM", 0.8),
    }
    for sample in samples:
        clean = next(r for r in rows if r["subject"] == sample.subject and r["attack"] == "clean")
        prediction = trained_segmenter.predict(sample.image[None]).argmax(1)[0]
        assert clean["dice"] == dice_per_region(prediction, sample.label, REGIONS)

    def mean(attack: str, eps: float) -> float:
        return np.mean([r["dice"]["c1"] for r in rows if (r["attack"], r["eps"]) == (attack, eps)])

    assert mean("i-FGSM", 0.8) < mean("clean", 0.0) - 0.2
    assert read_results(tmp_path / "results.jsonl") == rows
    assert json.loads((tmp_path / "run.json").read_text())["eps"] == [0.4, 0.8]


def test_interrupted_run_resumes_to_the_same_results_without_duplicates(trained_segmenter, samples, tmp_path) -> None:
    whole = evaluator(trained_segmenter).run(samples, tmp_path / "whole")

    def interrupted():
        yield from samples[:2]
        raise KeyboardInterrupt  # stopped midway, as by Ctrl-C

    with pytest.raises(KeyboardInterrupt):
        evaluator(trained_segmenter).run(interrupted(), tmp_path / "split")
    results = tmp_path / "split" / "results.jsonl"
    assert len(read_results(results)) == 2 * 5
    with results.open("a") as f:  # and a row cut off in the middle of its write
        f.write('{"model": "m", "attack": "FGSM", "eps": 0.4, "subj')
    with pytest.warns(UserWarning, match="partial line"):
        resumed = evaluator(trained_segmenter).run(samples, tmp_path / "split")
    assert without_time(resumed) == without_time(whole)
    keys = [(r["model"], r["attack"], r["eps"], r["subject"]) for r in resumed]
    assert len(keys) == len(set(keys)) == 4 * 5
    # a finished run run again adds nothing
    assert len(evaluator(trained_segmenter).run(samples, tmp_path / "split")) == 20


def test_other_settings_are_refused_on_resume(trained_segmenter, samples, tmp_path) -> None:
    evaluator(trained_segmenter).run(samples[:1], tmp_path)
    with pytest.raises(ValueError, match=r"holds results of a run with other settings \(eps\)"):
        evaluator(trained_segmenter, eps=[0.1]).run(samples[:1], tmp_path)


def test_targeted_and_art_attacks_run_in_the_sweep(trained_segmenter, samples, tmp_path) -> None:
    rows = evaluator(trained_segmenter, attacks=["ti-fgsm", "pgd", "fgm", "bim"], eps=[0.8]).run(samples[:2], tmp_path)
    by = {(r["attack"], r["subject"]): r["dice"]["c1"] for r in rows}
    for subject in ("subject_000", "subject_001"):
        assert by[("ti-FGSM", subject)] < by[("clean", subject)] - 0.2
        assert by[("PGD", subject)] < by[("clean", subject)] - 0.2
    x_adv, prediction = evaluator(trained_segmenter, attacks=["pgd"], eps=[0.8]).attack_sample(
        "m", "PGD", 0.8, samples[0]
    )
    # the brain mask holds for ART's PGD too: the first two slices are untouched
    np.testing.assert_array_equal(x_adv[:, :2], samples[0].image[:, :2])
    assert np.abs(x_adv - samples[0].image).max() <= 0.8 + 1e-5


def test_bad_input_raises_clear_errors_and_writes_nothing(trained_segmenter, samples, tmp_path) -> None:
    with pytest.raises(
        ValueError, match=rf"attack must be one of {tuple(ATTACK_NAMES)!r}".replace("(", r"\(").replace(")", r"\)")
    ):
        evaluator(trained_segmenter, attacks=["deepfool"])
    with pytest.raises(ValueError, match=r"eps must be a non-empty list of positive numbers, got \[\]"):
        evaluator(trained_segmenter, eps=[])
    with pytest.raises(ValueError, match="eps must be > 0, got -0.1"):
        evaluator(trained_segmenter, eps=[0.2, -0.1])
    with pytest.raises(ValueError, match="models must be a non-empty mapping"):
        RobustnessEvaluator({}, ["fgsm"], [0.1])
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="output folder .*file.txt/out' is not writable"):
        evaluator(trained_segmenter).run(samples, blocker / "out")
    with pytest.raises(ValueError, match="subject 'subject_000' appears twice"):
        evaluator(trained_segmenter).run([samples[0], samples[0]], tmp_path / "twice")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "results.jsonl").write_text('{"model": "m"}\nnot json\n')
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        read_results(damaged / "results.jsonl")
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        attack_spec("pgd", iterations=0)


def test_brats_subjects_are_loaded_one_by_one_and_bad_ones_skipped(tmp_path) -> None:
    make_brats_phantom(tmp_path / "data", n_subjects=2, shape=(24, 24, 16), seed=0)
    subjects = find_subjects(tmp_path / "data")
    flair = next(p for p in subjects[1].paths.values() if "flair" in str(p))
    flair.write_bytes(flair.read_bytes()[:100])  # truncated file
    with pytest.warns(UserWarning, match=f"skipping subject {subjects[1].id}"):
        samples = list(samples_from_subjects(subjects))
    assert [s.subject for s in samples] == [subjects[0].id]
    sample = samples[0]
    assert sample.image.dtype == np.float32 and sample.image.shape[0] == 4
    assert sample.mask.shape == sample.label.shape and sample.mask.any()
    assert sample.spacing == (1.0, 1.0, 1.0)


# ------------------------------------------------------------------------------------------ HD95 penalty
def test_hd95_penalty_is_the_original_grid_diagonal_on_every_differently_cropped_subject(tmp_path) -> None:
    make_brats_phantom(tmp_path / "data", n_subjects=3, shape=(40, 40, 24), seed=0)
    samples = list(samples_from_subjects(find_subjects(tmp_path / "data"), multiple=2, margin=0))
    assert len({s.image.shape for s in samples}) > 1  # the crops differ
    background = torch.nn.Conv3d(4, 4, 1)  # predicts background everywhere: every region is missed
    with torch.no_grad():
        background.weight.zero_()
        background.bias.copy_(torch.tensor([5.0, 0.0, 0.0, 0.0]))
    segmenter = PyTorchSegmenter(background, "ce", input_shape=(4, 8, 8, 8), nb_classes=4, device_type="cpu")
    rows = RobustnessEvaluator({"m": segmenter}, ["fgsm"], [0.1], hd95=True).run(samples, tmp_path / "out")
    diagonal = math.sqrt(40**2 + 40**2 + 24**2)  # of the 40 x 40 x 24 phantom grid at 1 mm, before cropping
    assert [s.hd95_penalty for s in samples] == pytest.approx([diagonal] * 3)
    assert len(rows) == 3 * 2
    for row in rows:
        assert row["hd95"] == {region: pytest.approx(diagonal) for region in ("WT", "TC", "ET")}, row["subject"]


def test_hd95_penalty_of_arrays_is_given_or_the_grid_diagonal(blob_data) -> None:
    x, y = blob_data
    assert {s.hd95_penalty for s in samples_from_arrays(x[:2], y[:2], hd95_penalty=373.13)} == {373.13}
    penalties = [s.hd95_penalty for s in samples_from_arrays(x[:2], y[:2], spacing=(2.0, 1.0, 1.0))]
    assert penalties == pytest.approx([math.sqrt(24**2 + 12**2 + 12**2)] * 2)


# ------------------------------------------------------------------------------ resume with changed inputs
def small(segmenter, **overrides) -> RobustnessEvaluator:
    return evaluator(segmenter, **{"attacks": ["fgsm"], "eps": [0.4], **overrides})


def key(row: dict) -> tuple:
    return (row["model"], row["attack"], row["eps"], row["subject"])


def recomputed(before: list[dict], after: list[dict]) -> set[tuple]:
    """Keys of the rows that changed (a recomputed row differs at least in its fingerprint or time)."""
    old = {key(row): row for row in before}
    return {key(row) for row in after if old[key(row)] != row}


def test_resume_with_other_weights_under_the_same_name_recomputes_that_model(
    trained_segmenter, samples, tmp_path
) -> None:
    first = small(trained_segmenter).run(samples[:2], tmp_path)
    retrained = copy_segmenter(trained_segmenter)
    with torch.no_grad():
        next(retrained.model.parameters()).mul_(-1.0)  # other weights, same name "m"
    with pytest.warns(UserWarning, match=r"model 'm' \(weights\) changed since .* recomputing 4 of its rows"):
        rows = small(retrained).run(samples[:2], tmp_path)
    assert without_time(rows) == without_time(small(retrained).run(samples[:2], tmp_path / "fresh"))
    assert [r["dice"] for r in rows] != [r["dice"] for r in first]
    assert len(read_results(tmp_path)) == 4  # the old rows are gone, not kept next to the new ones


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"sliding_window": SlidingWindow(roi_size=8, overlap=0.5)}, "sliding_window"),
        ({"autocast": "bfloat16"}, "autocast"),
    ],
)
def test_resume_with_other_inference_settings_recomputes(trained_segmenter, samples, tmp_path, change, named) -> None:
    first = small(trained_segmenter).run(samples[:1], tmp_path)
    with pytest.warns(UserWarning, match=rf"model 'm' \({named}\) changed"):
        rows = small(copy_segmenter(trained_segmenter, **change)).run(samples[:1], tmp_path)
    assert recomputed(first, rows) == {key(row) for row in first}
    assert len(read_results(tmp_path)) == 2


def test_unchanged_resume_recomputes_nothing_even_with_an_equal_copy_of_the_model(
    trained_segmenter, samples, tmp_path, monkeypatch
) -> None:
    small(trained_segmenter).run(samples[:2], tmp_path)
    before = (tmp_path / "results.jsonl").read_bytes()
    equal_model, equal_samples = copy_segmenter(trained_segmenter), copy.deepcopy(samples[:2])
    monkeypatch.setattr(RobustnessEvaluator, "_evaluate", lambda *args: pytest.fail("a row was recomputed"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning of changed inputs either
        small(equal_model).run(equal_samples, tmp_path)
    assert (tmp_path / "results.jsonl").read_bytes() == before


def test_resume_with_a_changed_attack_recomputes_only_its_rows(trained_segmenter, samples, tmp_path) -> None:
    first = evaluator(trained_segmenter, eps=[0.4]).run(samples[:1], tmp_path)
    changed = [attack_spec("fgsm"), attack_spec("i-fgsm", iterations=2, step_fraction=0.5)]
    with pytest.warns(UserWarning, match=r"attack 'i-FGSM' \(its parameters\) changed"):
        rows = evaluator(trained_segmenter, attacks=changed, eps=[0.4]).run(samples[:1], tmp_path)
    assert recomputed(first, rows) == {("m", "i-FGSM", 0.4, "subject_000")}


def test_resume_with_other_data_for_a_subject_is_refused(trained_segmenter, samples, tmp_path) -> None:
    small(trained_segmenter).run(samples[:2], tmp_path)
    other = [samples[0], dataclasses.replace(samples[1], image=samples[1].image + 0.1)]
    with pytest.raises(ValueError, match=r"subject .subject_001.: its data .* differ from those its rows .* another"):
        small(trained_segmenter).run(other, tmp_path)
    assert len(read_results(tmp_path)) == 4


def test_an_old_results_folder_without_fingerprints_is_refused(trained_segmenter, samples, tmp_path) -> None:
    old = {"models": ["m"], "attacks": ["FGSM"], "eps": [0.4], "regions": {"c1": [1], "c2": [2]}, "iterations": 2}
    (tmp_path / "run.json").write_text(json.dumps({**old, "hd95": False, "seed": 3}))
    with pytest.raises(ValueError, match="older art_seg run.* no fingerprints"):
        small(trained_segmenter).run(samples[:1], tmp_path)
    (tmp_path / "run.json").unlink()
    old_row = {"model": "m", "attack": "clean", "eps": 0.0, "subject": "s", "dice": {"c1": 1.0, "c2": 1.0}}
    (tmp_path / "results.jsonl").write_text(json.dumps(old_row) + "\n")
    with pytest.raises(ValueError, match="line 1 is a row without fingerprints"):
        small(trained_segmenter).run(samples[:1], tmp_path)


# ---------------------------------------------------------------------------------------- one writer only
def test_a_second_run_into_a_folder_in_use_is_refused_and_writes_nothing(trained_segmenter, samples, tmp_path) -> None:
    with folder_lock(tmp_path):  # another run holds the folder
        with pytest.raises(ValueError, match=rf"output folder '{tmp_path}' is in use by another run"):
            small(trained_segmenter).run(samples[:1], tmp_path)
    assert not (tmp_path / "results.jsonl").exists() and not (tmp_path / "run.json").exists()
    assert len(small(trained_segmenter).run(samples[:1], tmp_path)) == 2  # free again


def test_the_ranks_of_one_run_do_not_lock_each_other_out(trained_segmenter, samples, tmp_path, monkeypatch) -> None:
    small(trained_segmenter).run(samples[:0], tmp_path)  # rank 0 has prepared the folder
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    with folder_lock(tmp_path):  # held by rank 0 of the same run
        rows = small(trained_segmenter).run(samples[:2], tmp_path)
    assert {r["subject"] for r in rows} == {"subject_001"}


# ------------------------------------------------------------------------------------- odd output files
def test_a_fifo_named_results_jsonl_is_refused_without_hanging(trained_segmenter, samples, tmp_path) -> None:
    os.mkfifo(tmp_path / "results.jsonl")
    with pytest.raises(ValueError, match=r"results.jsonl' is not a regular file \(a FIFO\)"):
        small(trained_segmenter).run(samples[:1], tmp_path)
    with pytest.raises(ValueError, match=r"results.jsonl' is not a regular file \(a FIFO\)"):
        read_results(tmp_path / "results.jsonl")


def test_results_and_settings_files_get_the_umask_permissions(trained_segmenter, samples, tmp_path) -> None:
    previous = os.umask(0o022)
    try:
        small(trained_segmenter).run(samples[:1], tmp_path)
    finally:
        os.umask(previous)
    for name in ("results.jsonl", "run.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
