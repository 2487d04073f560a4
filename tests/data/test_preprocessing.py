"""Crop, pad, z-score and their exact inverse."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from art_seg.data import (
    CropPad,
    bounding_box,
    brain_mask,
    crop_pad_record,
    pad_to_multiple,
    preprocess,
    restore_to_original,
    zscore_,
)


def test_bounding_box_with_margin_is_clipped():
    mask = np.zeros((10, 10, 10), dtype=bool)
    mask[3:5, 4, 5:9] = True
    assert bounding_box(mask) == ((3, 5), (4, 5), (5, 9))
    assert bounding_box(mask, margin=2) == ((1, 7), (2, 7), (3, 10))
    assert bounding_box(mask, margin=(0, 1, 0)) == ((3, 5), (3, 6), (5, 9))


def test_bounding_box_of_empty_mask():
    with pytest.raises(ValueError, match="no non-zero"):
        bounding_box(np.zeros((3, 3, 3), dtype=bool))


def test_brain_mask_is_union_over_channels():
    image = np.zeros((2, 3, 3, 3), dtype=np.float32)
    image[0, 0, 0, 0] = 1.0
    image[1, 2, 2, 2] = -1.0
    assert brain_mask(image).sum() == 2 and brain_mask(image)[2, 2, 2]


def test_pad_to_multiple_example_and_inverse():
    volume = np.arange(2 * 5 * 8 * 9, dtype=np.float32).reshape(2, 5, 8, 9)
    padded, record = pad_to_multiple(volume, 4)
    assert padded.shape == (2, 8, 8, 12)
    assert record.pad == ((1, 2), (0, 0), (1, 2))
    np.testing.assert_array_equal(record.invert(padded), volume)
    assert padded.sum() == volume.sum()


def test_crop_pad_record_shapes():
    mask = np.zeros((20, 20, 12), dtype=bool)
    mask[5:9, 6:15, 2:10] = True
    record = crop_pad_record(mask, margin=1, multiple=8, min_shape=(16, 8, 8))
    assert record.crop_shape == (6, 11, 10)
    assert record.shape == (16, 16, 16)
    assert record.box == ((4, 10), (5, 16), (1, 11))


@settings(max_examples=40, deadline=None)
@given(
    shape=st.tuples(*[st.integers(3, 14)] * 3),
    margin=st.integers(0, 3),
    multiple=st.integers(1, 8),
    data=st.data(),
)
def test_crop_pad_inverse_is_exact(shape, margin, multiple, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 10_000)))
    image = np.zeros((2, *shape), dtype=np.float32)
    lo = [data.draw(st.integers(0, n - 1)) for n in shape]
    hi = [data.draw(st.integers(l + 1, n)) for l, n in zip(lo, shape)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    image[(slice(None), *box)] = rng.uniform(1, 2, (2, *[b - a for a, b in zip(lo, hi)]))
    record = crop_pad_record(brain_mask(image), margin, multiple)
    forward = record.apply(image)
    assert all(n % multiple == 0 for n in forward.shape[1:])
    np.testing.assert_array_equal(record.invert(forward), image)
    labels = rng.integers(0, 4, shape) * (image[0] != 0)
    np.testing.assert_array_equal(restore_to_original(record.apply(labels), record), labels)
    assert restore_to_original(record.apply(labels), record).dtype == labels.dtype


def test_with_shape_keeps_the_inverse():
    image = np.zeros((1, 9, 9, 9), dtype=np.float32)
    image[0, 2:6, 3:7, 1:8] = 1.0
    record = crop_pad_record(brain_mask(image), 0, 1)
    bigger = record.with_shape((8, 8, 8))
    assert bigger.shape == (8, 8, 8) and bigger.pad == ((2, 2), (2, 2), (0, 1))
    np.testing.assert_array_equal(bigger.invert(bigger.apply(image)), image)
    with pytest.raises(ValueError, match="at least the crop shape"):
        record.with_shape((3, 8, 8))


def test_croppad_validates():
    with pytest.raises(ValueError, match="invalid crop/pad"):
        CropPad((5, 5, 5), ((0, 6), (0, 5), (0, 5)), ((0, 0),) * 3)
    record = CropPad((5, 5, 5), ((0, 5),) * 3, ((0, 0),) * 3)
    with pytest.raises(ValueError, match=r"original shape \(5, 5, 5\)"):
        record.apply(np.zeros((4, 4, 4)))
    with pytest.raises(ValueError, match=r"network-grid shape \(5, 5, 5\)"):
        record.invert(np.zeros((4, 4, 4)))
    with pytest.raises(TypeError, match="CropPad"):
        restore_to_original(np.zeros((5, 5, 5)), object())


def test_zscore_in_place_over_the_mask():
    rng = np.random.default_rng(1)
    image = np.zeros((2, 10, 10, 10), dtype=np.float32)
    image[:, 2:8, 2:8, 2:8] = rng.normal([[[[300.0]]], [[[900.0]]]], [[[[20.0]]], [[[80.0]]]], (2, 6, 6, 6))
    mask = brain_mask(image)
    original = image.copy()
    means, stds = zscore_(image, mask)
    for c in range(2):
        assert abs(means[c] - float(original[c][mask].mean(dtype=np.float64))) < 1e-3
        assert abs(stds[c] - float(original[c][mask].std(dtype=np.float64))) < 1e-3
        assert abs(float(image[c][mask].mean())) < 1e-5
        assert abs(float(image[c][mask].std()) - 1.0) < 1e-5
        assert np.count_nonzero(image[c][~mask]) == 0
    assert image.dtype == np.float32
    np.testing.assert_allclose(image[1][mask] * stds[1] + means[1], original[1][mask], rtol=1e-5)


def test_zscore_constant_channel_warns_and_empty_mask_raises():
    image = np.ones((1, 4, 4, 4), dtype=np.float32)
    with pytest.warns(UserWarning, match="channel 0 is constant"):
        _, stds = zscore_(image)
    assert stds == (1.0,) and np.count_nonzero(image) == 0
    with pytest.raises(ValueError, match="mask is empty"):
        zscore_(np.zeros((1, 4, 4, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="floating"):
        zscore_(np.ones((1, 4, 4, 4), dtype=np.int64))


def test_preprocess_in_memory():
    rng = np.random.default_rng(2)
    image = np.zeros((4, 20, 20, 12), dtype=np.float32)
    image[:, 3:17, 2:18, 1:11] = rng.uniform(100, 200, (4, 14, 16, 10))
    label = np.zeros((20, 20, 12), dtype=np.int64)
    label[8:10, 8:10, 5:7] = 3
    out = preprocess(image, label, margin=1, multiple=8)
    assert out.image.shape == (4, 16, 24, 16) and out.label.shape == (16, 24, 16)
    assert out.label.sum() == label.sum()
    assert image.max() > 100  # input untouched
    np.testing.assert_array_equal(restore_to_original(out.label, out.crop_pad), label)
