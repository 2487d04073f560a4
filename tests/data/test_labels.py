"""BraTS label values <-> class indices and the three tumour regions."""

from __future__ import annotations

import numpy as np
import pytest

from art_seg.data import (
    LabelValueError,
    classes_to_labels,
    labels_to_classes,
    region_labels,
    region_masks,
)


@pytest.mark.parametrize(
    ("convention", "values"),
    [("brats2018", [0, 1, 2, 4]), ("brats2023", [0, 1, 2, 3])],
)
def test_values_map_to_classes_and_back(convention, values):
    values = np.array(values * 3, dtype=np.uint8).reshape(3, 2, 2)
    classes = labels_to_classes(values, convention)
    assert classes.dtype == np.int64
    assert classes.ravel()[:4].tolist() == [0, 1, 2, 3]
    back = classes_to_labels(classes, convention)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, values)


def test_integral_float_values_are_accepted():
    assert labels_to_classes(np.array([0.0, 4.0, 2.0])).tolist() == [0, 3, 2]


def test_out_argument_is_filled():
    out = np.full((4,), 7, dtype=np.int64)
    result = labels_to_classes(np.array([0, 1, 2, 4]), out=out)
    assert result is out
    assert out.tolist() == [0, 1, 2, 3]


def test_unknown_value_names_source_and_values():
    with pytest.raises(LabelValueError, match=r"case_seg\.nii\.gz.*value\(s\) \[3, 5\]"):
        labels_to_classes(np.array([0, 1, 3, 5]), "brats2018", source="case_seg.nii.gz")


def test_2023_values_in_2018_convention_suggest_the_fix():
    with pytest.raises(LabelValueError, match="label_convention='brats2023'"):
        labels_to_classes(np.array([0, 1, 2, 3]), "brats2018", source="x.nii.gz")


def test_non_integral_value_is_an_error():
    with pytest.raises(LabelValueError, match=r"\[0\.5\]"):
        labels_to_classes(np.array([0.0, 0.5]), source="x.nii")


def test_bad_convention_and_classes():
    with pytest.raises(ValueError, match="convention must be one of"):
        labels_to_classes(np.array([0]), "brats2015")
    with pytest.raises(ValueError, match=r"classes must be in 0\.\.3"):
        classes_to_labels(np.array([0, 4]))
    with pytest.raises(ValueError, match="integer"):
        classes_to_labels(np.array([0.0, 1.0]))


@pytest.mark.parametrize(
    ("region", "convention", "expected"),
    [
        ("WT", "brats2018", (1, 2, 4)),
        ("TC", "brats2018", (1, 4)),
        ("ET", "brats2018", (4,)),
        ("WT", "brats2023", (1, 2, 3)),
        ("TC", "brats2023", (1, 3)),
        ("ET", "brats2023", (3,)),
    ],
)
def test_region_labels(region, convention, expected):
    assert region_labels(region, convention) == expected


def test_region_masks_on_classes_and_on_values():
    classes = np.array([0, 1, 2, 3])
    expected = [[0, 1, 1, 1], [0, 1, 0, 1], [0, 0, 0, 1]]
    assert region_masks(classes).astype(int).tolist() == expected
    assert region_masks(np.array([0, 1, 2, 4]), "brats2018").astype(int).tolist() == expected
    assert region_masks(np.array([0, 1, 2, 3]), "brats2023").astype(int).tolist() == expected
    assert region_masks(np.zeros((2, 3, 4, 5), dtype=np.int64)).shape == (3, 2, 3, 4, 5)


def test_region_masks_rejects_values_when_classes_expected():
    with pytest.raises(LabelValueError, match=r"class indices 0\.\.3.*\[0, 4\]"):
        region_masks(np.array([0, 4]))
    with pytest.raises(ValueError, match="integer"):
        region_masks(np.array([0.0, 1.0]))
