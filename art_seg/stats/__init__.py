"""Paired statistics for per-subject scores (e.g. Dice clean vs. under attack), numpy in, floats out.

Conventions: pairs are ``(before[i], after[i])`` for subject ``i``, differences ``d = after - before`` (a drop in
Dice under attack is negative); the test is scipy's Wilcoxon signed-rank test, unchanged; the effect size is the
matched-pairs rank-biserial correlation (positive when ``after > before``); the interval is the exact
order-statistic (binomial) interval for the median of ``d``; several comparisons are corrected with Holm's
method. With ``n`` subjects the smallest two-sided exact p-value is ``2 / 2**n``: ``n >= 6`` for ``p < 0.05``.

Example:
    >>> from art_seg.stats import holm, paired_wilcoxon
    >>> result = paired_wilcoxon([0.9, 0.8, 0.85, 0.7, 0.95, 0.6], [0.5, 0.7, 0.3, 0.65, 0.6, 0.4])
    >>> round(result.p_value, 5), result.effect_size
    (0.03125, -1.0)
"""

from __future__ import annotations

from art_seg.stats.paired import PairedComparison, holm, min_attainable_p, paired_wilcoxon, rank_biserial

__all__ = ["PairedComparison", "holm", "min_attainable_p", "paired_wilcoxon", "rank_biserial"]
