"""Robustness reports: Dice per region under each attack and eps, compared with clean images (Liu et al. 2019).

The input is the rows of a robustness evaluation (:mod:`art_seg.evaluation.robustness` writes them, one JSON
object a line)::

    {"model": "undefended", "attack": "i-FGSM", "eps": 0.3, "subject": "BraTS20_Training_003",
     "dice": {"WT": 0.71, "TC": 0.52, "ET": 0.49}, "hd95": {...}, "seconds": 1.9}

with ``"attack": "clean"`` and ``"eps": 0.0`` for the clean image of a subject. Dice is in ``[0, 1]``; ``eps`` is
the L-inf budget in z-scored intensity units. Other keys (``"hd95"``, ``"seconds"``) are ignored here.

For every model, attack, eps and region, :func:`summarise` pairs each subject's Dice under attack with its clean
Dice and runs a two-sided Wilcoxon signed-rank test (:func:`art_seg.stats.paired_wilcoxon`, ``before`` = clean,
``after`` = attacked, so a drop in Dice gives a negative effect size); p-values are Holm-corrected within each
model over all its (attack, eps, region) comparisons. :func:`study_table` prints the result as a Markdown table in
the style of the study, :func:`plot_robustness_curves` draws Dice against eps, :func:`plot_overlay` shows one
subject's segmentations and perturbation, and :func:`write_report` writes all of it to a folder.

Plots use matplotlib's object API (``Figure`` with an Agg canvas): no pyplot, no global backend change, so an
interactive session's backend is left alone. matplotlib is imported only when plotting.

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
import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from art_seg._checks import check_choice, check_finite, check_number, check_type
from art_seg.data.labels import CLASS_NAMES
from art_seg.evaluation._files import atomic_savefig, atomic_write_text, writable_folder
from art_seg.stats import PairedComparison, holm, min_attainable_p, paired_wilcoxon

__all__ = [
    "CLEAN",
    "ConditionSummary",
    "plot_overlay",
    "plot_robustness_curves",
    "study_table",
    "summarise",
    "write_report",
]

#: The ``"attack"`` of a clean (unattacked) row.
CLEAN = "clean"
REQUIRED_KEYS = ("model", "attack", "eps", "subject", "dice")
ALPHA = 0.05
EPS_LABEL = "eps (z-scored intensity)"


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
            of this model.
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


# ----------------------------------------------------------------------------------------------- summarise


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


def _check_row(index: int, row: Any, regions: tuple[str, ...]) -> tuple[str, str, float, str, dict[str, float]]:
    """``(model, attack, eps, subject, {region: dice})`` of a checked row."""
    if not isinstance(row, Mapping):
        raise TypeError(f"rows[{index}] must be a mapping (a dict), got {type(row).__name__} ({row!r})")
    missing = [key for key in REQUIRED_KEYS if key not in row]
    if missing:
        raise ValueError(f"{_where(index, row)} lacks key(s) {missing}; a row needs {list(REQUIRED_KEYS)}")
    where = _where(index, row)
    for key in ("model", "attack", "subject"):
        check_type(f"{where} {key!r}", row[key], str)
    eps = row["eps"]
    check_number(f"{where} 'eps'", eps, low=0)
    if row["attack"] == CLEAN and eps != 0:
        raise ValueError(f"{where}: a clean row must have eps 0.0, got {eps!r}")
    dice = row["dice"]
    if not isinstance(dice, Mapping):
        raise TypeError(f"{where} 'dice' must be a mapping region -> Dice, got {type(dice).__name__} ({dice!r})")
    absent = [region for region in regions if region not in dice]
    if absent:
        raise ValueError(f"{where} has no Dice for region(s) {absent}; its 'dice' has {list(dice)}")
    scores = {}
    for region in regions:
        check_number(f"{where} dice[{region!r}]", dice[region], low=0, high=1)
        scores[region] = float(dice[region])
    return row["model"], row["attack"], float(eps), row["subject"], scores


def summarise(rows: Iterable[Mapping[str, Any]], *, regions: Sequence[str] | None = None) -> list[ConditionSummary]:
    """Per model, attack, eps and region: Dice under attack vs. clean Dice of the same subjects.

    Args:
        rows: evaluation rows (see the module docstring), in any order: one clean row (``"attack": "clean"``,
            ``"eps": 0.0``) per (model, subject) and at most one row per (model, attack, eps, subject). Dice in
            ``[0, 1]``, eps in z-scored intensity units (``>= 0``).
        regions: regions to summarise, in output order; default the keys of the first row's ``"dice"``, in their
            order. Every row must have a Dice for each.

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
        model, attack, eps, subject, scores = _check_row(index, row, regions)
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
        summaries += [ConditionSummary(**fields, p_holm=float(p)) for fields, p in zip(pending, adjusted)]
    return summaries


