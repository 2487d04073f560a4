"""Robust Dice: per model and eps, each subject's worst Dice over every attack run, per region.

A defended model's quotable figure is its worst case, not its Dice under one attack (i-FGSM can overstate the
robustness of a model that masks gradients). For every model, eps and subject, the worst-case row takes, region by
region, the lowest Dice of that subject's rows of every attack at that eps (the per-sample worst case of
:class:`~art_seg.attacks.SEA` and :class:`~art_seg.attacks.WorstCaseEnsemble`, over whatever attacks were run; a
region's minimum may come from another attack than another region's). :func:`robust_summaries` summarises these
rows against the clean rows as :func:`~art_seg.evaluation.summary.summarise` does any attack, under the attack name
:data:`WORST_CASE` (Holm-corrected within each model over the worst-case comparisons only, so the other
conditions' p-values are unchanged); :func:`robust_dice_section` is the report's first table.

Example:
    >>> rows = [{"model": "m", "attack": "clean", "eps": 0.0, "subject": s, "dice": {"WT": 0.9}} for s in "ab"]
    >>> rows += [{"model": "m", "attack": a, "eps": 0.1, "subject": s, "dice": {"WT": d}}
    ...          for a, s, d in [("FGSM", "a", 0.5), ("FGSM", "b", 0.7), ("PGD", "a", 0.6), ("PGD", "b", 0.4)]]
    >>> [(s.attack, s.eps, round(s.mean, 2)) for s in robust_summaries(rows)]  # (0.5 + 0.4) / 2
    [('worst case', 0.1, 0.45)]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from art_seg.evaluation.markdown import _markdown_row, _mean_sd, _one_line
from art_seg.evaluation.summary import CLEAN, ConditionSummary, _check_regions, _check_row, summarise

__all__ = ["WORST_CASE", "robust_dice_section", "robust_summaries", "worst_case_rows"]

#: The ``"attack"`` of the worst-case rows and summaries.
WORST_CASE = "worst case"


def worst_case_rows(
    rows: Iterable[Mapping[str, Any]], *, regions: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """The clean rows, and per (model, eps, subject) one row with each region's lowest Dice over the attacks.

    Args:
        rows: evaluation rows (see :mod:`art_seg.evaluation.summary`); rows named :data:`WORST_CASE` are refused.
        regions: regions to keep (default: the first row's Dice regions, in order).

    Returns:
        Rows ``{"model", "attack", "eps", "subject", "dice", "attacks"}``: the clean rows (``"attacks": []``),
        then one :data:`WORST_CASE` row per (model, eps, subject) in order of first appearance, ``"attacks"`` the
        names of the attacks run on it, in order of appearance.

    Raises:
        TypeError, ValueError: an invalid row (as :func:`~art_seg.evaluation.summary.summarise` says), or an
            attack already named :data:`WORST_CASE`.
    """
    rows = list(rows)
    if regions is None:
        first = rows[0] if rows and isinstance(rows[0], Mapping) else {}
        regions = tuple(first.get("dice") or ()) if isinstance(first.get("dice"), Mapping) else ()
    regions = _check_regions(regions)
    clean, worst = [], {}
    for index, row in enumerate(rows):
        model, attack, eps, subject, scores = _check_row(index, row, regions)
        if attack == CLEAN:
            clean.append({"model": model, "attack": CLEAN, "eps": eps, "subject": subject, "dice": scores,
                          "attacks": []})  # fmt: skip
            continue
        if attack == WORST_CASE:
            raise ValueError(f"rows[{index}] is named {WORST_CASE!r}, the name of the worst case over attacks")
        key = (model, eps, subject)
        if key not in worst:
            worst[key] = {"model": model, "attack": WORST_CASE, "eps": eps, "subject": subject, "dice": dict(scores),
                          "attacks": [attack]}  # fmt: skip
            continue
        entry = worst[key]
        entry["dice"] = {region: min(entry["dice"][region], scores[region]) for region in regions}
        entry["attacks"].append(attack)
    return clean + list(worst.values())


def robust_summaries(
    rows: Iterable[Mapping[str, Any]], *, regions: Sequence[str] | None = None
) -> list[ConditionSummary]:
    """:func:`~art_seg.evaluation.summary.summarise` of :func:`worst_case_rows`: one :data:`WORST_CASE` summary per
    (model, eps, region), its ``mean`` the robust Dice (mean over subjects of their worst Dice)."""
    return summarise(worst_case_rows(rows, regions=regions), regions=regions)


def robust_dice_section(robust: Sequence[ConditionSummary], attacks: Sequence[str]) -> str:
    """The report's first section: robust Dice (mean ± sd over subjects) per model and eps, one column per region.

    Args:
        robust: from :func:`robust_summaries`.
        attacks: the attacks the worst case is taken over, named in the text.

    Returns:
        Markdown with its ``##`` heading, ending with one newline.
    """
    regions = list(dict.fromkeys(s.region for s in robust))
    by_key = {(s.model, s.eps, s.region): s for s in robust}
    lines = [
        "## Robust Dice",
        "",
        f"Per model and eps, each subject's lowest Dice over every attack run ({', '.join(attacks)}), region by "
        "region, averaged over the subjects (mean ± sd): the figure to quote for a model's robustness, not its Dice "
        "under one attack. Clean Dice of the same subjects for comparison. In "
        f"[`summary.csv`](summary.csv) as attack `{WORST_CASE}`.",
        "",
        _markdown_row(["model", "eps", *[f"{_one_line(r)} robust" for r in regions], *[f"{r} clean" for r in regions]]),
        _markdown_row(["---"] * (2 + 2 * len(regions))),
    ]
    for model, eps in dict.fromkeys((s.model, s.eps) for s in robust):
        cells = [_one_line(model), f"{eps:g}"]
        cells += [_mean_sd(by_key[model, eps, r].mean, by_key[model, eps, r].sd) for r in regions]
        cells += [_mean_sd(by_key[model, eps, r].clean_mean, by_key[model, eps, r].clean_sd) for r in regions]
        lines.append(_markdown_row(cells))
    return "\n".join(lines) + "\n"
