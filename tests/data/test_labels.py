"""BraTS label values <-> class indices and the three tumour regions."""

from __future__ import annotations

import numpy as np
import pytest

from art_seg.data import (
    CLASS_NAMES,
    LABEL_CONVENTIONS,
    NB_CLASSES,
    LabelConvention,
    LabelValueError,
    get_convention,
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


# BraTS 2024 post-treatment (GLI): 1 NETC, 2 SNFH, 3 ET, 4 resection cavity; five classes.


def test_brats2024_values_are_the_class_indices_and_round_trip():
    values = np.array([0, 1, 2, 3, 4, 4, 3, 0], dtype=np.uint8).reshape(2, 2, 2)
    classes = labels_to_classes(values, "brats2024")
    np.testing.assert_array_equal(classes, values.astype(np.int64))
    back = classes_to_labels(classes, "brats2024")
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, values)
    with pytest.raises(ValueError, match=r"classes must be in 0\.\.4"):
        classes_to_labels(np.array([0, 5]), "brats2024")


def test_the_four_class_conventions_are_unchanged():
    assert LABEL_CONVENTIONS["brats2018"] == (0, 1, 2, 4)
    assert LABEL_CONVENTIONS["brats2023"] == (0, 1, 2, 3)
    assert get_convention("brats2018").nb_classes == NB_CLASSES == 4
    assert get_convention("brats2018").class_names == CLASS_NAMES
    assert get_convention("brats2024").nb_classes == 5
    with pytest.raises(ValueError, match=r"classes must be in 0\.\.3"):  # class 4 exists only in brats2024
        classes_to_labels(np.array([4]), "brats2023")


@pytest.mark.parametrize(
    ("region", "expected"),
    [("ET", (3,)), ("NETC", (1,)), ("SNFH", (2,)), ("RC", (4,)), ("TC", (1, 3)), ("WT", (1, 2, 3))],
)
def test_brats2024_regions(region, expected):
    assert region_labels(region, "brats2024") == expected
    assert get_convention("brats2024").region_classes[region] == expected  # values are the class indices


def test_brats2024_region_masks_on_values_and_on_classes():
    values = np.array([0, 1, 2, 3, 4])
    masks = region_masks(values, "brats2024")
    assert get_convention("brats2024").region_names == ("WT", "TC", "ET", "NETC", "SNFH", "RC")
    assert masks.astype(int).tolist() == [
        [0, 1, 1, 1, 0],  # WT: the cavity is not tumour
        [0, 1, 0, 1, 0],
        [0, 0, 0, 1, 0],
        [0, 1, 0, 0, 0],
        [0, 0, 1, 0, 0],
        [0, 0, 0, 0, 1],
    ]
    on_classes = region_masks(values, "brats2024", class_indices=True, regions=("RC", "ET"))
    assert on_classes.astype(int).tolist() == [[0, 0, 0, 0, 1], [0, 0, 0, 1, 0]]
    with pytest.raises(ValueError, match=r"region must be one of \('WT', 'TC', 'ET'\), got 'RC'"):
        region_masks(values[:4], "brats2023", regions=("RC",))
    with pytest.raises(LabelValueError, match=r"class indices 0\.\.4"):
        region_masks(np.array([0, 5]), "brats2024", class_indices=True)


def test_post_treatment_values_under_2023_hint_brats2024():
    """3 and 4 together: only the post-treatment convention holds both (there was no hint at all)."""
    with pytest.raises(LabelValueError, match=r"x\.nii\.gz.*pass label_convention='brats2024'") as info:
        labels_to_classes(np.array([0, 1, 2, 3, 4]), "brats2023", source="x.nii.gz")
    assert "brats2018" not in str(info.value)


def test_cavity_without_enhancing_names_both_readings_of_value_4():
    """The old hint said only "pass label_convention='brats2018'", which reads a resection cavity (4 in a
    post-treatment scan without enhancing tumour) as enhancing tumour."""
    with pytest.raises(LabelValueError) as info:
        labels_to_classes(np.array([0, 1, 2, 4]), "brats2023", source="BraTS-GLI-00005-100-seg.nii.gz")
    message = str(info.value)
    assert "pass label_convention='brats2018'" in message and "4 enhancing tumour" in message
    assert "label_convention='brats2024'" in message and "4 resection cavity" in message


def test_convention_objects_are_accepted_and_checked():
    own = LabelConvention("Dataset004_Hippocampus", (0, 1, 2), ("background", "anterior", "posterior"))
    assert labels_to_classes(np.array([0, 2, 1]), own).tolist() == [0, 2, 1]
    assert classes_to_labels(np.array([2, 0]), own).tolist() == [2, 0]
    with pytest.raises(LabelValueError, match=r"not Dataset004_Hippocampus labels \[0, 1, 2\]"):
        labels_to_classes(np.array([0, 3]), own)
    with pytest.raises(ValueError, match="values must be distinct"):
        LabelConvention("bad", (0, 1, 1), ("a", "b", "c"))
    with pytest.raises(ValueError, match=r"values\[0\] must be 0 \(background\)"):
        LabelConvention("bad", (1, 0), ("a", "b"))
    with pytest.raises(ValueError, match="class_names must have 2 names"):
        LabelConvention("bad", (0, 1), ("a",))
    with pytest.raises(ValueError, match=r"region 'X' holds class 2, outside 1\.\.1"):
        LabelConvention("bad", (0, 1), ("a", "b"), regions=(("X", (2,)),))
    with pytest.raises(TypeError, match="convention must be str or LabelConvention"):
        labels_to_classes(np.array([0]), 3)
