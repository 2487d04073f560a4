"""Tests of the report modules: summaries against numpy/scipy (summary), the study table (markdown), plots, and the
report folder (report), with a full disk and a failing plot."""

from __future__ import annotations

import csv
import errno
import math
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from art_seg import _files
from art_seg.evaluation import plots, report
from art_seg.evaluation.markdown import study_table
from art_seg.evaluation.report import write_report
from art_seg.evaluation.robust_dice import WORST_CASE, robust_summaries
from art_seg.evaluation.summary import ConditionSummary, summarise
from art_seg.stats import holm
from tests.helpers import fail_writes

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MODELS = ("undefended", "adversarial")
ATTACKS = ("FGSM", "PGD")
EPS = (0.1, 0.3)
REGIONS = ("WT", "TC", "ET")
SUBJECTS = tuple(f"BraTS20_Training_{i:03d}" for i in range(1, 8))


def make_rows(seed: int = 0) -> list[dict]:
    """2 models x (clean + 2 attacks x 2 eps) x 7 subjects, seeded Dice, shuffled so that order means nothing."""
    rng = np.random.default_rng(seed)
    rows = []
    for model in MODELS:
        for subject in SUBJECTS:
            clean = rng.uniform(0.6, 0.95, size=len(REGIONS))
            rows.append(dict(model=model, attack="clean", eps=0.0, subject=subject,
                             dice=dict(zip(REGIONS, clean.tolist())), seconds=1.0))  # fmt: skip
            for attack in ATTACKS:
                for eps in EPS:
                    drop = rng.uniform(-0.05, 0.4, size=len(REGIONS)) * eps / 0.3
                    dice = np.clip(clean - drop, 0, 1)
                    rows.append(dict(model=model, attack=attack, eps=eps, subject=subject,
                                     dice=dict(zip(REGIONS, dice.tolist())), hd95={"WT": 3.0}))  # fmt: skip
    random.Random(seed).shuffle(rows)
    return rows


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return make_rows()


@pytest.fixture(scope="module")
def summaries(rows) -> list[ConditionSummary]:
    return summarise(rows)


def lookup(rows, model, attack, eps, region):
    """Per-subject Dice (attacked, clean) ordered by subject id, straight from the rows."""
    find = {(r["model"], r["attack"], r["eps"], r["subject"]): r["dice"][region] for r in rows}
    attacked = np.array([find[model, attack, eps, s] for s in SUBJECTS])
    clean = np.array([find[model, "clean", 0.0, s] for s in SUBJECTS])
    return attacked, clean


# ----------------------------------------------------------------------------------------------- summarise


def test_summaries_match_numpy_and_scipy(rows, summaries):
    assert len(summaries) == len(MODELS) * len(ATTACKS) * len(EPS) * len(REGIONS)
    for s in summaries:
        attacked, clean = lookup(rows, s.model, s.attack, s.eps, s.region)
        assert s.n == len(SUBJECTS) == s.comparison.n
        assert s.mean == pytest.approx(attacked.mean(), abs=1e-12)
        assert s.sd == pytest.approx(attacked.std(ddof=1), abs=1e-12)
        assert s.clean_mean == pytest.approx(clean.mean(), abs=1e-12)
        assert s.clean_sd == pytest.approx(clean.std(ddof=1), abs=1e-12)
        assert s.reduction_percent == pytest.approx(100 * (clean.mean() - attacked.mean()) / clean.mean())
        expected = stats.wilcoxon(attacked, clean)
        assert s.comparison.p_value == pytest.approx(expected.pvalue, rel=1e-12)
        assert s.comparison.statistic == pytest.approx(expected.statistic)
        assert s.comparison.alternative == "two-sided"
        assert s.comparison.median_difference == pytest.approx(np.median(attacked - clean))


def test_holm_within_each_model(summaries):
    for model in MODELS:
        mine = [s for s in summaries if s.model == model]
        assert len(mine) == len(ATTACKS) * len(EPS) * len(REGIONS)
        expected = holm([s.comparison.p_value for s in mine])
        np.testing.assert_allclose([s.p_holm for s in mine], expected, rtol=1e-12)
    # one family per model: the adjustment of a model does not depend on the other model's p-values
    alone = summarise([r for r in make_rows() if r["model"] == MODELS[0]])
    assert [s.p_holm for s in alone] == [s.p_holm for s in summaries if s.model == MODELS[0]]


def test_order_is_first_appearance_then_eps_then_region(rows, summaries):
    models = list(dict.fromkeys(r["model"] for r in rows))
    attacks = list(dict.fromkeys(r["attack"] for r in rows if r["attack"] != "clean"))
    expected = [(m, a, e, g) for m in models for a in attacks for e in sorted(EPS) for g in REGIONS]
    assert [(s.model, s.attack, s.eps, s.region) for s in summaries] == expected


