"""Seeded, foreground-weighted patch sampling."""

from __future__ import annotations

import numpy as np
import pytest

from art_seg.data import PatchSampler, foreground_indices


@pytest.fixture
def volume():
    image = np.random.default_rng(0).normal(size=(2, 40, 40, 24)).astype(np.float32)
    label = np.zeros((40, 40, 24), dtype=np.int64)
    label[30:36, 4:10, 3:8] = 2  # a small tumour in one corner
    return image, label


def _boxes(sampler, label, n, rng=None):
    fg = foreground_indices(label)
    return [sampler.sample_box(label.shape, fg, rng) for _ in range(n)]


def test_same_seed_same_patches_and_other_seed_differs(volume):
    _, label = volume
    a = _boxes(PatchSampler(16, 0.5, seed=3), label, 20)
    b = _boxes(PatchSampler(16, 0.5, seed=3), label, 20)
    c = _boxes(PatchSampler(16, 0.5, seed=4), label, 20)
    assert a == b
    assert a != c


def test_patches_are_inside_and_of_the_right_size(volume):
    image, label = volume
    sampler = PatchSampler((16, 8, 24), foreground_prob=0.7, seed=0)
    for _ in range(50):
        x, y = sampler.sample(image, label)
        assert x.shape == (2, 16, 8, 24) and y.shape == (16, 8, 24)
        assert x.flags.c_contiguous and x.dtype == np.float32
    for box in _boxes(sampler, label, 50):
        assert all(0 <= s.start and s.stop <= n for s, n in zip(box, label.shape))


def test_foreground_weighting_is_measurable(volume):
    _, label = volume
    n = 400

    def tumour_rate(prob):
        sampler = PatchSampler(12, foreground_prob=prob, seed=0)
        return np.mean([label[box].any() for box in _boxes(sampler, label, n)])

    uniform, weighted = tumour_rate(0.0), tumour_rate(0.5)
    assert uniform < 0.3  # the tumour is small
    assert weighted > uniform + 0.3  # about half the patches are forced onto tumour
    assert tumour_rate(1.0) == 1.0


def test_uniform_without_foreground(volume):
    _, label = volume
    sampler = PatchSampler(12, foreground_prob=1.0, seed=0)
    starts = {sampler.sample_box(label.shape, None)[0].start for _ in range(200)}
    assert len(starts) > 20  # not stuck on one place


def test_explicit_rng_does_not_touch_the_sampler_state(volume):
    _, label = volume
    sampler = PatchSampler(12, seed=0)
    first = _boxes(sampler, label, 1, np.random.default_rng(9))
    again = _boxes(sampler, label, 1, np.random.default_rng(9))
    assert first == again


def test_bad_options_and_small_volume(volume):
    image, label = volume
    with pytest.raises(ValueError, match=r"foreground_prob must be <= 1.0, got 1.5"):
        PatchSampler(8, foreground_prob=1.5)
    with pytest.raises(ValueError, match="patch_size must have 3 entries"):
        PatchSampler((8, 8))
    with pytest.raises(ValueError, match=r"patch_size must be >= 1, got 0"):
        PatchSampler((8, 0, 8))
    with pytest.raises(ValueError, match=r"at least the patch size \(48, 48, 48\)"):
        PatchSampler(48).sample(image, label)
    with pytest.raises(ValueError, match="label must have shape"):
        PatchSampler(8).sample(image, label[:-1])
