"""Robust Dice: the per-subject worst case over attacks, per region, first in the report and in summary.csv."""

from __future__ import annotations

import csv
import io

import pytest

from art_seg.evaluation import WORST_CASE, robust_summaries, summarise, write_report
from art_seg.evaluation.robust_dice import worst_case_rows


def rows_by_hand() -> list[dict]:
    """Two models, 3 subjects, attacks A and B at eps 0.1 and A at 0.2; regions WT and TC."""
    rows = []
    for model in ("m", "n"):
        for i, subject in enumerate(("s1", "s2", "s3")):
            rows.append({"model": model, "attack": "clean", "eps": 0.0, "subject": subject,
                         "dice": {"WT": 0.9, "TC": 0.8 - i / 10}})
            rows.append({"model": model, "attack": "A", "eps": 0.1, "subject": subject,
                         "dice": {"WT": 0.5 + i / 10, "TC": 0.3}})
            rows.append({"model": model, "attack": "B", "eps": 0.1, "subject": subject,
                         "dice": {"WT": 0.7 - i / 10, "TC": 0.2 + i / 10}})
            rows.append({"model": model, "attack": "A", "eps": 0.2, "subject": subject,
                         "dice": {"WT": 0.1, "TC": 0.0}})
    return rows  # fmt: skip


def test_worst_case_takes_each_subjects_lowest_dice_per_region() -> None:
    worst = [r for r in worst_case_rows(rows_by_hand()) if r["attack"] == WORST_CASE and r["model"] == "m"]
    at_01 = {r["subject"]: r["dice"] for r in worst if r["eps"] == 0.1}
    # WT: min(0.5, 0.7), min(0.6, 0.6), min(0.7, 0.5); TC: min(0.3, 0.2), min(0.3, 0.3), min(0.3, 0.4)
    assert at_01 == {
        "s1": pytest.approx({"WT": 0.5, "TC": 0.2}),
        "s2": pytest.approx({"WT": 0.6, "TC": 0.3}),
        "s3": pytest.approx({"WT": 0.5, "TC": 0.3}),
    }
    assert {r["subject"]: r["attacks"] for r in worst if r["eps"] == 0.1}["s1"] == ["A", "B"]
    robust = {(s.model, s.eps, s.region): s for s in robust_summaries(rows_by_hand())}
    assert len(robust) == 2 * 2 * 2
    assert robust["m", 0.1, "WT"].mean == pytest.approx(1.6 / 3)  # below both attacks' means (0.6 and 0.6)
    assert robust["m", 0.1, "TC"].mean == pytest.approx(0.8 / 3)
    assert robust["m", 0.2, "WT"].mean == pytest.approx(0.1)  # a single attack: its own Dice
    assert robust["m", 0.1, "TC"].clean_mean == pytest.approx(0.7)  # 0.8, 0.7, 0.6
    plain = summarise(rows_by_hand())
    for s in plain:  # the worst case is at most every attack's mean
        assert robust[s.model, s.eps, s.region].mean <= s.mean + 1e-12


def test_worst_case_refuses_its_own_name_and_bad_rows() -> None:
    rows = rows_by_hand() + [{"model": "m", "attack": WORST_CASE, "eps": 0.1, "subject": "s1", "dice": {"WT": 1.0,
                                                                                                        "TC": 1.0}}]
    with pytest.raises(ValueError, match="is named 'worst case'"):
        worst_case_rows(rows)
    with pytest.raises(ValueError, match="dice"):
        worst_case_rows([{"model": "m", "attack": "A", "eps": 0.1, "subject": "s1", "dice": {"WT": 1.5}}])


def test_report_leads_with_robust_dice_and_summary_csv_holds_it(tmp_path) -> None:
    report = write_report(rows_by_hand(), tmp_path, title="t")
    text = report.read_text()
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings[0] == "## Robust Dice" and headings[1] == "## m"
    table = text.split("## Robust Dice")[1].split("## m")[0]
    assert "| m | 0.1 | 0.533 ± 0.058 | 0.267 ± 0.058 | 0.900 ± 0.000 | 0.700 ± 0.100 |" in table
    lines = list(csv.DictReader(io.StringIO((tmp_path / "summary.csv").read_text())))
    worst = [line for line in lines if line["attack"] == WORST_CASE]
    assert len(worst) == 8 and len(lines) == 8 + 2 * 3 * 2
    # the other conditions' lines, Holm p-values included, are those of summarise alone
    plain = {(s.model, s.attack, s.eps, s.region): s.p_holm for s in summarise(rows_by_hand())}
    for line in lines:
        if line["attack"] != WORST_CASE:
            key = (line["model"], line["attack"], float(line["eps"]), line["region"])
            assert float(line["p_holm"]) == pytest.approx(plain[key])