def test_regions_argument_selects_and_orders(rows):
    picked = summarise(rows, regions=["ET", "WT"])
    assert [s.region for s in picked[:2]] == ["ET", "WT"]
    assert {s.region for s in picked} == {"ET", "WT"}


def test_reduction_is_nan_when_clean_dice_is_zero():
    rows = [dict(model="m", attack="clean", eps=0, subject=f"s{i}", dice={"ET": 0.0}) for i in range(3)]
    rows += [dict(model="m", attack="FGSM", eps=0.1, subject=f"s{i}", dice={"ET": 0.1 * i}) for i in range(3)]
    (s,) = summarise(rows)
    assert math.isnan(s.reduction_percent) and s.mean == pytest.approx(0.1)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda rows: rows.remove(next(r for r in rows if r["attack"] == "clean" and r["model"] == "adversarial"
                                       and r["subject"] == SUBJECTS[2])),
         f"model 'adversarial'.*subject '{SUBJECTS[2]}'.*no clean row"),
        (lambda rows: rows.append(dict(next(r for r in rows if r["attack"] == "PGD"))), "duplicate row for model"),
        (lambda rows: rows.append(dict(next(r for r in rows if r["attack"] == "clean"))), "duplicate clean row"),
        (lambda rows: rows[3].pop("dice"), r"rows\[3\].*lacks key\(s\) \['dice'\]"),
        (lambda rows: rows[4].update(dice={"WT": 0.5}), r"rows\[4\].*no Dice for region\(s\) \['TC', 'ET'\]"),
        (lambda rows: rows[5]["dice"].update(WT=1.5), r"dice\['WT'\] must be <= 1"),
        (lambda rows: rows[6].update(eps=-0.1), "'eps' must be >= 0"),
        (lambda rows: next(r for r in rows if r["attack"] == "clean").update(eps=0.1), "clean row must have eps 0"),
    ],
)  # fmt: skip
def test_bad_rows_raise_value_error_naming_them(edit, message):
    rows = [dict(r, dice=dict(r["dice"])) for r in make_rows()]
    edit(rows)
    with pytest.raises(ValueError, match=message):
        summarise(rows)


def test_bad_arguments():
    rows = make_rows()
    with pytest.raises(ValueError, match=r"no Dice for region\(s\) \['XX'\]"):
        summarise(rows, regions=["WT", "XX"])
    with pytest.raises(TypeError, match="regions must be a sequence"):
        summarise(rows, regions="WT")
    with pytest.raises(ValueError, match="regions must not repeat"):
        summarise(rows, regions=["WT", "WT"])
    with pytest.raises(ValueError, match="rows is empty"):
        summarise([])
    with pytest.raises(TypeError, match=r"rows\[0\] must be a mapping"):
        summarise([("model", "m")])
    with pytest.raises(TypeError, match="rows must be an iterable"):
        summarise(rows[0])


def test_condition_with_one_subject_names_the_condition():
    rows = [dict(model="m", attack="clean", eps=0.0, subject=s, dice={"WT": 0.9}) for s in ("a", "b")]
    rows.append(dict(model="m", attack="PGD", eps=0.5, subject="a", dice={"WT": 0.2}))
    with pytest.raises(ValueError, match=r"model 'm', attack 'PGD', eps 0.5, region 'WT' \(1 subject\(s\)\)"):
        summarise(rows)


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_invariants(data):
    n = data.draw(st.integers(2, 8), label="n")
    unit = st.floats(0, 1, allow_nan=False)
    clean = data.draw(st.lists(unit, min_size=n, max_size=n), label="clean")
    rows = [dict(model="m", attack="clean", eps=0.0, subject=f"s{i}", dice={"WT": d}) for i, d in enumerate(clean)]
    for eps in (0.2, 0.1):
        attacked = data.draw(st.lists(unit, min_size=n, max_size=n), label=f"attacked at {eps}")
        rows += [dict(model="m", attack="A", eps=eps, subject=f"s{i}", dice={"WT": d}) for i, d in enumerate(attacked)]
    for s in summarise(rows[::-1]):
        assert 0 <= s.mean <= 1 and s.comparison.p_value <= s.p_holm <= 1 and -1 <= s.comparison.effect_size <= 1
        assert s.clean_mean == pytest.approx(np.mean(clean))
        if s.clean_mean > 0 and abs(s.clean_mean - s.mean) > 1e-9:
            assert np.sign(s.reduction_percent) == np.sign(s.clean_mean - s.mean)


