"""Tests for art_seg.certification: SegCertify p-values, Holm, radius, abstention, certified Dice, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from art_seg.certification import (
    ABSTAIN,
    SegmentationCertificate,
    certified_dice,
    certified_fraction_per_region,
    certify_over_radii,
    certify_segmentation,
)
from art_seg.certification.smoothing import _binomial_p_values, _certificate_from_counts
from art_seg.estimators import PyTorchSegmenter

SHAPE = (8, 8, 8)


class ConstantLogits(torch.nn.Module):
    """Logits ``(N, 3, *spatial)`` favouring ``winner`` by 5 everywhere, whatever the input."""

    def __init__(self, winner: int) -> None:
        super().__init__()
        bias = torch.zeros(3)
        bias[winner] = 5.0
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias.view(1, 3, *([1] * (x.ndim - 2))).expand(x.shape[0], 3, *x.shape[2:]).clone()


def constant_segmenter(winner: int = 2) -> PyTorchSegmenter:
    return PyTorchSegmenter(ConstantLogits(winner), "ce", input_shape=(1, *SHAPE), nb_classes=3, device_type="cpu")


def linear_segmenter() -> PyTorchSegmenter:
    """Two classes, logit_1 - logit_0 = x: under noise voxel v votes 1 with probability Phi(x_v / sigma)."""
    conv = torch.nn.Conv3d(1, 2, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([0.0, 1.0]).view(2, 1, 1, 1, 1))
        conv.bias.zero_()
    return PyTorchSegmenter(conv, "ce", input_shape=(1, 6, 6, 6), nb_classes=2, device_type="cpu")


def ramp(shape: tuple[int, ...] = (6, 6, 6)) -> np.ndarray:
    """``(1, 1, *shape)`` intensities spread over [-2, 2]: stable voxels at both ends, unstable near 0."""
    return np.linspace(-2.0, 2.0, int(np.prod(shape)), dtype=np.float32).reshape(1, 1, *shape)


def certificate(labels: np.ndarray, nb_classes: int = 4) -> SegmentationCertificate:
    """A hand-made certificate with the given labels (counts and p-values are placeholders)."""
    labels = np.asarray(labels)
    return SegmentationCertificate(
        labels,
        np.zeros((nb_classes, *labels.shape), np.int32),
        np.zeros(labels.shape),
        np.zeros(labels.shape),
        radius=0.1,
        sigma=0.15,
        tau=0.75,
        n=10,
        alpha=0.01,
    )


# ---------------------------------------------------------------- 1. p-values are scipy's binomial test
@pytest.mark.parametrize(("n", "tau"), [(10, 0.75), (100, 0.6), (50, 0.99), (1, 0.5001)])
def test_p_values_equal_binomtest(n, tau):
    counts = np.unique(np.array([0, 1, int(n * tau) - 1, int(n * tau), n - 1, n]).clip(0, n))
    expected = [stats.binomtest(int(k), n, tau, alternative="greater").pvalue for k in counts]
    np.testing.assert_allclose(_binomial_p_values(counts, n, tau), expected, rtol=1e-12, atol=0)
    assert _binomial_p_values(np.array([n]), n, tau)[0] == pytest.approx(tau**n, rel=1e-12)  # k = n
    assert _binomial_p_values(np.array([0]), n, tau)[0] == 1.0


def test_p_values_end_to_end_equal_binomtest():
    x = ramp()
    cert = certify_segmentation(linear_segmenter(), x, sigma=1.0, n=30, tau=0.6, alpha=0.05)[0]
    assert cert.counts.shape == (2, 6, 6, 6) and cert.counts.dtype == np.int32
    assert (cert.counts.sum(0) == 30).all()
    top = cert.counts.max(0)
    for k in np.unique(top):
        where = top == k
        assert np.all(cert.p_values[where] == stats.binomtest(int(k), 30, 0.6, alternative="greater").pvalue)
    # votes follow the sign of x: class 1 wins where x > 0 (well away from 0)
    assert (cert.counts.argmax(0)[x[0, 0] > 1.5] == 1).all() and (cert.counts.argmax(0)[x[0, 0] < -1.5] == 0).all()


# ---------------------------------------------------------------- 2. a constant model is certified everywhere
@pytest.mark.parametrize("sigma", [0.1, 0.5, 2.0])
@pytest.mark.parametrize("winner", [0, 2])
def test_constant_model_certified_everywhere(sigma, winner):
    x = np.random.default_rng(0).normal(size=(2, 1, *SHAPE)).astype(np.float32)
    certs = certify_segmentation(
        constant_segmenter(winner), x, sigma=sigma, n=100, tau=0.75, alpha=0.001, batch_size=50
    )
    assert len(certs) == 2
    for cert in certs:
        assert cert.labels.shape == SHAPE and cert.labels.dtype == np.int64
        assert (cert.labels == winner).all()
        assert cert.certified_fraction == 1.0
        assert (cert.counts[winner] == 100).all()
        assert cert.radius == pytest.approx(sigma * stats.norm.ppf(0.75))
        assert (cert.sigma, cert.tau, cert.n, cert.alpha) == (sigma, 0.75, 100, 0.001)


# ---------------------------------------------------------------- 3. abstention falls as n grows
def test_certified_fraction_grows_with_n():
    segmenter, x = linear_segmenter(), ramp()
    kwargs = dict(sigma=1.0, tau=0.6, alpha=0.05, seed=3, batch_size=100)
    small = certify_segmentation(segmenter, x, n=20, **kwargs)[0].certified_fraction
    large = certify_segmentation(segmenter, x, n=200, **kwargs)[0].certified_fraction
    assert 0.0 < small < large < 1.0  # n=20 certifies only unanimous voxels; voxels near x=0 always abstain


def test_n0_selection_split():
    segmenter, x = linear_segmenter(), ramp()
    cert = certify_segmentation(segmenter, x, sigma=1.0, n=100, n0=20, tau=0.6, alpha=0.05, batch_size=16)[0]
    assert (cert.counts.sum(0) == 100).all() and cert.n == 100
    certified = cert.labels != ABSTAIN
    assert certified.any()
    # a certified class has far more than n * tau test votes, so it is the test set's majority too
    assert (cert.labels[certified] == cert.counts.argmax(0)[certified]).all()


def test_no_certification_possible_warns():
    with pytest.warns(UserWarning, match="n=5 is too small"):
        cert = certify_segmentation(constant_segmenter(), np.zeros((1, 1, *SHAPE), np.float32), sigma=0.5, n=5)[0]
    assert cert.certified_fraction == 0.0 and (cert.labels == ABSTAIN).all()


# ---------------------------------------------------------------- 4. radius and Holm
@pytest.mark.parametrize(("sigma", "tau"), [(0.25, 0.75), (1.0, 0.9), (0.5, 0.51)])
def test_radius(sigma, tau):
    counts = np.array([[10, 0], [0, 10]], np.int32)  # K = 2, two voxels
    cert = _certificate_from_counts(counts, sigma=sigma, n=10, tau=tau, alpha=0.5)
    assert cert.radius == pytest.approx(sigma * stats.norm.ppf(tau), rel=1e-12)


def test_holm_makes_a_significant_voxel_abstain():
    # n = 20, tau = 0.6: P[X >= 20] = 0.6**20 = 3.7e-5, P[X >= 18] = 3.6e-3, both below alpha = 0.005.
    # Holm over 4 voxels (one of 20 votes, three of 18): 4 * 3.7e-5 = 1.5e-4 <= alpha (certified); the 18-vote
    # voxels (ranks 2..4, tied) adjust to 3 * 3.6e-3 = 1.1e-2 > alpha (abstain).
    top = np.array([20, 18, 18, 18])
    counts = np.stack([top, 20 - top]).astype(np.int32)  # class 0 on top everywhere
    cert = _certificate_from_counts(counts, sigma=0.5, n=20, tau=0.6, alpha=0.005)
    raw = stats.binom.sf(top - 1, 20, 0.6)
    assert (raw < 0.005).all()
    np.testing.assert_allclose(cert.p_values, raw, rtol=1e-12)
    np.testing.assert_allclose(cert.adjusted_p_values, [4 * raw[0], 3 * raw[1], 3 * raw[1], 3 * raw[1]], rtol=1e-12)
    assert cert.labels.tolist() == [0, ABSTAIN, ABSTAIN, ABSTAIN]
    assert cert.certified_fraction == 0.25
    # the same 18-vote voxel alone is certified: only Holm's correction made it abstain
    alone = _certificate_from_counts(counts[:, 1:2], sigma=0.5, n=20, tau=0.6, alpha=0.005)
    assert alone.labels.tolist() == [0]


def test_counts_must_sum_to_n():
    with pytest.raises(ValueError, match="sum to n=10"):
        _certificate_from_counts(np.array([[5], [4]]), sigma=0.5, n=10, tau=0.6, alpha=0.01)


# ---------------------------------------------------------------- 5. certified Dice, hand computed
def test_certified_dice_hand_computed():
    # voxels:  0   1   2   3   4   5   6   7
    # labels:  3  -1   1   2  -1   0   0   3
    # truth:   3   3   1   2   2   0   0   0
    # WT {1,2,3}: pred {0,2,3,7}, truth {0,1,2,3,4}, I = 3 -> 6/9; certified truth WT: {0,2,3} -> 3/5
    # TC {1,3}:   pred {0,2,7},   truth {0,1,2},     I = 2 -> 4/6; certified truth TC: {0,2}   -> 2/3
    # ET {3}:     pred {0,7},     truth {0,1},       I = 1 -> 2/4; certified truth ET: {0}     -> 1/2
    cert = certificate(np.array([3, -1, 1, 2, -1, 0, 0, 3]).reshape(2, 2, 2))
    truth = np.array([3, 3, 1, 2, 2, 0, 0, 0]).reshape(2, 2, 2)
    assert certified_dice(cert, truth) == pytest.approx({"WT": 6 / 9, "TC": 4 / 6, "ET": 2 / 4})
    assert certified_dice(cert, torch.from_numpy(truth)) == pytest.approx({"WT": 6 / 9, "TC": 4 / 6, "ET": 2 / 4})
    assert certified_fraction_per_region(cert, truth) == pytest.approx({"WT": 3 / 5, "TC": 2 / 3, "ET": 1 / 2})
    assert cert.certified_fraction == 6 / 8


def test_certified_dice_custom_regions_and_empty_region():
    # regions covering class 0 too: abstained voxels must still count as in no region
    cert = certificate(np.array([0, -1, 1, 1]))
    truth = np.array([0, 0, 1, 1])
    regions = {"zero": (0,), "one": (1,), "five": (5,)}
    # zero: pred {0}, truth {0,1}, I = 1 -> 2/3; one: 1.0; five: empty in both -> 1.0
    assert certified_dice(cert, truth, regions) == pytest.approx({"zero": 2 / 3, "one": 1.0, "five": 1.0})
    assert certified_fraction_per_region(cert, truth, regions) == {"zero": 0.5, "one": 1.0, "five": 1.0}


def test_certified_dice_all_abstained_is_zero_where_truth_has_a_region():
    cert = certificate(np.full(4, ABSTAIN))
    assert certified_dice(cert, np.array([0, 1, 2, 0])) == {"WT": 0.0, "TC": 0.0, "ET": 1.0}
    assert certified_fraction_per_region(cert, np.array([0, 1, 2, 0])) == {"WT": 0.0, "TC": 0.0, "ET": 1.0}


def test_certificate_arrays_are_read_only_views():
    labels = np.array([1, 0])
    cert = certificate(labels)
    with pytest.raises(ValueError):
        cert.labels[0] = 2
    assert labels.flags.writeable  # the caller's array keeps its flags
    with pytest.raises(ValueError, match="counts must be"):
        SegmentationCertificate(labels, np.zeros((2, 3), np.int32), np.zeros(2), np.zeros(2), 0.1, 0.1, 0.75, 1, 0.1)


# ---------------------------------------------------------------- certify_over_radii
def test_certify_over_radii_rows():
    x = np.random.default_rng(1).normal(size=(2, 1, *SHAPE)).astype(np.float32)
    y = np.full((2, *SHAPE), 2, dtype=np.int64)
    y[1, :4] = 0
    rows = certify_over_radii(constant_segmenter(2), x, y, sigmas=[0.25, 0.5], n=50, tau=0.75, alpha=0.01)
    assert [(r["sigma"], r["subject_index"]) for r in rows] == [(0.25, 0), (0.25, 1), (0.5, 0), (0.5, 1)]
    for row in rows:
        assert row["radius"] == pytest.approx(row["sigma"] * stats.norm.ppf(0.75))
        assert row["certified_fraction"] == 1.0
        assert row["certified_region_fraction"] == {"WT": 1.0, "TC": 1.0, "ET": 1.0}
        # constant class 2 = edema: TC and ET empty in both -> 1.0; WT all right for subject 0, while subject 1
        # has WT on half the volume: 2 * 256 / (512 + 256) = 2/3
        wt = 1.0 if row["subject_index"] == 0 else 2 / 3
        assert row["dice"] == pytest.approx({"WT": wt, "TC": 1.0, "ET": 1.0})


# ---------------------------------------------------------------- 6. bad arguments, no mutation, repeatability
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sigma": 0.0}, ValueError, "sigma must be > 0, got 0.0"),
        ({"sigma": -1.0}, ValueError, "sigma must be > 0"),
        ({"sigma": float("nan")}, ValueError, "sigma must be finite"),
        ({"n": 0}, ValueError, "n must be >= 1, got 0"),
        ({"n": 10.5}, TypeError, "n must be an integer, got 10.5"),
        ({"tau": 0.5}, ValueError, "tau must be > 0.5, got 0.5"),
        ({"tau": 1.0}, ValueError, "tau must be < 1, got 1.0"),
        ({"alpha": 0.0}, ValueError, "alpha must be > 0, got 0.0"),
        ({"alpha": 1.0}, ValueError, "alpha must be < 1, got 1.0"),
        ({"n0": 0}, ValueError, "n0 must be >= 1, got 0"),
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1, got 0"),
        ({"seed": -1}, ValueError, "seed must be >= 0, got -1"),
        ({"verbose": 1}, TypeError, "verbose must be bool"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    args = {"sigma": 0.5} | kwargs
    with pytest.raises(error, match=match):
        certify_segmentation(constant_segmenter(), np.zeros((1, 1, *SHAPE), np.float32), **args)


def test_bad_inputs():
    segmenter = constant_segmenter()
    with pytest.raises(TypeError, match="segmenter must be a SegmenterMixin"):
        certify_segmentation(torch.nn.Identity(), np.zeros((1, 1, *SHAPE), np.float32), sigma=0.5)
    with pytest.raises(ValueError, match="channel"):
        certify_segmentation(segmenter, np.zeros((1, 2, *SHAPE), np.float32), sigma=0.5)
    x = np.zeros((1, 1, *SHAPE), np.float32)
    x[0, 0, 1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        certify_segmentation(segmenter, x, sigma=0.5)
    x, y = np.zeros((1, 1, *SHAPE), np.float32), np.zeros((1, *SHAPE), np.int64)
    with pytest.raises(ValueError, match="sigmas must be a non-empty"):
        certify_over_radii(segmenter, x, y, sigmas=[])
    with pytest.raises(ValueError, match="sigma must be > 0, got -0.1"):
        certify_over_radii(segmenter, x, y, sigmas=[0.5, -0.1])
    with pytest.raises(ValueError, match=r"y must have shape \(N, \*spatial\)"):
        certify_over_radii(segmenter, x, y[:, :4], sigmas=[0.5])
    with pytest.raises(ValueError, match="class indices 0..3"):
        certify_over_radii(segmenter, x, y + 4, sigmas=[0.5])
    with pytest.raises(ValueError, match="labels' shape"):
        certified_fraction_per_region(certificate(np.zeros(4, np.int64)), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="same shape"):
        certified_dice(certificate(np.zeros(4, np.int64)), np.zeros(3, np.int64))


@pytest.mark.parametrize("as_torch", [False, True])
def test_input_unchanged_and_seeded_runs_repeat(as_torch):
    segmenter = linear_segmenter()
    x = ramp()
    x = torch.from_numpy(x) if as_torch else x
    before = x.clone() if as_torch else x.copy()
    kwargs = dict(sigma=1.0, n=40, tau=0.6, alpha=0.05, batch_size=16)  # the last batch is partial
    first = certify_segmentation(segmenter, x, seed=5, **kwargs)[0]
    second = certify_segmentation(segmenter, x, seed=5, **kwargs)[0]
    other = certify_segmentation(segmenter, x, seed=6, **kwargs)[0]
    assert (x == before).all()
    np.testing.assert_array_equal(first.counts, second.counts)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert not np.array_equal(first.counts, other.counts)


def test_sample_noise_does_not_depend_on_other_samples():
    segmenter = linear_segmenter()
    x = np.concatenate([ramp(), -ramp()])
    both = certify_segmentation(segmenter, x, sigma=1.0, n=30, tau=0.6, alpha=0.05)
    first = certify_segmentation(segmenter, x[:1], sigma=1.0, n=30, tau=0.6, alpha=0.05)
    second = certify_segmentation(segmenter, x[1:], sigma=1.0, n=30, tau=0.6, alpha=0.05)
    np.testing.assert_array_equal(both[0].counts, first[0].counts)
    assert not np.array_equal(both[1].counts, second[0].counts)  # sample i's noise is seeded from (seed, i)
