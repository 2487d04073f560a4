"""Tests for art_seg.stats.paired: equality with scipy's Wilcoxon, rank-biserial and Holm by hand, the median CI,
zero differences, too few subjects and bad input."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from art_seg.stats import PairedComparison, holm, min_attainable_p, paired_wilcoxon, rank_biserial


def sample(seed: int, n: int, *, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    """Paired Dice-like scores; ``ties`` rounds them so that zero and tied differences occur."""
    rng = np.random.default_rng(seed)
    before = rng.uniform(0.6, 0.95, size=n)
    after = before - rng.normal(0.05, 0.08, size=n)
    return (np.round(before, 2), np.round(after, 2)) if ties else (before, after)


@pytest.mark.parametrize("alternative", ["two-sided", "less", "greater"])
@pytest.mark.parametrize(
    ("seed", "n", "ties", "zero_method", "method"),
    [
        (0, 9, False, "wilcox", "auto"),
        (1, 20, False, "wilcox", "auto"),
        (2, 60, False, "wilcox", "auto"),
        (3, 8, True, "wilcox", "auto"),
        (4, 30, True, "pratt", "auto"),
        (5, 25, True, "zsplit", "asymptotic"),
        (6, 15, True, "wilcox", "exact"),
        (7, 40, False, "wilcox", "asymptotic"),
    ],
)
def test_equals_scipy(seed, n, ties, zero_method, method, alternative):
    before, after = sample(seed, n, ties=ties)
    ours = paired_wilcoxon(before, after, alternative=alternative, zero_method=zero_method, method=method)
    theirs = stats.wilcoxon(after, before, alternative=alternative, zero_method=zero_method, method=method)
    assert ours.statistic == theirs.statistic
    assert ours.p_value == theirs.pvalue
    assert (ours.n, ours.n_nonzero) == (n, np.count_nonzero(after - before))
    assert ours.alternative == alternative
    assert isinstance(ours.p_value, float) and isinstance(ours.statistic, float)


@pytest.mark.parametrize(
    ("seed", "n", "ties", "expected"),
    [(0, 20, False, "exact"), (1, 8, True, "permutation"), (2, 30, True, "asymptotic"), (3, 51, False, "asymptotic")],
)
def test_reported_method_is_the_one_scipy_used(seed, n, ties, expected):
    before, after = sample(seed, n, ties=ties)
    result = paired_wilcoxon(before, after)
    assert result.method == expected
    explicit = stats.PermutationMethod() if expected == "permutation" else expected
    assert result.p_value == stats.wilcoxon(after, before, method=explicit).pvalue


@pytest.mark.parametrize(
    ("differences", "expected"),
    [
        ([1, -2, 3, 4], 0.6),  # ranks 1, 2, 3, 4: W+ = 8, W- = 2, r = 6 / 10
        ([0, 1, -2, 0, 3, 4], 0.6),  # zeros are dropped
        ([1, -1, 2], 0.5),  # ranks 1.5, 1.5, 3: W+ = 4.5, W- = 1.5, r = 3 / 6
        ([0.1, 0.2, 5.0], 1.0),  # every subject improves
        ([-0.1, -0.2, -5.0], -1.0),
        ([0.0, 0.0], 0.0),
    ],
)
def test_rank_biserial_hand_computed(differences, expected):
    before = np.full(len(differences), 0.5)
    after = before + np.asarray(differences)
    assert rank_biserial(before, after) == pytest.approx(expected)
    assert rank_biserial(after, before) == pytest.approx(-expected)


@pytest.mark.parametrize("seed", range(3))
def test_effect_size_agrees_with_scipy_statistic(seed):
    """Without zeros, one-sided scipy returns W+; with T = n (n + 1) / 2, r = (W+ - (T - W+)) / T."""
    before, after = sample(seed, 16, ties=False)
    result = paired_wilcoxon(before, after, alternative="greater")
    total = 16 * 17 / 2
    assert result.effect_size == pytest.approx((2 * result.statistic - total) / total)
    assert result.effect_size == rank_biserial(before, after)


@pytest.mark.parametrize(
    ("p_values", "expected"),
    [
        # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
        ([0.01, 0.04, 0.03, 0.005], [0.03, 0.06, 0.06, 0.02]),
        ([0.3, 0.5], [0.6, 0.6]),  # 0.6, then max(0.6, 0.5)
        ([0.6, 0.9], [1.0, 1.0]),  # 1.2 capped at 1
        ([0.01, 0.01, 0.5], [0.03, 0.03, 0.5]),  # ties: 0.03, 0.02 -> 0.03, then 0.5
        ([0.04], [0.04]),
        ([], []),
    ],
)
def test_holm_hand_computed(p_values, expected):
    adjusted = holm(p_values)
    assert adjusted.dtype == np.float64
    np.testing.assert_allclose(adjusted, expected, rtol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=12))
def test_holm_invariants(p_values):
    """Adjusted p-values are >= the raw ones, <= 1, in the same order as the raw ones, and start at min(1, m p_min)."""
    p = np.asarray(p_values)
    adjusted = holm(p)
    assert np.all(adjusted >= p) and np.all(adjusted <= 1.0)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(adjusted[order]) >= 0)
    assert adjusted[order[0]] == pytest.approx(min(1.0, p.size * p.min()))


@pytest.mark.parametrize(
    ("p_values", "match"),
    [
        ([0.01, np.nan, 0.2], r"p_values must be finite, got 1 NaN/Inf value\(s\), first at index \(1,\)"),
        ([0.01, 1.5, -0.1], r"p_values must be in \[0, 1\], got \[1\.5, -0\.1\]"),
        ([[0.01, 0.2]], r"p_values must be 1-D, got shape \(1, 2\)"),
    ],
)
def test_holm_bad_input(p_values, match):
    with pytest.raises(ValueError, match=match):
        holm(p_values)


def test_all_differences_zero():
    scores = np.linspace(0.5, 0.9, 8)
    result = paired_wilcoxon(scores, scores.copy())
    assert result.p_value == 1.0 and result.effect_size == 0.0
    assert math.isnan(result.statistic) and result.method == "none"
    assert result.n == 8 and result.n_nonzero == 0
    assert (result.ci_low, result.median_difference, result.ci_high) == (0.0, 0.0, 0.0)
    assert result.note == "all differences are zero: no test was run and p_value is set to 1.0"


@pytest.mark.parametrize("n", [6, 9, 30])
def test_note_is_empty_when_nothing_is_notable(n):
    before, after = sample(n, n, ties=False)
    assert paired_wilcoxon(before, after).note == ""


def test_too_few_subjects():
    with pytest.raises(ValueError, match=r"at least 2 pair\(s\).*got 1.*2/2\*\*n, so n >= 6 is needed for p < 0\.05"):
        paired_wilcoxon([0.9], [0.5])
    result = paired_wilcoxon([0.9, 0.8, 0.85, 0.7, 0.95], [0.5, 0.7, 0.3, 0.65, 0.6])
    assert result.p_value == 0.0625 == min_attainable_p(5)
    assert "with 5 non-zero differences an exact test cannot reach p < 0.05" in result.note
    assert "at least 6 are needed" in result.note
    assert "5 pairs are too few for a 95% distribution-free interval" in result.note
    assert (result.ci_low, result.ci_high) == (-np.inf, np.inf)
    one_sided = paired_wilcoxon([0.9, 0.8, 0.85, 0.7, 0.95], [0.5, 0.7, 0.3, 0.65, 0.6], alternative="less")
    assert one_sided.p_value == 0.03125 and one_sided.note == ""


@pytest.mark.parametrize("alternative", ["two-sided", "greater"])
@pytest.mark.parametrize("n", range(1, 9))
def test_min_attainable_p_is_scipy_exact_p_when_all_improve(n, alternative):
    assert stats.wilcoxon(np.arange(1.0, n + 1), method="exact", alternative=alternative).pvalue == pytest.approx(
        min_attainable_p(n, alternative)
    )


@pytest.mark.parametrize(
    ("alternative", "expected"),
    [("two-sided", (-3.0, 8.0)), ("greater", (-1.0, np.inf)), ("less", (-np.inf, 7.0))],
)
def test_median_interval_hand_computed(alternative, expected):
    """n = 8, B ~ Binomial(8, 1/2): P(B <= 0) = 1/256, P(B <= 1) = 9/256 = 0.035.
    Two-sided 95% needs P <= 0.025 per side -> k = 1: [d_(1), d_(8)]; one-sided needs P <= 0.05 -> k = 2.
    Sorted d: -3, -1, 1, 2, 4, 5, 7, 8."""
    d = np.array([5.0, -3.0, 8.0, 1.0, 2.0, 7.0, -1.0, 4.0])
    result = paired_wilcoxon(np.zeros(8), d, alternative=alternative)
    assert (result.ci_low, result.ci_high) == expected
    assert result.median_difference == 3.0


def test_median_interval_ten_pairs():
    """n = 10: P(B <= 1) = 11/1024 <= 0.025 < P(B <= 2) = 56/1024 -> [d_(2), d_(9)] (coverage 97.9%)."""
    d = np.arange(1.0, 11.0) ** 2 - 30
    result = paired_wilcoxon(np.zeros(10), d[::-1])
    assert (result.ci_low, result.ci_high) == (d[1], d[8])
    wider = paired_wilcoxon(np.zeros(10), d, confidence=0.99)  # P(B <= 0) = 1/1024 <= 0.005 -> [d_(1), d_(10)]
    assert (wider.ci_low, wider.ci_high) == (d[0], d[9]) and wider.confidence == 0.99


def test_median_interval_coverage():
    """Skewed differences (median = shift, mean != shift): the interval covers the true median in about
    1 - 2 P(B <= 3) = 96.5% of samples for n = 15."""
    rng = np.random.default_rng(0)
    shift, n, repeats = -0.05, 15, 300
    covered = 0
    for _ in range(repeats):
        before = rng.uniform(0.7, 0.9, size=n)
        after = before + shift + 0.1 * (rng.exponential(size=n) - math.log(2.0))
        result = paired_wilcoxon(before, after)
        assert result.ci_low <= result.median_difference <= result.ci_high
        covered += result.ci_low <= shift <= result.ci_high
    assert covered / repeats >= 0.93


BAD_CALLS = [
    (([0.9, np.nan, 0.7], [0.5, 0.6, 0.7]), {}, r"before must be finite, got 1 NaN/Inf .*first at index \(1,\)"),
    (([0.9, 0.8, 0.7], [0.5, 0.6, np.inf]), {}, r"after must be finite, .*first at index \(2,\)"),
    (([0.9, 0.8, 0.7], [0.5, 0.6, 0.7, 0.8]), {}, r"one score per subject each, got 3 and 4 scores"),
    (([[0.9, 0.8]], [[0.5, 0.6]]), {}, r"before must be 1-D \(one score per subject\), got shape \(1, 2\)"),
    (([0.9, 0.8], [0.5, 0.6]), {"alternative": "smaller"}, r"alternative must be one of .*'smaller'"),
    (([0.9, 0.8], [0.5, 0.6]), {"zero_method": "drop"}, r"zero_method must be one of .*'drop'"),
    (([0.9, 0.8], [0.5, 0.6]), {"method": "approx"}, r"method must be one of .*'approx'"),
    (([0.9, 0.8], [0.5, 0.6]), {"confidence": 95}, r"confidence must be < 1, got 95"),
    (([0.9, 0.8], [0.5, 0.6]), {"confidence": 0.0}, r"confidence must be > 0, got 0\.0"),
]


@pytest.mark.parametrize(("args", "kwargs", "match"), BAD_CALLS)
def test_bad_input_messages(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        paired_wilcoxon(*args, **kwargs)


def test_rank_biserial_bad_input():
    with pytest.raises(ValueError, match=r"after must be finite.*index \(0,\)"):
        rank_biserial([0.5], [np.nan])
    with pytest.raises(ValueError, match=r"at least 1 pair\(s\) of scores, got 0"):
        rank_biserial([], [])


def test_inputs_not_modified_and_result_frozen():
    before, after = sample(0, 10, ties=True)
    copies = before.copy(), after.copy()
    result = paired_wilcoxon(before, after)
    rank_biserial(before, after)
    np.testing.assert_array_equal(before, copies[0])
    np.testing.assert_array_equal(after, copies[1])
    assert isinstance(result, PairedComparison)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.p_value = 0.0  # type: ignore[misc]
