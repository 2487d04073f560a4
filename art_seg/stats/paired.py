"""Paired comparisons of per-subject scores: Wilcoxon signed-rank test, matched-pairs rank-biserial effect size,
a distribution-free confidence interval for the median difference, and Holm's correction.

Sign convention everywhere: the difference of a pair is ``d = after - before``. With ``before`` the clean Dice
of each subject and ``after`` its Dice under attack, a drop gives ``d < 0``, a negative effect size and a
negative median difference; ``alternative="less"`` tests for a drop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from art_seg._checks import check_choice, check_finite, check_number

__all__ = ["PairedComparison", "holm", "min_attainable_p", "paired_wilcoxon", "rank_biserial"]

ALTERNATIVES = ("two-sided", "less", "greater")
ZERO_METHODS = ("wilcox", "pratt", "zsplit")
METHODS = ("auto", "exact", "asymptotic")

Scores = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class PairedComparison:
    """Result of :func:`paired_wilcoxon` (differences ``d = after - before``, one per subject).

    Attributes:
        n: number of pairs.
        n_nonzero: number of pairs with ``d != 0``.
        statistic: ``scipy.stats.wilcoxon``'s statistic (``min(W+, W-)`` for ``"two-sided"``, ``W+`` otherwise);
            NaN when all differences are zero (no test run).
        p_value: ``scipy.stats.wilcoxon``'s p-value; 1.0 when all differences are zero.
        effect_size: matched-pairs rank-biserial correlation ``(W+ - W-) / (W+ + W-)`` in ``[-1, 1]``, positive
            when ``after`` tends to exceed ``before`` (see :func:`rank_biserial`).
        median_difference: median of ``d`` over all pairs (zeros included).
        ci_low: lower end of the confidence interval for the median of ``d`` (``-inf`` when one-sided
            ``"less"`` or when there are too few pairs).
        ci_high: upper end (``inf`` when one-sided ``"greater"`` or too few pairs).
        confidence: confidence level of the interval, e.g. 0.95.
        alternative: ``"two-sided"``, ``"less"`` (``after`` below ``before``) or ``"greater"``.
        method: p-value method scipy used: ``"exact"``, ``"asymptotic"``, ``"permutation"``, or ``"none"`` when
            all differences are zero.
        note: empty, or why the result needs care (all differences zero, too few pairs for significance at
            ``1 - confidence``, an unbounded interval), clauses joined by ``"; "``.
    """

    n: int
    n_nonzero: int
    statistic: float
    p_value: float
    effect_size: float
    median_difference: float
    ci_low: float
    ci_high: float
    confidence: float
    alternative: str
    method: str
    note: str = ""


def _as_scores(name: str, values: Scores) -> np.ndarray:
    scores = np.asarray(values, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one score per subject), got shape {scores.shape}")
    check_finite(name, scores)
    return scores


def _paired_scores(before: Scores, after: Scores, min_pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """Checked 1-D float64 ``before`` and ``after`` of the same length, at least ``min_pairs``."""
    before, after = _as_scores("before", before), _as_scores("after", after)
    if before.size != after.size:
        raise ValueError(
            f"before and after must hold one score per subject each, got {before.size} and {after.size} scores"
        )
    if before.size < min_pairs:
        raise ValueError(
            f"need at least {min_pairs} pair(s) of scores, got {before.size}; with n subjects the smallest "
            f"two-sided exact Wilcoxon p-value is 2/2**n, so n >= 6 is needed for p < 0.05"
        )
    return before, after


def min_attainable_p(n: int, alternative: str = "two-sided") -> float:
    """Smallest p-value an exact Wilcoxon signed-rank test can give with ``n`` non-zero, untied differences.

    It is reached when all differences have the same sign: ``1 / 2**n`` one-sided, ``2 / 2**n`` two-sided (capped
    at 1). So ``p < 0.05`` two-sided needs ``n >= 6`` (``2/64 = 0.031``; ``n = 5`` gives ``0.0625``).

    Args:
        n: number of non-zero differences, ``>= 0``.
        alternative: ``"two-sided"``, ``"less"`` or ``"greater"``.

    Returns:
        The smallest attainable p-value.

    Example:
        >>> min_attainable_p(5), min_attainable_p(6), min_attainable_p(5, "less")
        (0.0625, 0.03125, 0.03125)
    """
    check_number("n", n, low=0, integer=True)
    check_choice("alternative", alternative, ALTERNATIVES)
    return min(1.0, (2.0 if alternative == "two-sided" else 1.0) / 2.0**n)


def _rank_biserial(differences: np.ndarray) -> float:
    nonzero = differences[differences != 0]
    if nonzero.size == 0:
        return 0.0
    ranks = stats.rankdata(np.abs(nonzero))
    return float((ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum()) / ranks.sum())


def rank_biserial(before: Scores, after: Scores) -> float:
    """Matched-pairs rank-biserial correlation (Kerby 2014) of paired scores.

    With ``d = after - before``, zero differences dropped (Wilcoxon's convention, whatever ``zero_method`` the
    test used) and the rest ranked by ``|d|`` (average ranks for ties), ``W+`` / ``W-`` are the rank sums of the
    positive / negative differences and ``r = (W+ - W-) / (W+ + W-)``: 1 when every subject improves, -1 when
    every subject gets worse, 0.0 when all differences are zero.

    Args:
        before: scores ``(n,)``, one per subject, finite.
        after: scores ``(n,)`` of the same subjects, in the same order.

    Returns:
        ``r`` in ``[-1, 1]``.

    Raises:
        ValueError: if the lengths differ, an input is not 1-D or empty, or holds NaN/Inf (named with its index).

    Example:
        >>> rank_biserial([0, 0, 0, 0], [1, -2, 3, 4])  # ranks 1, 2, 3, 4: W+ = 8, W- = 2
        0.6
    """
    before, after = _paired_scores(before, after, min_pairs=1)
    return _rank_biserial(after - before)


def _median_interval(differences: np.ndarray, confidence: float, alternative: str) -> tuple[float, float, str]:
    """Order-statistic (binomial) confidence interval for the median of ``differences``, and a note."""
    n = differences.size
    tail = (1.0 - confidence) / 2.0 if alternative == "two-sided" else 1.0 - confidence
    # [d_(k), d_(n+1-k)] misses the median with probability <= P(B <= k - 1) per side, B ~ Binomial(n, 1/2)
    k = int(np.count_nonzero(stats.binom.cdf(np.arange(n), n, 0.5) <= tail))
    ordered = np.sort(differences)
    low, high = (float(ordered[k - 1]), float(ordered[n - k])) if k else (-np.inf, np.inf)
    if alternative == "greater":
        high = np.inf
    elif alternative == "less":
        low = -np.inf
    note = ""
    if not k:
        widest = 1.0 - (2.0 if alternative == "two-sided" else 1.0) * 0.5**n
        note = (
            f"{n} pairs are too few for a {100 * confidence:g}% distribution-free interval for the median "
            f"(the widest order-statistic interval covers {100 * widest:.3g}%): the CI is unbounded"
        )
    return low, high, note


def _scipy_method(differences: np.ndarray, method: str) -> str:
    """The p-value method ``scipy.stats.wilcoxon`` picks for ``method`` (its rule as of SciPy 1.17)."""
    if method != "auto":
        return method
    n = differences.size
    if n > 50:
        return "asymptotic"
    if np.any(differences == 0) or np.unique(np.abs(differences)).size < n:
        return "permutation" if n <= 13 else "asymptotic"
    return "exact"


def paired_wilcoxon(
    before: Scores,
    after: Scores,
    *,
    alternative: str = "two-sided",
    confidence: float = 0.95,
    zero_method: str = "wilcox",
    method: str = "auto",
) -> PairedComparison:
    """Wilcoxon signed-rank test of paired scores, with effect size and a CI for the median difference.

    The test is ``scipy.stats.wilcoxon(after, before, zero_method=..., alternative=..., method=...)``: statistic
    and p-value are exactly scipy's, and so is the handling of zero differences (``zero_method``) and of tied
    ``|d|`` (average ranks; ``method="auto"`` then uses a permutation test for ``n <= 13``, the normal
    approximation with tie correction above; ``"exact"`` is conservative). When all differences are zero no test
    is run: ``p_value = 1.0``, ``effect_size = 0.0``, ``statistic = nan``, ``method = "none"`` and a note say so.

    The interval is the exact, distribution-free order-statistic (binomial) interval for the median of
    ``d = after - before``: ``[d_(k), d_(n+1-k)]`` with the largest ``k`` such that
    ``P(Binomial(n, 1/2) <= k - 1) <= (1 - confidence) / 2``; its coverage is at least ``confidence`` for any
    distribution of ``d`` (more with ties). One-sided alternatives give a one-sided interval: ``[d_(k), inf)``
    for ``"greater"``, ``(-inf, d_(n+1-k)]`` for ``"less"``, with ``P(...) <= 1 - confidence``. With too few
    pairs (``n <= 5`` at 95% two-sided) no finite interval reaches ``confidence``: the interval is
    ``(-inf, inf)`` and the note says so. The interval is for the median of ``d``, which the test's
    pseudo-median (Hodges-Lehmann) equals when ``d`` is symmetric.

    Args:
        before: scores ``(n,)``, one per subject (e.g. clean Dice), finite.
        after: scores ``(n,)`` of the same subjects in the same order (e.g. Dice under attack).
        alternative: ``"two-sided"``, ``"less"`` (``after`` tends to be below ``before``) or ``"greater"``.
        confidence: confidence level of the interval, in ``(0, 1)``; ``1 - confidence`` is also the level at
            which the note warns that significance is out of reach (see :func:`min_attainable_p`).
        zero_method: scipy's treatment of zero differences: ``"wilcox"`` (drop them), ``"pratt"`` or
            ``"zsplit"``.
        method: scipy's p-value method: ``"auto"``, ``"exact"`` or ``"asymptotic"``.

    Returns:
        A :class:`PairedComparison`.

    Raises:
        ValueError: if the lengths differ, there are fewer than 2 pairs, an input is not 1-D or holds NaN/Inf
            (the message names the argument and the index), or an option is not one of its choices.

    Example:
        >>> result = paired_wilcoxon([0.9, 0.8, 0.85, 0.7, 0.95, 0.6], [0.5, 0.7, 0.3, 0.65, 0.6, 0.4])
        >>> result.p_value, result.effect_size, round(result.median_difference, 3), result.method
        (0.03125, -1.0, -0.275, 'exact')
    """
    check_choice("alternative", alternative, ALTERNATIVES)
    check_number("confidence", confidence, low=0, high=1, low_inclusive=False, high_inclusive=False)
    check_choice("zero_method", zero_method, ZERO_METHODS)
    check_choice("method", method, METHODS)
    before, after = _paired_scores(before, after, min_pairs=2)
    differences = after - before
    n_nonzero = int(np.count_nonzero(differences))
    ci_low, ci_high, ci_note = _median_interval(differences, confidence, alternative)
    notes = []
    if n_nonzero == 0:
        statistic, p_value, used = float("nan"), 1.0, "none"
        notes.append("all differences are zero: no test was run and p_value is set to 1.0")
    else:
        result = stats.wilcoxon(after, before, zero_method=zero_method, alternative=alternative, method=method)
        statistic, p_value, used = float(result.statistic), float(result.pvalue), _scipy_method(differences, method)
        alpha = 1.0 - confidence
        if min_attainable_p(n_nonzero, alternative) > alpha:
            needed = n_nonzero
            while min_attainable_p(needed, alternative) > alpha:
                needed += 1
            notes.append(
                f"with {n_nonzero} non-zero differences an exact test cannot reach p < {alpha:g} = 1 - confidence "
                f"(smallest {alternative} p-value {min_attainable_p(n_nonzero, alternative):g}; "
                f"at least {needed} are needed)"
            )
    if ci_note:
        notes.append(ci_note)
    return PairedComparison(
        n=int(differences.size),
        n_nonzero=n_nonzero,
        statistic=statistic,
        p_value=p_value,
        effect_size=_rank_biserial(differences),
        median_difference=float(np.median(differences)),
        ci_low=ci_low,
        ci_high=ci_high,
        confidence=float(confidence),
        alternative=alternative,
        method=used,
        note="; ".join(notes),
    )


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values, in the order of the input.

    With the ``m`` p-values sorted ascending ``p_(1) <= ... <= p_(m)``, the adjusted value of ``p_(i)`` is
    ``min(1, max_{j <= i} (m - j + 1) p_(j))``: monotone in the raw p-values and capped at 1. Rejecting where
    the adjusted value is ``<= alpha`` controls the family-wise error rate at ``alpha``.

    Args:
        p_values: raw p-values ``(m,)`` in ``[0, 1]``; ``m = 0`` gives an empty array.

    Returns:
        ``float64`` array ``(m,)`` of adjusted p-values.

    Raises:
        ValueError: if ``p_values`` is not 1-D, holds NaN/Inf (named with its index) or a value outside
            ``[0, 1]``.

    Example:
        >>> holm([0.01, 0.04, 0.03, 0.005]).tolist()
        [0.03, 0.06, 0.06, 0.02]
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"p_values must be 1-D, got shape {p.shape}")
    check_finite("p_values", p)
    outside = (p < 0) | (p > 1)
    if outside.any():
        raise ValueError(f"p_values must be in [0, 1], got {p[outside][:5].tolist()}")
    order = np.argsort(p, kind="stable")
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate((p.size - np.arange(p.size)) * p[order]))
    return adjusted
