"""The report's parts beyond the study table: every chosen metric side by side, and the lesions each attack removed
or created.

- :func:`metric_summaries` runs :func:`~art_seg.evaluation.summary.summarise` once per metric present in the rows
  (the same paired Wilcoxon tests, a Holm family per model and metric); :func:`metrics_table` shows them side by
  side per model (``Dice WT | lesion Dice WT | ...``), :func:`metrics_csv` gives them all as CSV.
- :func:`lesion_effects` compares each attacked row's ``"lesions"`` record with its clean row's, ground-truth
  lesion by lesion: lesions found on the clean image and missed under attack (removed), the reverse (restored),
  and false-positive lesions created (more false lesions under attack than on the clean image, per subject);
  :func:`lesion_effects_table` shows them per model.

Text only; nothing is written here (:mod:`art_seg.evaluation.report` writes the files).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from art_seg.evaluation.markdown import ALPHA
from art_seg.evaluation.metric_sets import METRICS
from art_seg.evaluation.summary import CLEAN, SUMMARY_COLUMNS, ConditionSummary, summarise, summary_csv

__all__ = [
    "LesionEffect",
    "lesion_effects",
    "lesion_effects_csv",
    "lesion_effects_table",
    "metric_report_parts",
    "metric_summaries",
    "metrics_csv",
    "metrics_table",
    "row_metrics",
]


def row_metrics(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The metrics of :data:`~art_seg.evaluation.metric_sets.METRICS` that the first row holds, in report order."""
    return [metric for metric in METRICS if rows and metric in rows[0]]


def metric_summaries(
    rows: Sequence[Mapping[str, Any]], metrics: Sequence[str], *, regions: Sequence[str] | None = None
) -> dict[str, list[ConditionSummary]]:
    """``{metric: summarise(rows, regions=regions, metric=metric)}`` for each of ``metrics``, in their order.

    Raises:
        ValueError, TypeError: as :func:`~art_seg.evaluation.summary.summarise` (a row without one of the
            metrics, a value out of range, ...).
    """
    return {metric: summarise(rows, regions=regions, metric=metric) for metric in metrics}


def _cell(summary: ConditionSummary, attacked: bool) -> str:
    digits = ".3f" if METRICS[summary.metric].bounded else ".1f"
    value = summary.mean if attacked else summary.clean_mean
    mark = "*" if attacked and summary.p_holm < ALPHA else ""
    return format(value, digits) + mark


