"""Region specifications: presets by hand, the exact round trip label map -> masks -> label map for every preset
(property test), numpy and torch alike, mappings, bad specs and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from art_seg.data import REGION_PRESETS, RegionSpec, region_masks, region_spec


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(sorted(REGION_PRESETS)), st.data())
def test_masks_to_label_map_inverts_to_masks_for_every_preset(name, data):
    spec = REGION_PRESETS[name]
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=4, max_side=5))
    y = data.draw(hnp.arrays(np.int64, shape, elements=st.integers(0, spec.nb_classes - 1)))
    spatial_dims = min(3, len(shape))
    masks = spec.to_masks(y, spatial_dims=spatial_dims)
    assert masks.dtype == bool
    assert masks.shape == shape[: len(shape) - spatial_dims] + (spec.nb_regions,) + shape[len(shape) - spatial_dims :]
    back = spec.to_label_map(masks, spatial_dims=spatial_dims)
    assert back.dtype == np.int64 and np.array_equal(back, y)
    masks_t = spec.to_masks(torch.from_numpy(y), spatial_dims=spatial_dims)
    assert torch.equal(masks_t, torch.from_numpy(masks))
    assert torch.equal(spec.to_label_map(masks_t, spatial_dims=spatial_dims), torch.from_numpy(y))
    assert spec.exact


def test_presets_by_hand():
    classes = np.array([0, 1, 2, 3])
    brats = REGION_PRESETS["brats"].to_masks(classes, spatial_dims=1)
    np.testing.assert_array_equal(brats, region_masks(classes))  # the data layer's WT, TC, ET
    assert REGION_PRESETS["nnunet_brats"] == REGION_PRESETS["brats"]
    monai = REGION_PRESETS["monai_brats"]
    assert monai.names == ("TC", "WT", "ET")
    np.testing.assert_array_equal(monai.to_masks(classes, spatial_dims=1), brats[[1, 0, 2]])
    post = REGION_PRESETS["brats2024"]
    assert post.names == ("ET", "NETC", "SNFH", "RC", "TC", "WT") and post.nb_classes == 5
    np.testing.assert_array_equal(
        post.to_masks(np.arange(5), spatial_dims=1).astype(int),
        [[0, 0, 0, 1, 0], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 1], [0, 1, 0, 1, 0], [0, 1, 1, 1, 0]],
    )


def test_painting_follows_paint_order_and_class_order_like_nnunet():
    spec = REGION_PRESETS["brats"]
    # inconsistent masks: ET on without TC; channel order WT(2), TC(1), ET(3): the last painted wins
    masks = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]], dtype=np.uint8)
    np.testing.assert_array_equal(spec.to_label_map(masks, spatial_dims=1), [2, 1, 3, 3])
    channel_order = RegionSpec(("TC", "WT", "ET"), ((1, 3), (1, 2, 3), (3,)), (1, 2, 3))
    assert not channel_order.exact  # WT painted after TC hides the core: why monai_brats sets paint_order
    assert REGION_PRESETS["monai_brats"].exact


def test_region_spec_from_names_specs_and_mappings():
    assert region_spec("brats") is REGION_PRESETS["brats"]
    spec = RegionSpec(("tumour",), ((1, 2, 3),), (1,))
    assert region_spec(spec) is spec
    assert region_spec({"TC": (1, 3), "WT": [1, 2, 3], "ET": (3,)}) == REGION_PRESETS["monai_brats"]
    assert region_spec({"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}) == REGION_PRESETS["brats"]
    derived = region_spec({"ET": (3,), "NETC": (1,), "SNFH": (2,), "RC": (4,), "TC": (1, 3), "WT": (1, 2, 3)})
    assert derived.exact and derived.paint_order == REGION_PRESETS["brats2024"].paint_order
    single = region_spec({"tumour": (1, 2, 3)})
    assert single.class_order == (1,) and not single.exact and single.nb_classes == 4


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((("WT", "WT"), ((1,), (2,)), (1, 2)), ValueError, "names must be unique"),
        (((), (), ()), ValueError, "names must be unique non-empty strings, at least one"),
        ((("WT",), ((0, 1),), (1,)), ValueError, r"classes\['WT'\] must be >= 1, got 0"),
        ((("WT",), ((1, 1),), (1,)), ValueError, "names a class twice"),
        ((("WT",), ((1.5,),), (1,)), TypeError, "must hold class indices"),
        ((("WT", "TC"), ((1,),), (1, 2)), ValueError, "one class set per region"),
        ((("WT",), ((1,),), (1, 2)), ValueError, r"class_order must hold one class per region \(1\)"),
        ((("WT",), "1", (1,)), TypeError, "classes must be a sequence"),
    ],
)
def test_bad_specs_name_the_field_and_value(args, error, match):
    with pytest.raises(error, match=match):
        RegionSpec(*args)


def test_bad_paint_order_preset_and_type():
    with pytest.raises(ValueError, match=r"paint_order must be a permutation of range\(2\), got \(0, 0\)"):
        RegionSpec(("a", "b"), ((1,), (2,)), (1, 2), paint_order=(0, 0))
    with pytest.raises(ValueError, match="regions must be one of"):
        region_spec("kits")
    with pytest.raises(TypeError, match="regions must be a preset name"):
        region_spec(3)


def test_bad_inputs():
    spec = REGION_PRESETS["brats"]
    with pytest.raises(ValueError, match=r"label_map must hold classes in \[0, 4\), got values in \[0, 4\]"):
        spec.to_masks(np.array([0, 4]), spatial_dims=1)
    with pytest.raises(TypeError, match="not floating"):
        spec.to_masks(torch.zeros(3), spatial_dims=1)
    with pytest.raises(ValueError, match=r"masks must have R = 3 regions .* got shape \(2, 4\)"):
        spec.to_label_map(np.zeros((2, 4), bool), spatial_dims=1)
    with pytest.raises(ValueError, match=r"masks must hold 0 or 1, got values in \[0, 2\]"):
        spec.to_label_map(np.array([[0, 2], [0, 0], [0, 0]]), spatial_dims=1)
    with pytest.raises(TypeError, match="not floating"):
        spec.to_label_map(np.zeros((3, 2)), spatial_dims=1)
    with pytest.raises(ValueError, match="spatial_dims must be <= 3, got 4"):
        spec.to_masks(np.zeros((1, 1, 1, 1), int), spatial_dims=4)
    with pytest.raises(ValueError, match=r"expected at least 3 axes, got shape \(2, 2\)"):
        spec.to_masks(np.zeros((2, 2), int))