# ----------------------------------------------------------------------------------------------- study table


def hand_rows() -> list[dict]:
    """Model "a": 6 subjects, clean 0.9, attacked 0.5/0.6 -> 0.550 ± 0.055, 38.9 %, p = 2/64, r = -1.
    Model "b": 12 subjects, every one drops by a different amount -> exact p = 2/4096 < 0.001."""
    rows = []
    for i in range(6):
        rows.append(dict(model="a", attack="clean", eps=0.0, subject=f"s{i}", dice={"WT": 0.9}))
        rows.append(dict(model="a", attack="FGSM", eps=0.25, subject=f"s{i}", dice={"WT": 0.5 + 0.1 * (i % 2)}))
    for i in range(12):
        rows.append(dict(model="b", attack="clean", eps=0.0, subject=f"s{i}", dice={"WT": 0.8}))
        rows.append(dict(model="b", attack="FGSM", eps=0.25, subject=f"s{i}", dice={"WT": 0.7 - 0.01 * i}))
    return rows


def test_study_table_cells_by_hand():
    table = study_table(summarise(hand_rows()))
    lines = table.splitlines()
    assert lines[0] == "| Model | Attack | eps | n | Dice WT | % red. WT | p WT | r WT |"
    assert lines[2] == "| a | clean | 0 | 6 | 0.900 ± 0.000 | – | – | – |"
    assert lines[3] == "| a | FGSM | 0.25 | 6 | 0.550 ± 0.055 | 38.9 | 0.0312* | -1.00 |"
    assert lines[4] == "| b | clean | 0 | 12 | 0.800 ± 0.000 | – | – | – |"
    assert lines[5] == "| b | FGSM | 0.25 | 12 | 0.645 ± 0.036 | 19.4 | <0.001* | -1.00 |"
    caption = " ".join(lines[6:])
    for words in ("n = 6 to 12", "two-sided Wilcoxon signed-rank", "Holm", "rank-biserial", "a: 1; b: 1"):
        assert words in caption


def test_study_table_of_one_model_matches_summaries(summaries):
    table = study_table(summaries, model="adversarial")
    assert "undefended" not in table and table.splitlines()[0].startswith("| Attack | eps | n | Dice WT | Dice TC")
    mine = [s for s in summaries if s.model == "adversarial"]
    rows = table.splitlines()[2 : 3 + len(ATTACKS) * len(EPS)]
    assert rows[0].startswith(f"| clean | 0 | 7 | {mine[0].clean_mean:.3f} ± {mine[0].clean_sd:.3f} |")
    for line, first in zip(rows[1:], mine[:: len(REGIONS)]):
        cells = [c.strip() for c in line.strip("|").split("|")]
        same = [s for s in mine if (s.attack, s.eps) == (first.attack, first.eps)]
        assert cells[:3] == [first.attack, f"{first.eps:g}", "7"]
        assert cells[3:6] == [f"{s.mean:.3f} ± {s.sd:.3f}" for s in same]
        assert cells[6:9] == [f"{s.reduction_percent:.1f}" for s in same]
        assert [c.rstrip("*") for c in cells[9:12]] == [format(s.comparison.p_value, "#.3g") for s in same]
        assert [c.endswith("*") for c in cells[9:12]] == [s.p_holm < 0.05 for s in same]
        assert cells[12:15] == [f"{s.comparison.effect_size:.2f}" for s in same]
    assert "n = 7 subjects" in table and "cover different subjects" not in table


def test_study_table_notes_different_subject_sets_and_unreachable_significance():
    rows = [r for r in hand_rows() if r["model"] == "a"]
    rows.append(dict(model="a", attack="clean", eps=0.0, subject="s6", dice={"WT": 0.2}))
    rows += [dict(model="a", attack="PGD", eps=0.25, subject=f"s{i}", dice={"WT": 0.1}) for i in (0, 1, 6)]
    table = study_table(summarise(rows))
    assert "cover different subjects" in table
    assert "With n = 3 the smallest attainable two-sided p is 0.25" in table


def test_study_table_bad_arguments(summaries):
    with pytest.raises(ValueError, match="model must be one of"):
        study_table(summaries, model="nope")
    with pytest.raises(ValueError, match="summaries is empty"):
        study_table([])
    with pytest.raises(TypeError, match=r"summaries\[0\] must be ConditionSummary"):
        study_table([{"model": "m"}])


# ----------------------------------------------------------------------------------------------- plots and files


def assert_png(path):
    data = path.read_bytes()
    assert len(data) > 100 and data[:8] == PNG_SIGNATURE