# ----------------------------------------------------------------------------------------------- study table


def _check_summaries(summaries: Any) -> list[ConditionSummary]:
    if isinstance(summaries, ConditionSummary) or not isinstance(summaries, Iterable):
        raise TypeError(f"summaries must be a sequence of ConditionSummary, got {type(summaries).__name__}")
    summaries = list(summaries)
    for index, summary in enumerate(summaries):
        check_type(f"summaries[{index}]", summary, ConditionSummary)
    if not summaries:
        raise ValueError("summaries is empty: summarise() found no attacked condition")
    return summaries


def _same_clean(a: ConditionSummary, b: ConditionSummary) -> bool:
    """Whether two conditions have the same clean reference (same n, clean mean and sd up to rounding)."""
    close = [math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(x) and math.isnan(y))
             for x, y in ((a.clean_mean, b.clean_mean), (a.clean_sd, b.clean_sd))]  # fmt: skip
    return a.n == b.n and all(close)


def _unique(values: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


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
    summaries = _check_summaries(summaries)
    models = _unique(s.model for s in summaries)
    if model is not None:
        check_choice("model", model, models)
        models = [model]
    regions = _unique(s.region for s in summaries)
    by_key = {(s.model, s.attack, s.eps, s.region): s for s in summaries}

    header = (["Model"] if model is None else []) + ["Attack", "eps", "n"]
    header += [f"Dice {r}" for r in regions] + [f"% red. {r}" for r in regions]
    header += [f"p {r}" for r in regions] + [f"r {r}" for r in regions]
    lines = [_markdown_row(header), _markdown_row(["---"] * len(header))]
    notes, n_values, family_sizes = [], set(), {}
    for name in models:
        mine = [s for s in summaries if s.model == name]
        family_sizes[name] = len(mine)
        conditions = _unique((s.attack, s.eps) for s in mine)
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
    return "\n".join(lines) + "\n\n" + caption + "\n" + "".join(f"\n{note}\n" for note in _unique(notes))


# ----------------------------------------------------------------------------------------------- plots


def _new_figure(**kwargs: Any) -> Any:
    """A matplotlib ``Figure`` on an Agg canvas (no pyplot, the session's backend untouched)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("art_seg's report plots need matplotlib: pip install matplotlib") from error
    figure = Figure(**kwargs)
    FigureCanvasAgg(figure)
    return figure


def plot_robustness_curves(
    summaries: Sequence[ConditionSummary], path: str | os.PathLike[str], *, region: str = "WT"
) -> Path:
    """Mean Dice (± sd band) of ``region`` against eps, one line per attack, one subplot per model.

    Each attack's curve starts at eps = 0 with the clean mean Dice (of the subjects of its smallest eps), so all
    curves of a model share their first point. Subplots share the y axis, 0 to 1; an attack has the same colour
    in every subplot.

    Args:
        summaries: output of :func:`summarise`.
        path: PNG file to write (atomically: temporary file in the same folder, then ``os.replace``).
        region: region to plot, one of the summaries' regions.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        TypeError: if ``summaries`` holds something other than :class:`ConditionSummary`.
        ValueError: if ``summaries`` is empty or ``region`` is not one of its regions.
        OSError: if ``path`` cannot be written.
    """
    summaries = _check_summaries(summaries)
    check_type("region", region, str)
    check_choice("region", region, _unique(s.region for s in summaries))
    selected = [s for s in summaries if s.region == region]
    models = _unique(s.model for s in selected)
    colours = {attack: f"C{i % 10}" for i, attack in enumerate(_unique(s.attack for s in selected))}

    figure = _new_figure(figsize=(1.0 + 4.0 * len(models), 3.8), layout="constrained")
    axes = figure.subplots(1, len(models), sharey=True, squeeze=False)[0]
    for ax, model in zip(axes, models):
        for attack in _unique(s.attack for s in selected if s.model == model):
            curve = sorted((s for s in selected if s.model == model and s.attack == attack), key=lambda s: s.eps)
            eps = np.array([0.0] + [s.eps for s in curve])
            mean = np.array([curve[0].clean_mean] + [s.mean for s in curve])
            sd = np.array([curve[0].clean_sd] + [s.sd for s in curve])
            ax.plot(eps, mean, marker="o", markersize=3.5, color=colours[attack], label=attack)
            ax.fill_between(eps, mean - sd, mean + sd, color=colours[attack], alpha=0.15, linewidth=0)
        ax.set_title(model)
        ax.set_xlabel(EPS_LABEL)
        ax.set_ylim(0.0, 1.0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="lower left")
    axes[0].set_ylabel(f"Dice {region} (mean ± sd)")
    return atomic_savefig(figure, path, format="png", dpi=100)


def _as_array(name: str, value: Any, ndim: int, what: str) -> np.ndarray:
    array = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {what}, got shape {array.shape}")
    return array


def _label_map(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    labels = _as_array(name, value, 3, "a (D, H, W) label map of class indices")
    if labels.shape != shape:
        raise ValueError(f"{name} must have the image's spatial shape {shape}, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class indices, got dtype {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise ValueError(f"{name} must hold class indices >= 0, got minimum {labels.min()}")
    return labels


def _display_range(plane: np.ndarray) -> tuple[float, float]:
    low, high = (float(v) for v in np.percentile(plane, [0.5, 99.5]))
    if high <= low:
        low, high = float(plane.min()), float(plane.max())
    if high <= low:
        low, high = low - 0.5, high + 0.5
    return low, high


def plot_overlay(
    image: Any,
    truth: Any,
    clean_prediction: Any,
    adversarial_prediction: Any,
    perturbation: Any,
    path: str | os.PathLike[str],
    *,
    channel: int = -1,
    slice_index: int | None = None,
    magnify: float | None = None,
    title: str | None = None,
    class_names: Sequence[str] | None = None,
) -> Path:
    """One subject on one axial slice: image, ground truth, clean and adversarial prediction, perturbation.

    Five panels in a row, all the plane ``[:, :, slice_index]`` (``D`` across, ``H`` up, origin lower left):
    the image channel in grey (0.5 to 99.5 percentile of the slice), then the ground truth, the clean prediction
    and the adversarial prediction overlaid on it (a colour per class, background transparent), then the
    perturbation of that channel times ``magnify`` on a diverging colour map centred on 0 whose ends are
    ``± (display range of the image)``; the factor is in the panel's title.

    Args:
        image: ``(C, D, H, W)`` float, z-scored intensities (numpy array or CPU tensor).
        truth: ``(D, H, W)`` int class indices ``0 .. K-1``, 0 = background.
        clean_prediction: ``(D, H, W)`` int, the prediction on ``image``.
        adversarial_prediction: ``(D, H, W)`` int, the prediction on ``image + perturbation``.
        perturbation: ``(C, D, H, W)`` float, adversarial minus clean image, same units as ``image``.
        path: PNG file to write (atomically).
        channel: image channel to show (negative counts from the end; default the last, FLAIR in BraTS order).
        slice_index: index along the last axis; default the slice with the most foreground in ``truth`` (the
            middle one of equally good slices), or the middle slice when ``truth`` has none.
        magnify: factor for the perturbation, ``> 0``; default such that the largest ``|perturbation|`` on the
            slice (else in the channel) equals the image's display range (1.0 when the perturbation is zero).
        title: figure title, or ``None``.
        class_names: names of classes ``0 .. K-1`` for the legend (at least as many as the largest class + 1);
            default :data:`art_seg.data.labels.CLASS_NAMES` when the labels fit them, else ``"class <k>"``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: if a shape, dtype or value does not fit (the message names the argument and its shape), or
            ``channel``, ``slice_index`` or ``magnify`` is out of range.
        TypeError: if an option has the wrong type.
    """
    image = _as_array("image", image, 4, "(C, D, H, W)")
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"image must be a float array, got dtype {image.dtype}")
    check_finite("image", image)
    spatial = image.shape[1:]
    truth = _label_map("truth", truth, spatial)
    clean_prediction = _label_map("clean_prediction", clean_prediction, spatial)
    adversarial_prediction = _label_map("adversarial_prediction", adversarial_prediction, spatial)
    perturbation = _as_array("perturbation", perturbation, 4, "(C, D, H, W)")
    if perturbation.shape != image.shape:
        raise ValueError(f"perturbation must have the image's shape {image.shape}, got shape {perturbation.shape}")
    if not np.issubdtype(perturbation.dtype, np.floating):
        raise ValueError(f"perturbation must be a float array, got dtype {perturbation.dtype}")
    check_finite("perturbation", perturbation)
    channels = image.shape[0]
    check_number("channel", channel, low=-channels, high=channels - 1, integer=True)
    if slice_index is None:
        foreground = (truth > 0).sum(axis=(0, 1))
        best = np.flatnonzero(foreground == foreground.max())  # ties: the middle one of the best slices
        slice_index = int(best[len(best) // 2]) if foreground.max() > 0 else spatial[2] // 2
    check_number("slice_index", slice_index, low=0, high=spatial[2] - 1, integer=True)
    if magnify is not None:
        check_number("magnify", magnify, low=0, low_inclusive=False)
    if title is not None:
        check_type("title", title, str)
    nb_classes = 1 + int(max(truth.max(), clean_prediction.max(), adversarial_prediction.max()))
    if class_names is None:
        class_names = CLASS_NAMES if nb_classes <= len(CLASS_NAMES) else [f"class {k}" for k in range(nb_classes)]
    elif isinstance(class_names, str) or not isinstance(class_names, Sequence):
        raise TypeError(f"class_names must be a sequence of str, got {type(class_names).__name__} ({class_names!r})")
    class_names = list(class_names)
    for name in class_names:
        check_type("class_names item", name, str)
    if len(class_names) < nb_classes:
        raise ValueError(f"class_names must name classes 0..{nb_classes - 1}, got {len(class_names)} name(s)")

    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    plane = image[channel, :, :, slice_index].astype(np.float64)
    low, high = _display_range(plane)
    width = high - low
    shift = perturbation[channel, :, :, slice_index].astype(np.float64)
    if magnify is None:
        largest = float(np.abs(shift).max()) or float(np.abs(perturbation[channel]).max())
        magnify = width / largest if largest > 0 else 1.0
    palette = [(0, 0, 0, 0)] + [(*_class_colour(k), 0.55) for k in range(1, len(class_names))]
    class_map = ListedColormap(palette)

    figure = _new_figure(figsize=(15.0, 3.9), layout="constrained")
    axes = figure.subplots(1, 5)
    panels = [
        ("image", None),
        ("ground truth", truth),
        ("clean prediction", clean_prediction),
        ("adversarial prediction", adversarial_prediction),
    ]
    show = {"origin": "lower", "interpolation": "nearest"}
    for ax, (name, labels) in zip(axes, panels):
        ax.imshow(plane.T, cmap="gray", vmin=low, vmax=high, **show)
        if labels is not None:
            ax.imshow(labels[:, :, slice_index].T, cmap=class_map, vmin=-0.5, vmax=len(class_names) - 0.5, **show)
        ax.set_title(name if labels is not None else f"image, channel {channel % channels}", fontsize="medium")
    shown = axes[4].imshow((magnify * shift).T, cmap="RdBu_r", vmin=-width, vmax=width, **show)
    axes[4].set_title(f"perturbation × {magnify:.3g}", fontsize="medium")
    figure.colorbar(shown, ax=axes[4], shrink=0.8, label="z-scored intensity × factor")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [Patch(color=palette[k], label=class_names[k]) for k in range(1, len(class_names))]
    if handles:
        figure.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize="small", frameon=False)
    figure.suptitle((title + " — " if title else "") + f"slice {slice_index} of {spatial[2]} (last axis)")
    return atomic_savefig(figure, path, format="png", dpi=100)


def _class_colour(k: int) -> tuple[float, float, float]:
    """Colour of class ``k >= 1``: red, green, yellow for the BraTS classes 1-3, then tab10."""
    fixed = {1: (0.90, 0.10, 0.10), 2: (0.10, 0.75, 0.20), 3: (1.00, 0.85, 0.00)}
    if k in fixed:
        return fixed[k]
    from matplotlib import colormaps

    return tuple(colormaps["tab10"]((k - 4) % 10)[:3])


# ----------------------------------------------------------------------------------------------- report


SUMMARY_COLUMNS = (
    "model", "attack", "eps", "region", "n", "mean", "sd", "clean_mean", "clean_sd", "reduction_percent",
    "statistic", "p_value", "p_holm", "effect_size", "median_difference", "ci_low", "ci_high", "confidence",
    "n_nonzero", "method", "note",
)  # fmt: skip


def _summary_csv(summaries: Sequence[ConditionSummary]) -> str:
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


def _file_name(region: str, taken: set[str]) -> str:
    stem = "robustness_curve_" + (re.sub(r"[^A-Za-z0-9._-]+", "_", region) or "region")
    name, k = stem + ".png", 2
    while name in taken:
        name, k = f"{stem}_{k}.png", k + 1
    taken.add(name)
    return name


def _link(target: Path, folder: Path) -> str:
    try:
        relative = Path(os.path.relpath(target.resolve(), folder.resolve())).as_posix()
    except ValueError:  # another drive (Windows): no relative path exists
        return target.resolve().as_uri()
    return urllib.parse.quote(relative, safe="/._-~")


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace("[", "\\[").replace("]", "\\]")


def write_report(
    rows: Iterable[Mapping[str, Any]],
    output_dir: str | os.PathLike[str],
    *,
    title: str = "art_seg robustness report",
    regions: Sequence[str] | None = None,
    overlays: Sequence[tuple[str, str | os.PathLike[str]]] = (),
    notes: Sequence[str] = (),
) -> Path:
    """Write a robustness report of evaluation ``rows`` into ``output_dir``.

    Files (each written atomically: temporary file in ``output_dir``, then ``os.replace``):

    - ``summary.csv``: one line per :class:`ConditionSummary` with every numeric field (mean, sd, clean_mean,
      clean_sd, reduction_percent, statistic, p_value, p_holm, effect_size, median_difference, ci_low, ci_high,
      confidence, n_nonzero) and method and note; floats at full precision, ``nan`` / ``inf`` as such.
    - ``robustness_curve_<region>.png`` for every region (see :func:`plot_robustness_curves`; characters other
      than letters, digits, ``.``, ``_`` and ``-`` in the region name become ``_``).
    - ``report.md``: title, what was compared, the study table of each model (:func:`study_table`), the curves,
      the ``overlays`` as images and the ``notes`` as closing paragraphs; links are relative to ``output_dir``.

    ``report.md`` is written last, and a ``report.md`` already in the folder is removed before the first file is
    written (after the rows passed their checks), so its presence means the report is complete.

    Args:
        rows: evaluation rows (see :func:`summarise`).
        output_dir: folder for the report; created if missing.
        title: the report's title.
        regions: regions to report (default: the first row's, see :func:`summarise`).
        overlays: ``(caption, path)`` pairs of existing images (e.g. from :func:`plot_overlay`) to embed.
        notes: free paragraphs (Markdown) put at the end under "Notes".

    Returns:
        Path of ``report.md``.

    Raises:
        ValueError: if ``output_dir`` cannot be created or written (checked before any other work), the rows are
            invalid (see :func:`summarise`) or hold no attacked condition, or an overlay file does not exist.
        TypeError: if an argument has the wrong type.
    """
    check_type("title", title, str)
    if isinstance(notes, str) or not isinstance(notes, Sequence):
        raise TypeError(f"notes must be a sequence of str paragraphs, got {type(notes).__name__} ({notes!r})")
    for note in notes:
        check_type("notes item", note, str)
    if not isinstance(overlays, Sequence):
        raise TypeError(f"overlays must be a sequence of (caption, path) pairs, got {type(overlays).__name__}")
    for item in overlays:
        if not (isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 2):
            raise TypeError(f"overlays items must be (caption, path) pairs, got {item!r}")
        check_type("overlay caption", item[0], str)
        check_type("overlay path", item[1], (str, os.PathLike))
    folder = writable_folder(output_dir)
    missing = [str(path) for _, path in overlays if not Path(path).is_file()]
    if missing:
        raise ValueError(f"overlays name file(s) that do not exist: {missing}")
    rows = list(rows) if isinstance(rows, Iterable) and not isinstance(rows, (Mapping, str, bytes)) else rows
    summaries = summarise(rows, regions=regions)
    if not summaries:
        raise ValueError("rows hold only clean rows: there is no attacked condition to report")
    report = folder / "report.md"
    report.unlink(missing_ok=True)  # from here on, no report.md until this one is complete
    atomic_write_text(folder / "summary.csv", _summary_csv(summaries))
    regions = _unique(s.region for s in summaries)
    taken: set[str] = set()
    curves = {region: plot_robustness_curves(summaries, folder / _file_name(region, taken), region=region)
              for region in regions}  # fmt: skip

    models = _unique(s.model for s in summaries)
    attacks = _unique(s.attack for s in summaries)
    eps_grid = sorted({s.eps for s in summaries})
    subjects = {row["subject"] for row in rows}
    lines = [
        f"# {_one_line(title)}",
        "",
        f"Dice of {len(models)} model(s) ({', '.join(models)}) on {len(subjects)} subject(s), for the region(s) "
        f"{', '.join(regions)}: on clean images and under the attack(s) {', '.join(attacks)} at eps "
        f"{', '.join(f'{e:g}' for e in eps_grid)} (L-inf budget in z-scored intensity units). Each condition is "
        f"compared with the clean Dice of the same subjects by a two-sided Wilcoxon signed-rank test; p-values are "
        f"Holm-corrected within each model. All numbers are in [`summary.csv`](summary.csv).",
    ]
    for model in models:
        lines += ["", f"## {_one_line(model)}", "", study_table(summaries, model=model).rstrip("\n")]
    lines += ["", "## Dice against eps", ""]
    lines += [f"![Dice {_one_line(r)} against eps]({_link(path, folder)})\n" for r, path in curves.items()]
    if overlays:
        lines += ["## Examples", ""]
        lines += [f"![{_one_line(caption)}]({_link(Path(path), folder)})\n\n{caption}\n" for caption, path in overlays]
    if notes:
        lines += ["## Notes", ""]
        lines += [note.strip() + "\n" for note in notes]
    atomic_write_text(report, "\n".join(lines).rstrip("\n") + "\n")
    return report
