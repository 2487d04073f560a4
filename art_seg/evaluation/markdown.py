"""Markdown of a robustness report: the study-style table (Liu et al. 2019) and the text of ``report.md``.

Both take the :class:`~art_seg.evaluation.summary.ConditionSummary` list of
:func:`~art_seg.evaluation.summary.summarise` and return text; nothing is written here (see
:mod:`art_seg.evaluation.report`). No plotting library is imported.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from art_seg._checks import check_choice
from art_seg.evaluation.summary import CLEAN, ConditionSummary, check_summaries
from art_seg.stats import min_attainable_p

__all__ = ["ALPHA", "report_markdown", "study_table"]

#: Significance level of the ``*`` marks (after Holm's correction).
ALPHA = 0.05


def _same_clean(a: ConditionSummary, b: ConditionSummary) -> bool:
    """Whether two conditions have the same clean reference (same n, clean mean and sd up to rounding)."""
    close = [math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(x) and math.isnan(y))
             for x, y in ((a.clean_mean, b.clean_mean), (a.clean_sd, b.clean_sd))]  # fmt: skip
    return a.n == b.n and all(close)


def _mean_sd(mean: float, sd: float) -> str:
    return f"{mean:.3f} ± {sd:.3f}" if not math.isnan(sd) else f"{mean:.3f}"


def _format_p(p: float, p_holm: float) -> str:
    text = "<0.001" if p < 0.001 else format(p, "#.3g")
    return text + ("*" if p_holm < ALPHA else "")


def _format_number(value: float, spec: str) -> str:
    return "–" if math.isnan(value) else format(value, spec)


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def study_table(summaries: Sequence[ConditionSummary], *, model: str | None = None) -> str:
    """The study's table (Liu et al. 2019) in Markdown: Dice per region, clean and under each attack and eps.

    One row per (model, attack, eps), the model's clean row first, in the order of ``summaries``. Columns:

    - ``Model`` (only when ``model`` is ``None``), ``Attack``, ``eps`` (z-scored intensity units), ``n`` (subjects);
    - ``Dice <region>``: mean ± sample sd (3 decimals) over the ``n`` subjects;
    - ``% red. <region>``: ``100 (clean - attacked) / clean`` mean Dice of the same subjects (1 decimal);
    - ``p <region>``: two-sided Wilcoxon signed-rank p-value vs. clean, paired by subject, ``<0.001`` or 3
      significant digits, with ``*`` when the Holm-adjusted p (within the model) is below 0.05;
    - ``r <region>``: matched-pairs rank-biserial correlation (2 decimals), negative when Dice drops.

    The clean row shows clean Dice; it is over the subjects of the model's largest condition, and a note says so
    when conditions of a model cover different subjects (each is then compared with its own subjects' clean Dice).
    A caption line under the table says the above.

    Args:
        summaries: output of :func:`summarise`.
        model: one model to show (its column is then left out), or ``None`` for all.

    Returns:
        The Markdown table followed by its caption, ending with a newline.

    Raises:
        TypeError: if ``summaries`` holds something other than :class:`ConditionSummary`.
        ValueError: if ``summaries`` is empty or ``model`` is not one of its models.
    """
    summaries = check_summaries(summaries)
    models = list(dict.fromkeys(s.model for s in summaries))
    if model is not None:
        check_choice("model", model, models)
        models = [model]
    regions = list(dict.fromkeys(s.region for s in summaries))
    by_key = {(s.model, s.attack, s.eps, s.region): s for s in summaries}

    header = (["Model"] if model is None else []) + ["Attack", "eps", "n"]
    header += [f"Dice {r}" for r in regions] + [f"% red. {r}" for r in regions]
    header += [f"p {r}" for r in regions] + [f"r {r}" for r in regions]
    lines = [_markdown_row(header), _markdown_row(["---"] * len(header))]
    notes, n_values, family_sizes = [], set(), {}
    for name in models:
        mine = [s for s in summaries if s.model == name]
        family_sizes[name] = len(mine)
        conditions = list(dict.fromkeys((s.attack, s.eps) for s in mine))
        prefix = [name] if model is None else []
        # clean row: over the subjects of the largest condition; flag when conditions differ in their subjects
        reference = {}
        for region in regions:
            candidates = [s for s in mine if s.region == region]
            reference[region] = max(candidates, key=lambda s: s.n) if candidates else None
            if any(not _same_clean(s, candidates[0]) for s in candidates):
                notes.append(
                    f"Conditions of model {name!r} cover different subjects: the clean row is over the "
                    f"{reference[region].n} subjects of its largest condition, and each condition is compared "
                    f"with the clean Dice of its own subjects."
                )
        shown = [s for s in reference.values() if s is not None]
        cells = prefix + [CLEAN, "0", str(max(s.n for s in shown))]
        cells += [_mean_sd(reference[r].clean_mean, reference[r].clean_sd) if reference[r] else "" for r in regions]
        cells += ["–"] * (3 * len(regions))
        lines.append(_markdown_row(cells))
        for attack, eps in conditions:
            row = [by_key.get((name, attack, eps, r)) for r in regions]
            present = [s for s in row if s is not None]
            n_values.update(s.n for s in present)
            cells = prefix + [attack, f"{eps:g}", str(present[0].n)]
            cells += [_mean_sd(s.mean, s.sd) if s else "" for s in row]
            cells += [_format_number(s.reduction_percent, ".1f") if s else "" for s in row]
            cells += [_format_p(s.comparison.p_value, s.p_holm) if s else "" for s in row]
            cells += [_format_number(s.comparison.effect_size, ".2f") if s else "" for s in row]
            lines.append(_markdown_row(cells))

    n_text = str(min(n_values)) if len(n_values) == 1 else f"{min(n_values)} to {max(n_values)}"
    families = "; ".join(f"{k}: {m}" for k, m in family_sizes.items())
    caption = (
        f"Dice as mean ± sample sd over n = {n_text} subjects; eps in z-scored intensity units (L-inf). "
        f"% red. = 100 (clean − attacked) / clean mean Dice of the same subjects. "
        f"p = two-sided Wilcoxon signed-rank test of attacked vs. clean Dice, paired by subject; "
        f"\\* = p < {ALPHA:g} after Holm's correction within each model (tests per model: {families}). "
        f"r = matched-pairs rank-biserial correlation (−1: every subject's Dice drops)."
    )
    smallest = min(n_values)
    if min_attainable_p(smallest) >= ALPHA:
        caption += (
            f" With n = {smallest} the smallest attainable two-sided p is {min_attainable_p(smallest):g}: "
            f"no significance at {ALPHA:g} is possible for such conditions."
        )
    return "\n".join(lines) + "\n\n" + caption + "\n" + "".join(f"\n{note}\n" for note in dict.fromkeys(notes))


def _one_line(text: str) -> str:
    """``text`` on one line, with Markdown's link brackets escaped (for headings and image captions)."""
    return " ".join(text.split()).replace("[", "\\[").replace("]", "\\]")


def report_markdown(
    summaries: Sequence[ConditionSummary],
    *,
    title: str,
    n_subjects: int,
    curves: Iterable[tuple[str, str]] = (),
    overlays: Iterable[tuple[str, str]] = (),
    notes: Iterable[str] = (),
    sections: Iterable[str] = (),
    lead_sections: Iterable[str] = (),
) -> str:
    """The text of ``report.md``: title, what was compared, each model's :func:`study_table`, curves, examples, notes.

    Args:
        summaries: output of :func:`~art_seg.evaluation.summary.summarise`.
        title: the report's title (put on one line).
        n_subjects: number of distinct subjects in the rows (for the opening sentence).
        curves: ``(region, link)`` pairs of the robustness-curve images, links relative to ``report.md``.
        overlays: ``(caption, link)`` pairs of example images, shown under "Examples" with their caption.
        notes: Markdown paragraphs put at the end under "Notes".
        sections: Markdown sections (each with its ``##`` heading) put after the study tables, before the curves.
        lead_sections: Markdown sections put first, right after the opening paragraph (the robust Dice table).

    Returns:
        The Markdown text, ending with one newline.
    """
    summaries = check_summaries(summaries)
    curves, overlays, notes = list(curves), list(overlays), list(notes)
    models = list(dict.fromkeys(s.model for s in summaries))
    regions = list(dict.fromkeys(s.region for s in summaries))
    attacks = list(dict.fromkeys(s.attack for s in summaries))
    eps_grid = sorted({s.eps for s in summaries})
    lines = [
        f"# {_one_line(title)}",
        "",
        f"Dice of {len(models)} model(s) ({', '.join(models)}) on {n_subjects} subject(s), for the region(s) "
        f"{', '.join(regions)}: on clean images and under the attack(s) {', '.join(attacks)} at eps "
        f"{', '.join(f'{e:g}' for e in eps_grid)} (L-inf budget in z-scored intensity units). Each condition is "
        f"compared with the clean Dice of the same subjects by a two-sided Wilcoxon signed-rank test; p-values are "
        f"Holm-corrected within each model. All numbers are in [`summary.csv`](summary.csv).",
    ]
    for section in lead_sections:
        lines += ["", section.strip("\n")]
    for model in models:
        lines += ["", f"## {_one_line(model)}", "", study_table(summaries, model=model).rstrip("\n")]
    for section in sections:
        lines += ["", section.strip("\n")]
    lines += ["", "## Dice against eps", ""]
    lines += [f"![Dice {_one_line(region)} against eps]({link})\n" for region, link in curves]
    if overlays:
        lines += ["## Examples", ""]
        lines += [f"![{_one_line(caption)}]({link})\n\n{caption}\n" for caption, link in overlays]
    if notes:
        lines += ["## Notes", ""]
        lines += [note.strip() + "\n" for note in notes]
    return "\n".join(lines).rstrip("\n") + "\n"