def no_temporaries(folder):
    return not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_robustness_curves_png(summaries, tmp_path):
    pytest.importorskip("matplotlib")
    path = plots.plot_robustness_curves(summaries, tmp_path / "curve.png", region="TC")
    assert path == tmp_path / "curve.png"
    assert_png(path)
    assert no_temporaries(tmp_path)
    with pytest.raises(ValueError, match="region must be one of"):
        plots.plot_robustness_curves(summaries, tmp_path / "x.png", region="NCR")


def overlay_inputs():
    rng = np.random.default_rng(1)
    image = np.zeros((2, 8, 6, 5), dtype=np.float32)
    image[:, :4] = 2.0  # every axial slice: half 0, half 2 -> display range 0..2, width 2
    truth = np.zeros((8, 6, 5), dtype=np.int64)
    truth[2:5, 2:4, 1] = 1
    truth[1:6, 1:5, 3] = 2  # slice 3 has the most foreground
    perturbation = rng.uniform(-0.5, 0.5, size=image.shape).astype(np.float32)
    perturbation[1, 0, 0, :] = 0.5  # largest |perturbation| of channel 1 on every slice: 0.5 -> magnify 4
    return image, truth, truth.copy(), np.roll(truth, 1, axis=0), perturbation


def test_overlay_png_default_slice_and_magnify(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    figures = []

    def keep(fig, path, **kwargs):
        figures.append(fig)
        return _files.atomic_savefig(fig, path, **kwargs)

    monkeypatch.setattr(plots, "atomic_savefig", keep)
    path = plots.plot_overlay(*overlay_inputs(), tmp_path / "overlay.png", title="BraTS20_Training_001")
    assert_png(path)
    assert no_temporaries(tmp_path)
    (fig,) = figures
    assert fig.get_suptitle().endswith("slice 3 of 5 (last axis)")
    assert fig.axes[4].get_title() == "perturbation × 4"
    assert fig.axes[0].get_title() == "image, channel 1"
    plots.plot_overlay(*overlay_inputs(), tmp_path / "o2.png", slice_index=0, magnify=10.0, channel=0)
    assert figures[1].axes[4].get_title() == "perturbation × 10"


@pytest.mark.parametrize(
    "index, value, message",
    [
        (0, np.zeros((8, 6, 5), np.float32), r"image must be \(C, D, H, W\), got shape \(8, 6, 5\)"),
        (0, np.zeros((2, 8, 6, 5), np.int64), "image must be a float array"),
        (1, np.zeros((8, 6, 4), np.int64), r"truth must have the image's spatial shape \(8, 6, 5\), got"),
        (2, np.zeros((8, 6, 5), np.float32), "clean_prediction must hold integer class indices"),
        (3, -np.ones((8, 6, 5), np.int64), "adversarial_prediction must hold class indices >= 0"),
        (4, np.zeros((1, 8, 6, 5), np.float32), r"perturbation must have the image's shape \(2, 8, 6, 5\)"),
    ],
)  # fmt: skip
def test_overlay_bad_inputs(tmp_path, index, value, message):
    inputs = list(overlay_inputs())
    inputs[index] = value
    with pytest.raises(ValueError, match=message):
        plots.plot_overlay(*inputs, tmp_path / "x.png")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "options, error, message",
    [
        (dict(channel=2), ValueError, "channel must be <= 1"),
        (dict(slice_index=5), ValueError, "slice_index must be <= 4"),
        (dict(magnify=0.0), ValueError, "magnify must be > 0"),
        (dict(class_names=["bg", "a"]), ValueError, r"class_names must name classes 0..2"),
    ],
)
def test_overlay_bad_options(tmp_path, options, error, message):
    with pytest.raises(error, match=message):
        plots.plot_overlay(*overlay_inputs(), tmp_path / "x.png", **options)


