"""The art-seg command line, end to end at a tiny size: demo, train, attack, evaluate, benchmark, and bad input."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
import scipy.stats

from art_seg.cli.main import main
from art_seg.data import find_subjects, make_brats_phantom
from art_seg.evaluation import WORST_CASE, lesion_effects
from art_seg.evaluation.robust_dice import worst_case_rows

TINY = [
    "--subjects",
    "8",
    "--shape",
    "24",
    "24",
    "16",
    "--base-filters",
    "4",
    "--depth",
    "2",
    "--quiet",
    "--threads",
    "2",
]


TINY_DEMO = ["demo", *TINY, "--epochs", "2", "--defence-epochs", "1", "--eval-eps", "0.2", "0.4", "--iterations", "2"]


@pytest.mark.parametrize("command", ["demo", "train", "attack", "evaluate", "benchmark"])
def test_every_command_has_help_with_the_common_options(command, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--device", "--seed", "--output", "--quiet"):
        assert option in text, (command, option)


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory):
    output = tmp_path_factory.mktemp("demo")
    code = main([*TINY_DEMO, "--output", str(output)])
    assert code == 0
    return output


def test_demo_writes_models_results_and_report(demo_output) -> None:
    for name in ("undefended", "distilled", "adversarial"):
        assert (demo_output / "models" / f"{name}.pt").is_file()
    rows = [json.loads(line) for line in (demo_output / "results.jsonl").read_text().splitlines()]
    # 4 held-out subjects x 3 models x (clean + 4 attacks x 2 eps)
    assert len(rows) == 4 * 3 * 9
    report = (demo_output / "report.md").read_text()
    for text in ("i-FGSM", "ti-FGSM", "PGD", "Gradient-masking check", "robustness_curve_WT.png", "overlay_"):
        assert text in report
    assert len(list((demo_output / "overlays").glob("*.png"))) == 4
    # lesion-wise Dice next to Dice for every model and attack, and the lesions ti-FGSM removed
    assert report.count("| Attack | eps | n | Dice WT | lesion Dice WT | lesion HD95 WT |") == 3
    for model in ("undefended", "distilled", "adversarial"):
        table = report.split(f"### {model}")[1].split("###")[0]
        for attack in ("FGSM", "i-FGSM", "ti-FGSM", "PGD"):
            assert f"| {attack} | 0.2 | 4 |" in table and f"| {attack} | 0.4 | 4 |" in table, (model, attack)
    effects = {(e.model, e.eps): e for e in lesion_effects(rows) if e.attack == "ti-FGSM" and e.region == "WT"}
    note = report.split("**Lesions removed by ti-FGSM**")[1].split("\n")[0]
    for (model, eps), e in effects.items():
        assert f"{model} at eps {eps:g}: {e.removed} of the {e.found_clean} lesions found" in note


def test_report_wilcoxon_equals_scipy_on_the_written_results(demo_output) -> None:
    rows = [json.loads(line) for line in (demo_output / "results.jsonl").read_text().splitlines()]
    rows += [r for r in worst_case_rows(rows) if r["attack"] == WORST_CASE]  # summary.csv's robust Dice lines
    with (demo_output / "summary.csv").open() as f:
        summary = list(csv.DictReader(f))
    checked = 0
    for line in summary:
        key = (line["model"], line["attack"], float(line["eps"]))
        attacked = {r["subject"]: r["dice"][line["region"]] for r in rows if (r["model"], r["attack"], r["eps"]) == key}
        clean = {
            r["subject"]: r["dice"][line["region"]] for r in rows if (r["model"], r["attack"]) == (key[0], "clean")
        }
        subjects = sorted(attacked)
        after = np.array([attacked[s] for s in subjects])
        before = np.array([clean[s] for s in subjects])
        if np.all(after == before):
            assert float(line["p_value"]) == 1.0
            continue
        expected = scipy.stats.wilcoxon(after, before)
        assert float(line["p_value"]) == pytest.approx(expected.pvalue, rel=1e-12)
        assert float(line["statistic"]) == pytest.approx(expected.statistic, rel=1e-12)
        checked += 1
    assert checked > 0


def test_demo_run_again_resumes_without_duplicates(demo_output) -> None:
    before = (demo_output / "results.jsonl").read_text()
    assert main([*TINY_DEMO, "--output", str(demo_output)]) == 0
    assert (demo_output / "results.jsonl").read_text() == before


def test_train_attack_evaluate_and_benchmark(tmp_path, capsys) -> None:
    data = tmp_path / "data"
    make_brats_phantom(data, n_subjects=4, shape=(24, 24, 16), seed=1)
    train = tmp_path / "train"
    assert main(["train", *TINY, "--data", str(data), "--epochs", "1", "--output", str(train)]) == 0
    assert (train / "model.pt").is_file() and (train / "history.json").is_file()
    # a second train into the same folder must be told to resume
    assert main(["train", *TINY, "--data", str(data), "--epochs", "1", "--output", str(train)]) == 1
    assert "pass --resume" in capsys.readouterr().err
    assert main(["train", *TINY, "--data", str(data), "--epochs", "2", "--resume", "--output", str(train)]) == 0

    subject = find_subjects(data)[0]
    attacked = tmp_path / "attacked"
    assert (
        main(
            [
                "attack",
                "--model",
                str(train / "model.pt"),
                "--input",
                str(subject.paths["t1"].parent),
                "--attack",
                "ti-fgsm",
                "--eps",
                "0.3",
                "--iterations",
                "2",
                "--quiet",
                "--window",
                "16",
                "--autocast",
                "bfloat16",
                "--output",
                str(attacked),
            ]
        )
        == 0
    )
    folder = attacked / subject.id
    source = nib.load(subject.paths["flair"])
    adversarial = nib.load(folder / f"{subject.id}_adversarial_flair.nii.gz")
    np.testing.assert_allclose(adversarial.affine, source.affine)
    assert adversarial.shape == source.shape
    prediction = np.asarray(nib.load(folder / f"{subject.id}_prediction_adversarial.nii.gz").dataobj)
    assert set(np.unique(prediction)) <= {0, 1, 2, 4}
    assert json.loads((attacked / "attack_summary.json").read_text())[0]["attack"] == "ti-FGSM"

    evaluated = tmp_path / "evaluated"
    arguments = [
        "evaluate",
        "--model",
        f"plain={train / 'model.pt'}",
        "--data",
        str(data),
        "--attacks",
        "fgsm",
        "i-fgsm",
        "--eps",
        "0.3",
        "--iterations",
        "2",
        "--quiet",
        "--output",
        str(evaluated),
    ]
    assert main(arguments) == 0
    rows = (evaluated / "results.jsonl").read_text().splitlines()
    assert len(rows) == 4 * 3 and (evaluated / "report.md").is_file()
    assert main(arguments) == 0  # run again: nothing redone, nothing duplicated
    assert (evaluated / "results.jsonl").read_text().splitlines() == rows
    # the challenge's metrics: every row recomputed with them, each reported with the same paired tests
    with pytest.warns(UserWarning, match="metric set"):
        assert main([*arguments, "--challenge", "MET", "--metrics", "dice", "lesion-dice", "lesion-hd95", "nsd"]) == 0
    rows = [json.loads(line) for line in (evaluated / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 4 * 3 and all({"lesion-dice", "lesion-hd95", "nsd", "lesions"} <= row.keys() for row in rows)
    report = (evaluated / "report.md").read_text()
    assert "| Dice WT | lesion Dice WT | lesion HD95 WT | NSD WT |" in report
    assert "## Lesions removed and created by the attacks" in report
    assert (evaluated / "metrics_summary.csv").is_file() and (evaluated / "lesion_effects.csv").is_file()

    bench = tmp_path / "bench"
    assert (
        main(
            [
                "benchmark",
                *TINY,
                "--model",
                str(train / "model.pt"),
                "--data",
                str(data),
                "--iterations",
                "2",
                "--output",
                str(bench),
            ]
        )
        == 0
    )
    results = json.loads((bench / "benchmark.json").read_text())
    assert set(results) == {"clean", "FGSM", "ART FGM", "i-FGSM", "BIM", "PGD"}
    assert results["i-FGSM"]["seconds_per_iteration_per_volume"] > 0


def test_bad_input_gives_clear_errors_and_no_report(tmp_path, capsys) -> None:
    data = tmp_path / "data"
    make_brats_phantom(data, n_subjects=2, shape=(24, 24, 16), seed=2)
    cases = [  # usage errors (a command-line value) exit with 2, failures of the run with 1
        (["evaluate", "--model", "m.pt", "--data", str(data), "--attacks", "deepfool"], 2, "attack must be one of"),
        (["evaluate", "--model", "m.pt", "--data", str(data), "--eps", "0"], 2, "--eps must be > 0, got 0"),
        (["evaluate", "--model", "m.pt", "m.pt", "--data", str(data)], 2, "--model names must be unique"),
        (["evaluate", "--model", "m.pt", "--data", str(data), "--metrics", "lesion-nsd"], 2, "needs challenge='2025'"),
        (["evaluate", "--model", "m.pt", "--data", str(data), "--metrics", "iou"], 2, "metrics item must be one of"),
        (["evaluate", "--model", "m.pt", "--data", str(data), "--challenge", "GLI23"], 2, "challenge must be one of"),
        (["evaluate", "--model", str(tmp_path / "missing.pt"), "--data", str(data)], 1, "missing.pt' does not exist"),
        (["attack", "--model", "m.pt", "--input", str(data), "--eps", "-0.1"], 2, "--eps must be > 0, got -0.1"),
        (["demo", "--eval-eps", "0.1", "-0.2", "--output", str(tmp_path / "d")], 2, "eps must be > 0, got -0.2"),
        (["train", "--output", str(tmp_path / "file.txt" / "out")], 1, "file.txt/out' is not writable"),
        (["train", "--seed", "-1"], 2, "--seed must be >= 0"),
    ]
    (tmp_path / "file.txt").write_text("a file, not a folder")
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(b"PK\x03\x04 not really a checkpoint")
    cases.append(
        (
            ["evaluate", "--model", str(damaged), "--data", str(data), "--output", str(tmp_path / "e")],
            1,
            "damaged.pt' is damaged",
        )
    )
    for argv, code, message in cases:
        assert main(argv) == code, argv
        err = capsys.readouterr().err
        assert message in err and len(err.splitlines()) == 1, (argv, err)
    assert not (tmp_path / "e" / "report.md").exists() and not (tmp_path / "d" / "report.md").exists()
    with pytest.raises(SystemExit):  # an empty eps list is refused by the parser itself
        main(["evaluate", "--model", "m.pt", "--data", str(data), "--eps"])
