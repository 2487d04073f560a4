"""Summaries of a robustness evaluation: Dice per region under each attack and eps, compared with clean images.

The input is the rows of a robustness evaluation (:mod:`art_seg.evaluation.robustness` writes them, one JSON
object a line)::

    {"model": "undefended", "attack": "i-FGSM", "eps": 0.3, "subject": "BraTS20_Training_003",
     "dice": {"WT": 0.71, "TC": 0.52, "ET": 0.49}, "hd95": {...}, "seconds": 1.9}

with ``"attack": "clean"`` and ``"eps": 0.0`` for the clean image of a subject. Dice is in ``[0, 1]``; ``eps`` is
the L-inf budget in z-scored intensity units. Other keys (``"hd95"``, ``"seconds"``) are ignored here.

For every model, attack, eps and region, :func:`summarise` pairs each subject's Dice under attack with its clean
Dice and runs a two-sided Wilcoxon signed-rank test (:func:`art_seg.stats.paired_wilcoxon`, ``before`` = clean,
``after`` = attacked, so a drop in Dice gives a negative effect size); p-values are Holm-corrected within each
model over all its (attack, eps, region) comparisons. :func:`summary_csv` gives the summaries as CSV text.

This module needs numpy and scipy only: the Markdown table is in :mod:`art_seg.evaluation.markdown`, the plots
(matplotlib) in :mod:`art_seg.evaluation.plots` and the report folder in :mod:`art_seg.evaluation.report`.

Example:
    >>> rows = [{"model": "m", "attack": "clean", "eps": 0.0, "subject": f"s{i}", "dice": {"WT": 0.9}}
    ...         for i in range(6)]
    >>> rows += [{"model": "m", "attack": "FGSM", "eps": 0.1, "subject": f"s{i}", "dice": {"WT": 0.5 + i / 100}}
    ...          for i in range(6)]
    >>> (summary,) = summarise(rows)
    >>> summary.n, round(summary.mean, 3), round(summary.reduction_percent, 1), summary.comparison.p_value
    (6, 0.525, 41.7, 0.03125)
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from art_seg._checks import check_choice, check_number, check_type
from art_seg.evaluation.metric_sets import METRICS
from art_seg.stats import PairedComparison, holm, paired_wilcoxon

__all__ = ["CLEAN", "SUMMARY_COLUMNS", "ConditionSummary", "check_summaries", "summarise", "summary_csv"]

#: The ``"attack"`` of a clean (unattacked) row.
CLEAN = "clean"
REQUIRED_KEYS = ("model", "attack", "eps", "subject", "dice")


@dataclass(frozen=True)
class ConditionSummary:
    """Dice of one region for one model under one attack at one eps, compared with clean Dice of the same subjects.

    Attributes:
        model: model name.
        attack: attack name (never ``"clean"``).
        eps: attack budget, L-inf, in z-scored intensity units.
        region: region name (e.g. ``"WT"``).
        n: number of subjects paired (those with a row for this condition; each has a clean row).
        mean: mean Dice under attack over the ``n`` subjects, in ``[0, 1]``.
        sd: sample standard deviation (``ddof=1``) of that Dice; NaN when ``n < 2``.
        clean_mean: mean clean Dice of the same ``n`` subjects.
        clean_sd: its sample standard deviation (``ddof=1``); NaN when ``n < 2``.
        reduction_percent: ``100 * (clean_mean - mean) / clean_mean``, positive when the attack lowers Dice; NaN
            when ``clean_mean == 0``.
        comparison: two-sided :func:`~art_seg.stats.paired_wilcoxon` with ``before`` = clean Dice and ``after`` =
            Dice under attack, paired by subject (differences ``attacked - clean``).
        p_holm: ``comparison.p_value`` Holm-adjusted within the family of all (attack, eps, region) comparisons
            of this model (and this metric).
        metric: the row key summarised (``"dice"``; another metric of
            :data:`~art_seg.evaluation.metric_sets.METRICS` with ``summarise(..., metric=...)``, whose values then
            stand where this docstring says Dice).
    """

    model: str
    attack: str
    eps: float
    region: str
    n: int
    mean: float
    sd: float
    clean_mean: float
    clean_sd: float
    reduction_percent: float
    comparison: PairedComparison
    p_holm: float
    metric: str = "dice"


def _check_regions(regions: Any) -> tuple[str, ...]:
    if isinstance(regions, (str, bytes)) or not isinstance(regions, Iterable):
        raise TypeError(f"regions must be a sequence of region names, got {type(regions).__name__} ({regions!r})")
    regions = tuple(regions)
    for region in regions:
        check_type("regions item", region, str)
    if not regions:
        raise ValueError("regions must name at least one region, got none")
    if len(set(regions)) != len(regions):
        raise ValueError(f"regions must not repeat a name, got {regions}")
    return regions


def _sample_sd(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1)) if values.size >= 2 else math.nan


def _where(index: int, row: Mapping[str, Any]) -> str:
    return f"rows[{index}] (model {row.get('model')!r}, attack {row.get('attack')!r}, subject {row.get('subject')!r})"


def _check_row(
    index: int, row: Any, regions: tuple[str, ...], metric: str = "dice"
) -> tuple[str, str, float, str, dict[str, float]]:
    """``(model, attack, eps, subject, {region: value of metric})`` of a checked row."""
    if not isinstance(row, Mapping):
        raise TypeError(f"rows[{index}] must be a mapping (a dict), got {type(row).__name__} ({row!r})")
    required = (*REQUIRED_KEYS, *([] if metric in REQUIRED_KEYS else [metric]))
    missing = [key for key in required if key not in row]
    if missing:
        raise ValueError(f"{_where(index, row)} lacks key(s) {missing}; a row needs {list(required)}")
    where = _where(index, row)
    for key in ("model", "attack", "subject"):
        check_type(f"{where} {key!r}", row[key], str)
    eps = row["eps"]
    check_number(f"{where} 'eps'", eps, low=0)
    if row["attack"] == CLEAN and eps != 0:
        raise ValueError(f"{where}: a clean row must have eps 0.0, got {eps!r}")
    values = row[metric]
    if not isinstance(values, Mapping):
        raise TypeError(
            f"{where} {metric!r} must be a mapping region -> value, got {type(values).__name__} ({values!r})"
        )
    absent = [region for region in regions if region not in values]
    if absent:
        label = METRICS[metric].label
        raise ValueError(f"{where} has no {label} for region(s) {absent}; its {metric!r} has {list(values)}")
    high = 1 if METRICS[metric].bounded else None
    scores = {}
    for region in regions:
        check_number(f"{where} {metric}[{region!r}]", values[region], low=0, high=high)
        scores[region] = float(values[region])
    return row["model"], row["attack"], float(eps), row["subject"], scores


def summarise(
    rows: Iterable[Mapping[str, Any]], *, regions: Sequence[str] | None = None, metric: str = "dice"
) -> list[ConditionSummary]:
    """Per model, attack, eps and region: Dice under attack vs. clean Dice of the same subjects.

    With ``metric`` another metric of :data:`~art_seg.evaluation.metric_sets.METRICS` (``"lesion-dice"``,
    ``"hd95"``, ...): the same for that metric's values, a Holm family per model and metric; scores must lie in
    ``[0, 1]``, distances be ``>= 0`` mm (for a distance, ``reduction_percent`` is negative when the attack
    increases it).

    Args:
        rows: evaluation rows (see the module docstring), in any order: one clean row (``"attack": "clean"``,
            ``"eps": 0.0``) per (model, subject) and at most one row per (model, attack, eps, subject). Dice in
            ``[0, 1]``, eps in z-scored intensity units (``>= 0``).
        regions: regions to summarise, in output order; default the keys of the first row's ``"dice"``, in their
            order. Every row must have a Dice (and a value of ``metric``) for each.
        metric: the row key to summarise, default ``"dice"``.

    Returns:
        One :class:`ConditionSummary` per (model, attack, eps, region): models and attacks in order of first
        appearance in ``rows``, then eps ascending, then ``regions`` order. Clean rows are the reference of the
        comparisons, not conditions of their own. A model with only clean rows gives no summaries.

    Raises:
        TypeError: if ``rows`` or a row is not a mapping, or a field has the wrong type (names the row).
        ValueError: if ``rows`` is empty; a row lacks a key or a region, has eps < 0, a Dice outside ``[0, 1]``
            or a clean row has eps != 0; two rows share (model, attack, eps, subject); an attacked subject has no
            clean row of its model; or a condition has fewer than 2 subjects (the message names the model,
            attack, eps and subject or region).
    """
    if isinstance(rows, Mapping) or isinstance(rows, (str, bytes)) or not isinstance(rows, Iterable):
        raise TypeError(f"rows must be an iterable of row mappings, got {type(rows).__name__}")
    rows = list(rows)
    if not rows:
        raise ValueError("rows is empty: there is nothing to summarise")
    check_choice("metric", metric, METRICS)
    if regions is None:
        first = rows[0]
        if not isinstance(first, Mapping) or not isinstance(first.get("dice"), Mapping):
            _check_row(0, first, ())  # raises the precise error
        regions = tuple(first["dice"])
    regions = _check_regions(regions)

    clean: dict[tuple[str, str], tuple[int, dict[str, float]]] = {}  # (model, subject) -> (row index, dice)
    attacked: dict[tuple[str, str, float], dict[str, tuple[int, dict[str, float]]]] = {}
    models: dict[str, None] = {}
    attacks: dict[str, None] = {}
    for index, row in enumerate(rows):
        model, attack, eps, subject, scores = _check_row(index, row, regions, metric)
        models.setdefault(model)
        if attack == CLEAN:
            if (model, subject) in clean:
                raise ValueError(
                    f"duplicate clean row for model {model!r}, subject {subject!r}: rows[{clean[model, subject][0]}] "
                    f"and rows[{index}]"
                )
            clean[model, subject] = (index, scores)
            continue
        attacks.setdefault(attack)
        condition = attacked.setdefault((model, attack, eps), {})
        if subject in condition:
            raise ValueError(
                f"duplicate row for model {model!r}, attack {attack!r}, eps {eps:g}, subject {subject!r}: "
                f"rows[{condition[subject][0]}] and rows[{index}]"
            )
        condition[subject] = (index, scores)

    for (model, attack, eps), condition in attacked.items():
        for subject, (index, _) in condition.items():
            if (model, subject) not in clean:
                raise ValueError(
                    f"rows[{index}] (model {model!r}, attack {attack!r}, eps {eps:g}, subject {subject!r}) has no "
                    f"clean row to compare with: add the row with model {model!r}, subject {subject!r}, "
                    f"attack {CLEAN!r}"
                )

    model_order, attack_order = list(models), list(attacks)
    keys = sorted(attacked, key=lambda key: (model_order.index(key[0]), attack_order.index(key[1]), key[2]))
    summaries: list[ConditionSummary] = []
    for model in model_order:
        pending = []
        for key in (key for key in keys if key[0] == model):
            _, attack, eps = key
            subjects = sorted(attacked[key])  # a fixed order: sums do not depend on the order of the rows
            for region in regions:
                after = np.array([attacked[key][s][1][region] for s in subjects])
                before = np.array([clean[model, s][1][region] for s in subjects])
                try:
                    comparison = paired_wilcoxon(before, after, alternative="two-sided")
                except ValueError as error:
                    raise ValueError(
                        f"model {model!r}, attack {attack!r}, eps {eps:g}, region {region!r} "
                        f"({len(subjects)} subject(s)): {error}"
                    ) from error
                clean_mean = float(before.mean())
                reduction = 100.0 * (clean_mean - after.mean()) / clean_mean if clean_mean != 0 else math.nan
                pending.append(
                    dict(
                        model=model, attack=attack, eps=eps, region=region, n=len(subjects),
                        mean=float(after.mean()), sd=_sample_sd(after), clean_mean=clean_mean,
                        clean_sd=_sample_sd(before), reduction_percent=float(reduction), comparison=comparison,
                    )
                )  # fmt: skip
        adjusted = holm([fields["comparison"].p_value for fields in pending])
        summaries += [
            ConditionSummary(**fields, p_holm=float(p), metric=metric) for fields, p in zip(pending, adjusted)
        ]
    return summaries


def check_summaries(summaries: Any) -> list[ConditionSummary]:
    """``summaries`` as a non-empty list of :class:`ConditionSummary` (the input check of every consumer).

    Raises:
        TypeError: if ``summaries`` is not a sequence of :class:`ConditionSummary`.
        ValueError: if it is empty.
    """
    if isinstance(summaries, ConditionSummary) or not isinstance(summaries, Iterable):
        raise TypeError(f"summaries must be a sequence of ConditionSummary, got {type(summaries).__name__}")
    summaries = list(summaries)
    for index, summary in enumerate(summaries):
        check_type(f"summaries[{index}]", summary, ConditionSummary)
    if not summaries:
        raise ValueError("summaries is empty: summarise() found no attacked condition")
    return summaries


#: Columns of :func:`summary_csv`, in order.
SUMMARY_COLUMNS = (
    "model", "attack", "eps", "region", "n", "mean", "sd", "clean_mean", "clean_sd", "reduction_percent",
    "statistic", "p_value", "p_holm", "effect_size", "median_difference", "ci_low", "ci_high", "confidence",
    "n_nonzero", "method", "note",
)  # fmt: skip


def summary_csv(summaries: Sequence[ConditionSummary]) -> str:
    """The summaries as CSV text: a header of :data:`SUMMARY_COLUMNS`, then one line per summary.

    Every numeric field of the summary and its comparison (mean, sd, clean_mean, clean_sd, reduction_percent,
    statistic, p_value, p_holm, effect_size, median_difference, ci_low, ci_high, confidence, n_nonzero) and the
    comparison's method and note; floats at full precision (``repr``), ``nan`` / ``inf`` as such; ``\\n`` line ends.

    Raises:
        TypeError, ValueError: see :func:`check_summaries`.
    """
    summaries = check_summaries(summaries)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SUMMARY_COLUMNS)
    for s in summaries:
        c = s.comparison
        writer.writerow(
            [s.model, s.attack, repr(s.eps), s.region, s.n, repr(s.mean), repr(s.sd), repr(s.clean_mean),
             repr(s.clean_sd), repr(s.reduction_percent), repr(c.statistic), repr(c.p_value), repr(s.p_holm),
             repr(c.effect_size), repr(c.median_difference), repr(c.ci_low), repr(c.ci_high), repr(c.confidence),
             c.n_nonzero, c.method, c.note]
        )  # fmt: skip
    return buffer.getvalue()