def test_write_report(tmp_path):
    pytest.importorskip("matplotlib")
    rows = make_rows()
    overlay = tmp_path / "figures" / "case 1.png"
    overlay.parent.mkdir()
    overlay.write_bytes(PNG_SIGNATURE + b"stand-in")
    out = tmp_path / "out" / "report"
    path = write_report(rows, out, title="Robustness of two models", overlays=[("FGSM, eps 0.3", overlay)],
                        notes=["First note.", "Second note."])  # fmt: skip
    assert path == out / "report.md"
    names = sorted(p.name for p in out.iterdir())
    assert names == ["report.md", "robustness_curve_ET.png", "robustness_curve_TC.png", "robustness_curve_WT.png",
                     "summary.csv"]  # fmt: skip
    for region in REGIONS:
        assert_png(out / f"robustness_curve_{region}.png")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Robustness of two models\n")
    assert "## undefended" in text and "## adversarial" in text
    assert "![Dice WT against eps](robustness_curve_WT.png)" in text
    assert "![FGSM, eps 0.3](../../figures/case%201.png)" in text
    assert text.rstrip().endswith("First note.\n\nSecond note.")
    assert study_table(summarise(rows), model="undefended").strip() in text

    with open(out / "summary.csv", newline="", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    summaries = summarise(rows)
    robust = robust_summaries(rows)  # the worst case over attacks follows, one line per model, eps and region
    assert len(table) == len(summaries) + len(robust) and {line["attack"] for line in table[len(summaries) :]} == {
        WORST_CASE
    }
    assert text.index("## Robust Dice") < text.index("## undefended")
    for line, s in zip(table, summaries):
        key = (line["model"], line["attack"], float(line["eps"]), line["region"])
        assert key == (s.model, s.attack, s.eps, s.region)
        assert float(line["p_value"]) == s.comparison.p_value and float(line["p_holm"]) == s.p_holm
        assert float(line["mean"]) == s.mean and float(line["ci_low"]) == s.comparison.ci_low
        assert int(line["n"]) == 7 and float(line["effect_size"]) == s.comparison.effect_size


def earlier_report(folder):
    """A complete report of other rows in ``folder``; returns its files' contents."""
    write_report(make_rows(seed=5), folder)
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_failure_leaves_the_earlier_report_complete(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    before = earlier_report(tmp_path)

    def broken(*args, **kwargs):
        raise RuntimeError("plot failed")

    with pytest.raises(ValueError, match="duplicate"):  # bad rows: the old report is left alone
        write_report(make_rows() * 2, tmp_path)
    monkeypatch.setattr(report, "robustness_curves_figure", broken)
    with pytest.raises(RuntimeError, match="plot failed"):
        write_report(make_rows(), tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


@pytest.mark.parametrize("failing", ["summary.csv", "robustness_curve_TC.png", "report.md"])
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_full_or_read_only_disk_keeps_the_earlier_report(tmp_path, monkeypatch, failing, code):
    """The disk fills up (or turns read-only) while one file of the report is written: no file of the earlier
    report changes, no temporary file is left, and the error names the file."""
    pytest.importorskip("matplotlib")
    before = earlier_report(tmp_path)
    fail_writes(monkeypatch, lambda path: path.name == failing, code, written=0.5)
    with pytest.raises(OSError) as error:
        write_report(make_rows(), tmp_path)
    assert error.value.errno == code and error.value.filename == str(tmp_path / failing)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_atomic_write_files_leaves_every_destination_when_one_cannot_be_created(tmp_path):
    (tmp_path / "a.txt").write_text("old a")
    with pytest.raises(FileNotFoundError) as error:
        _files.atomic_write_files({tmp_path / "a.txt": b"new a", tmp_path / "missing" / "b.txt": b"b"})
    assert error.value.filename == str(tmp_path / "missing" / "b.txt")
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"] and (tmp_path / "a.txt").read_text() == "old a"


def test_summary_and_table_import_without_matplotlib():
    """The statistics and the table need no plotting library: importing them leaves matplotlib unloaded."""
    code = (
        "import sys\n"
        "from art_seg.evaluation import summarise, study_table\n"
        "from art_seg.evaluation.summary import summary_csv\n"
        "import art_seg.evaluation.report, art_seg.evaluation.plots\n"
        "print('matplotlib' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[2]  # this checkout's art_seg, not an installed one
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert result.stdout.strip() == "False"


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match=r"output folder '.*file.txt/out' is not writable"):
        write_report(make_rows(), blocker / "out")


def test_report_argument_errors(tmp_path):
    rows = make_rows()
    with pytest.raises(ValueError, match="do not exist"):
        write_report(rows, tmp_path, overlays=[("missing", tmp_path / "nope.png")])
    with pytest.raises(TypeError, match="notes must be a sequence"):
        write_report(rows, tmp_path, notes="one note")
    with pytest.raises(ValueError, match="only clean rows"):
        write_report([r for r in rows if r["attack"] == "clean"], tmp_path)


def test_atomic_savefig_failure_keeps_old_file(tmp_path):
    class Broken:
        def savefig(self, handle, **kwargs):
            handle.write(b"partial")
            raise OSError("disk full")

    target = _files.atomic_write_text(tmp_path / "figure.png", "old")
    with pytest.raises(OSError, match="disk full"):
        _files.atomic_savefig(Broken(), target)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["figure.png"]