def metrics_table(by_metric: Mapping[str, Sequence[ConditionSummary]], *, model: str) -> str:
    """One model's mean of every metric per region, clean and under each attack and eps, side by side.

    Columns: ``Attack``, ``eps``, ``n``, then for each region each metric (``Dice WT``, ``lesion Dice WT``, ...),
    the mean over the subjects (scores 3 decimals, distances in mm 1 decimal), ``*`` when the two-sided Wilcoxon
    signed-rank test against clean is significant after Holm's correction within the model and metric. The clean
    row is over the subjects of the model's largest condition. A caption follows the table.

    Raises:
        ValueError: ``model`` has no summary.
    """
    by_key = {(s.metric, s.attack, s.eps, s.region): s for mine in by_metric.values() for s in mine
              if s.model == model}  # fmt: skip
    if not by_key:
        raise ValueError(f"model {model!r} has no summary in by_metric")
    metrics = list(by_metric)
    first = [s for s in by_metric[metrics[0]] if s.model == model]
    regions = list(dict.fromkeys(s.region for s in first))
    conditions = list(dict.fromkeys((s.attack, s.eps) for s in first))
    header = ["Attack", "eps", "n"] + [f"{METRICS[m].label} {r}" for r in regions for m in metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    reference = {(m, r): max((s for (mm, _, _, rr), s in by_key.items() if (mm, rr) == (m, r)), key=lambda s: s.n)
                 for m in metrics for r in regions}  # fmt: skip
    n_clean = max(s.n for s in reference.values())
    lines.append("| " + " | ".join([CLEAN, "0", str(n_clean)] + [_cell(reference[m, r], False) for r in regions
                                                                    for m in metrics]) + " |")  # fmt: skip
    for attack, eps in conditions:
        cells = [by_key[m, attack, eps, r] for r in regions for m in metrics]
        lines.append("| " + " | ".join([attack, f"{eps:g}", str(cells[0].n)] + [_cell(s, True) for s in cells]) + " |")
    units = ", ".join(f"{METRICS[m].label} in mm" for m in metrics if not METRICS[m].bounded)
    caption = (
        "Mean over the subjects of each metric" + (f" ({units})" if units else "") + "; \\* = two-sided Wilcoxon "
        f"signed-rank test against clean, paired by subject, p < {ALPHA:g} after Holm's correction within the model "
        "and metric. Every p-value, effect size and interval is in [`metrics_summary.csv`](metrics_summary.csv)."
    )
    return "\n".join(lines) + "\n\n" + caption + "\n"


def metrics_csv(by_metric: Mapping[str, Sequence[ConditionSummary]]) -> str:
    """Every metric's summaries as CSV: a ``metric`` column, then the columns of
    :func:`~art_seg.evaluation.summary.summary_csv` (:data:`~art_seg.evaluation.summary.SUMMARY_COLUMNS`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("metric", *SUMMARY_COLUMNS))
    for metric, summaries in by_metric.items():
        for line in list(csv.reader(io.StringIO(summary_csv(summaries))))[1:]:
            writer.writerow([metric, *line])
    return buffer.getvalue()


@dataclass(frozen=True)
class LesionEffect:
    """What one attack at one eps did to one region's lesions for one model, summed over ``n`` subjects.

    Attributes:
        model, attack, eps, region: the condition.
        n: subjects with both a clean and an attacked row.
        lesions: ground-truth lesions scored (those above the challenge's volume threshold).
        found_clean, found_attacked: of those, found on the clean image / under attack.
        removed: found on the clean image and missed under attack.
        restored: missed on the clean image and found under attack.
        false_clean, false_attacked: false-positive lesions on the clean image / under attack.
        created: false lesions the attack added, ``sum over subjects of max(0, false attacked - false clean)``.
    """

    model: str
    attack: str
    eps: float
    region: str
    n: int
    lesions: int
    found_clean: int
    found_attacked: int
    removed: int
    restored: int
    false_clean: int
    false_attacked: int
    created: int


def lesion_effects(rows: Iterable[Mapping[str, Any]]) -> list[LesionEffect]:
    """Lesions removed and created by each attack, per model, eps and region (see :class:`LesionEffect`).

    Args:
        rows: evaluation rows with ``"lesions"`` records (a run with a lesion metric); rows without one are
            ignored.

    Returns:
        One :class:`LesionEffect` per (model, attack, eps, region), in the order of first appearance, eps
        ascending; ``[]`` when no row has a ``"lesions"`` record.

    Raises:
        ValueError: an attacked row whose subject has no clean row with lesions, or whose ground-truth lesions
            differ in number from its clean row's (rows of other data).
    """
    rows = [row for row in rows if isinstance(row.get("lesions"), Mapping)]
    clean = {(row["model"], row["subject"]): row["lesions"] for row in rows if row["attack"] == CLEAN}
    totals: dict[tuple[str, str, float, str], list[int]] = {}
    for row in rows:
        if row["attack"] == CLEAN:
            continue
        before = clean.get((row["model"], row["subject"]))
        if before is None:
            raise ValueError(
                f"model {row['model']!r}, subject {row['subject']!r}: an attacked row with lesions has no clean row "
                "with lesions to compare with"
            )
        for region, after in row["lesions"].items():
            base = before[region]
            if len(base["found"]) != len(after["found"]):
                raise ValueError(
                    f"model {row['model']!r}, attack {row['attack']!r}, subject {row['subject']!r}, region "
                    f"{region!r}: {len(after['found'])} ground-truth lesions under attack, {len(base['found'])} "
                    "on the clean image: the rows were made on other data"
                )
            pairs = list(zip(base["found"], after["found"]))
            counts = [1, len(pairs), sum(base["found"]), sum(after["found"]), sum(c and not a for c, a in pairs),
                      sum(a and not c for c, a in pairs), base["false"], after["false"],
                      max(0, after["false"] - base["false"])]  # fmt: skip
            key = (row["model"], row["attack"], float(row["eps"]), region)
            totals[key] = [t + c for t, c in zip(totals.get(key, [0] * len(counts)), counts)]
    models = list(dict.fromkeys(k[0] for k in totals))
    attacks = list(dict.fromkeys(k[1] for k in totals))
    regions = list(dict.fromkeys(k[3] for k in totals))
    keys = sorted(totals, key=lambda k: (models.index(k[0]), attacks.index(k[1]), k[2], regions.index(k[3])))
    return [LesionEffect(*key, *totals[key]) for key in keys]


def lesion_effects_table(effects: Sequence[LesionEffect], *, model: str) -> str:
    """One model's lesion effects in Markdown: per attack and eps, per region, ground-truth lesions found
    (clean -> attacked), removed, false lesions (clean -> attacked) and created; a caption follows.

    Raises:
        ValueError: ``model`` has no effect in ``effects``.
    """
    mine = [e for e in effects if e.model == model]
    if not mine:
        raise ValueError(f"model {model!r} has no lesion effect")
    regions = list(dict.fromkeys(e.region for e in mine))
    header = ["Attack", "eps", "n"]
    header += [f"{r} {what}" for r in regions for what in ("found", "removed", "false", "created")]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    by_key = {(e.attack, e.eps, e.region): e for e in mine}
    for attack, eps in dict.fromkeys((e.attack, e.eps) for e in mine):
        cells = [attack, f"{eps:g}", str(by_key[attack, eps, regions[0]].n)]
        for region in regions:
            e = by_key[attack, eps, region]
            cells += [f"{e.found_clean} → {e.found_attacked} of {e.lesions}", str(e.removed),
                      f"{e.false_clean} → {e.false_attacked}", str(e.created)]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    caption = (
        "Lesions summed over the n subjects. found: ground-truth lesions found on the clean image → under attack, "
        "of all scored; removed: found on the clean image and missed under attack; false: false-positive lesions "
        "on the clean image → under attack; created: false lesions added by the attack (per subject, the increase "
        "over the clean image)."
    )
    return "\n".join(lines) + "\n\n" + caption + "\n"


def lesion_effects_csv(effects: Sequence[LesionEffect]) -> str:
    """The lesion effects as CSV, one line per :class:`LesionEffect`, its fields as columns."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    names = [f.name for f in fields(LesionEffect)]
    writer.writerow(names)
    for effect in effects:
        writer.writerow([repr(v) if isinstance(v, float) else v for v in (getattr(effect, n) for n in names)])
    return buffer.getvalue()


def metric_report_parts(
    rows: Sequence[Mapping[str, Any]], *, regions: Sequence[str] | None = None
) -> tuple[dict[str, str], list[str]]:
    """The files and Markdown sections a report adds for the rows' metrics beyond Dice and their lesion records.

    Returns:
        ``(files, sections)``: ``files`` maps ``metrics_summary.csv`` (when the rows hold a metric beside Dice)
        and ``lesion_effects.csv`` (when they hold lesion records) to their text; ``sections`` are the Markdown
        sections "Every metric" (each model's :func:`metrics_table`) and "Lesions removed and created by the
        attacks" (each model's :func:`lesion_effects_table`). Both empty for Dice-only rows. A metric that the
        first row holds for only some of the ``regions`` (default: those of its Dice) is left out.
    """
    files, sections = {}, []
    wanted = list(rows[0]["dice"]) if regions is None else list(regions)
    metrics = [metric for metric in row_metrics(rows) if all(region in rows[0][metric] for region in wanted)]
    if len(metrics) > 1:
        by_metric = metric_summaries(rows, metrics, regions=regions)
        files["metrics_summary.csv"] = metrics_csv(by_metric)
        models = list(dict.fromkeys(s.model for s in by_metric["dice"]))
        text = ["## Every metric", "", f"Metrics: {', '.join(METRICS[m].label for m in metrics)}."]
        for model in models:
            text += ["", f"### {model}", "", metrics_table(by_metric, model=model).rstrip("\n")]
        sections.append("\n".join(text))
    effects = lesion_effects(rows)
    if effects:
        files["lesion_effects.csv"] = lesion_effects_csv(effects)
        text = ["## Lesions removed and created by the attacks"]
        for model in dict.fromkeys(e.model for e in effects):
            text += ["", f"### {model}", "", lesion_effects_table(effects, model=model).rstrip("\n")]
        sections.append("\n".join(text))
    return files, sections
