"""The robustness report folder: ``summary.csv``, a robustness curve per region and ``report.md``.

:func:`write_report` puts together the parts of the other modules: :func:`~art_seg.evaluation.summary.summarise`
(statistics, CSV), :func:`~art_seg.evaluation.markdown.report_markdown` (the study-style tables and text) and
:func:`~art_seg.evaluation.plots.robustness_curves_figure` (matplotlib, imported when the curves are drawn). All
files of a report are written together: none replaces its predecessor until every one is complete.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from art_seg._checks import check_type
from art_seg._files import atomic_write_files, writable_folder
from art_seg.evaluation.markdown import report_markdown
from art_seg.evaluation.metric_report import metric_report_parts
from art_seg.evaluation.plots import figure_png, robustness_curves_figure
from art_seg.evaluation.robust_dice import robust_dice_section, robust_summaries
from art_seg.evaluation.summary import summarise, summary_csv

__all__ = ["write_report"]


def _curve_file_name(region: str, taken: set[str]) -> str:
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

    Files:

    - ``summary.csv``: one line per :class:`~art_seg.evaluation.summary.ConditionSummary` with every numeric
      field (see :func:`~art_seg.evaluation.summary.summary_csv`), then the robust Dice: one line per model,
      eps and region with attack ``"worst case"`` (:func:`~art_seg.evaluation.robust_dice.robust_summaries`).
    - ``robustness_curve_<region>.png`` for every region (see :func:`~art_seg.evaluation.plots.plot_robustness_curves`;
      characters other than letters, digits, ``.``, ``_`` and ``-`` in the region name become ``_``).
    - ``metrics_summary.csv`` and ``lesion_effects.csv`` when the rows hold metrics beside Dice and lesion
      records (:func:`~art_seg.evaluation.metric_report.metric_report_parts`).
    - ``report.md``: title, what was compared, the robust Dice table first
      (:func:`~art_seg.evaluation.robust_dice.robust_dice_section`), the study table of each model
      (:func:`~art_seg.evaluation.markdown.study_table`), every metric side by side and the lesions removed and
      created by the attacks (when recorded), the curves, the ``overlays`` as images and the ``notes`` as
      closing paragraphs; links are relative to ``output_dir``.

    Everything is computed first; then the files are written together
    (:func:`~art_seg._files.atomic_write_files`): each to a temporary file, and only when all are
    complete renamed onto their names, ``report.md`` last. So a failure at any point (bad rows, a plotting
    error, a full disk, a read-only folder) leaves an earlier report in the folder as it was, complete.

    Args:
        rows: evaluation rows (see :func:`~art_seg.evaluation.summary.summarise`).
        output_dir: folder for the report; created if missing.
        title: the report's title.
        regions: regions to report (default: the first row's, see :func:`~art_seg.evaluation.summary.summarise`).
        overlays: ``(caption, path)`` pairs of existing images (e.g. from
            :func:`~art_seg.evaluation.plots.plot_overlay`) to embed.
        notes: free paragraphs (Markdown) put at the end under "Notes".

    Returns:
        Path of ``report.md``.

    Raises:
        ValueError: if ``output_dir`` cannot be created or written (checked before any other work), the rows are
            invalid (see :func:`~art_seg.evaluation.summary.summarise`) or hold no attacked condition, or an
            overlay file does not exist.
        TypeError: if an argument has the wrong type.
        OSError: if a file cannot be written (``filename`` is the file's path; no file of the report changed).
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

    robust = robust_summaries(rows, regions=regions)
    files: dict[Path, bytes] = {folder / "summary.csv": summary_csv([*summaries, *robust]).encode("utf-8")}
    metric_files, sections = metric_report_parts(rows, regions=regions)
    files.update({folder / name: text.encode("utf-8") for name, text in metric_files.items()})
    curves = []
    taken: set[str] = set()
    for region in dict.fromkeys(s.region for s in summaries):
        path = folder / _curve_file_name(region, taken)
        files[path] = figure_png(robustness_curves_figure(summaries, region=region))
        curves.append((region, _link(path, folder)))
    text = report_markdown(
        summaries,
        title=title,
        n_subjects=len({row["subject"] for row in rows}),
        curves=curves,
        overlays=[(caption, _link(Path(path), folder)) for caption, path in overlays],
        notes=notes,
        sections=sections,
        lead_sections=[robust_dice_section(robust, list(dict.fromkeys(s.attack for s in summaries)))],
    )
    report = folder / "report.md"
    files[report] = text.encode("utf-8")
    atomic_write_files(files)  # in order: report.md last
    return report
