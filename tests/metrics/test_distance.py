"""Tests for art_seg.metrics.distance: HD95 on shapes with known answers, anisotropic spacing, empty masks,
a brute-force reference, per-region HD95 and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from scipy.spatial.distance import cdist

from art_seg.metrics import hausdorff95, hd95_per_region


def reference_hd95(pred: np.ndarray, truth: np.ndarray, spacing: tuple[float, ...]) -> float:
    """Independent HD95: surface = voxels with a face neighbour outside (or off the array), all pairwise distances."""

    def surface_points(mask: np.ndarray) -> np.ndarray:
        padded = np.pad(mask, 1)
        interior = tuple(slice(1, -1) for _ in range(mask.ndim))
        inside = np.ones_like(mask)
        for axis in range(mask.ndim):
            for step in (-1, 1):
                inside &= np.roll(padded, step, axis)[interior]
        return np.argwhere(mask & ~inside) * np.asarray(spacing)

    distances = cdist(surface_points(pred), surface_points(truth))
    return float(np.percentile(np.concatenate([distances.min(axis=1), distances.min(axis=0)]), 95))


def single_voxels(shape, first, second) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.zeros(shape, bool), np.zeros(shape, bool)
    a[first] = True
    b[second] = True
    return a, b


@pytest.mark.parametrize(
    ("first", "second", "spacing", "expected"),
    [
        ((1, 2, 2), (6, 2, 2), (2.0, 1.0, 1.0), 10.0),  # 5 voxels along axis 0, 2 mm each
        ((2, 1, 2), (2, 6, 2), (2.0, 1.0, 1.0), 5.0),  # 5 voxels along axis 1, 1 mm each
        ((0, 0, 2), (3, 4, 2), None, 5.0),  # 3-4-5 triangle
        ((0, 0, 2), (3, 4, 2), (2.0, 1.5, 9.0), math.sqrt(6.0**2 + 6.0**2)),
        ((0, 0, 0), (3, 4, 4), 0.5, 0.5 * math.sqrt(9 + 16 + 16)),  # scalar spacing
    ],
)
def test_single_voxels(first, second, spacing, expected):
    a, b = single_voxels((8, 7, 5), first, second)
    assert hausdorff95(a, b, spacing) == pytest.approx(expected)
    assert hausdorff95(b, a, spacing) == pytest.approx(expected)


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("shift", [1, 2, 3])
def test_shifted_cube(axis, shift):
    """A 6^3 cube shifted by k voxels: every surface distance is <= k * spacing[axis], and the two faces
    perpendicular to the shift (about a sixth of each surface) are exactly that far, so HD95 = k * spacing."""
    spacing = (1.5, 0.8, 2.0)
    a = np.zeros((14, 14, 14), bool)
    a[2:8, 2:8, 2:8] = True
    b = np.roll(a, shift, axis=axis)
    assert hausdorff95(a, b, spacing) == pytest.approx(shift * spacing[axis])
    assert hausdorff95(a, b, spacing) == pytest.approx(reference_hd95(a, b, spacing))


@pytest.mark.parametrize("spacing", [1.0, 2.0])
def test_cube_around_its_centre_voxel(spacing):
    """Solid 5^3 cube vs its centre voxel. Directed centre -> cube surface: 2 (one value). Cube surface -> centre:
    98 voxels at offsets in {-2..2}^3 with a coordinate +-2, the largest sqrt(12) at the 8 corners. Pooled and
    sorted (99 values) the 95th percentile interpolates values 93 and 94, both corners: 2 * sqrt(3) voxels."""
    cube = np.zeros((9, 9, 9), bool)
    cube[2:7, 2:7, 2:7] = True
    centre, _ = single_voxels((9, 9, 9), (4, 4, 4), (0, 0, 0))
    assert hausdorff95(cube, centre, spacing) == pytest.approx(2 * math.sqrt(3) * spacing)


def test_square_around_its_centre_pixel_2d():
    """2-D: 5x5 square vs its centre. Values pooled: 2 (centre -> ring), ring -> centre: 4 x 2, 8 x sqrt(5),
    4 x sqrt(8). 17 values, the 95th percentile interpolates values 15 and 16: sqrt(8)."""
    square = np.zeros((7, 7), bool)
    square[1:6, 1:6] = True
    centre = np.zeros((7, 7), bool)
    centre[3, 3] = True
    assert hausdorff95(square, centre) == pytest.approx(math.sqrt(8))
    assert hausdorff95(torch.from_numpy(square), torch.from_numpy(centre), (1.0, 3.0)) == pytest.approx(
        reference_hd95(square, centre, (1.0, 3.0))
    )


@pytest.mark.parametrize("seed", range(4))
def test_matches_brute_force_reference(seed):
    """Random blobs, some touching the array border (surface there too), anisotropic spacing."""
    rng = np.random.default_rng(seed)
    shape = (10, 12, 9)
    spacing = tuple(rng.uniform(0.5, 2.5, size=3))
    a = ndimage.gaussian_filter(rng.normal(size=shape), 1.5) > 0.1
    b = ndimage.gaussian_filter(rng.normal(size=shape), 1.5) > 0.1
    assert a.any() and b.any()
    assert hausdorff95(a, b, spacing) == pytest.approx(reference_hd95(a, b, spacing))
    assert hausdorff95(a, a, spacing) == 0.0


def test_empty_masks():
    empty, one = single_voxels((10, 20, 30), (0, 0, 0), (0, 0, 0))
    empty[...] = False
    assert hausdorff95(empty, empty) == 0.0
    diagonal = math.sqrt(10**2 + 20**2 + 30**2)
    assert hausdorff95(one, empty) == pytest.approx(diagonal)
    assert hausdorff95(empty, one) == pytest.approx(diagonal)
    assert hausdorff95(empty, one, (2.0, 0.5, 1.0)) == pytest.approx(math.sqrt(20**2 + 10**2 + 30**2))
    assert hausdorff95(empty, one, empty_penalty=50) == 50.0
    assert hausdorff95(empty, empty, empty_penalty=50) == 0.0


def test_default_penalty_is_the_brats_value():
    """BraTS toolkits give 373.13 mm to a region missing in one map: the diagonal of the 240x240x155 1 mm grid."""
    shape = (240, 240, 155)
    empty, one = np.zeros(shape, bool), np.zeros(shape, bool)
    one[100, 100, 70] = True
    assert hausdorff95(one, empty) == pytest.approx(math.sqrt(139225)) == pytest.approx(373.13, abs=5e-3)


def test_hd95_per_region():
    # One row, 2 mm per column; every voxel of a one-voxel-thick mask is surface.
    # WT: pred columns {1, 2}, truth {1, 3}: pooled distances 0, 1, 0, 1 columns -> p95 = 1 column = 2 mm.
    # TC = ET: pred {1, 2}, truth {3}: pred -> truth 2, 1; truth -> pred 1; sorted 1, 1, 2 -> p95 at
    # position 0.95 * 2 = 1.9 -> 1 + 0.9 * (2 - 1) = 1.9 columns = 3.8 mm.
    pred = np.array([[0, 3, 3, 0, 0]])
    truth = np.array([[0, 2, 0, 3, 0]])
    hd = hd95_per_region(pred, truth, spacing=(1.0, 2.0))
    assert list(hd) == ["WT", "TC", "ET"]
    assert hd == pytest.approx({"WT": 2.0, "TC": 3.8, "ET": 3.8})


def test_hd95_per_region_empty_region_and_custom_regions():
    pred = np.zeros((4, 4, 4), dtype=np.int64)
    truth = pred.copy()
    pred[1, 1, 1] = 2
    truth[1, 1, 1] = 2
    hd = hd95_per_region(pred, truth, empty_penalty=99.0)
    assert hd == {"WT": 0.0, "TC": 0.0, "ET": 0.0}
    truth[2, 2, 2] = 3
    hd = hd95_per_region(pred, truth, 2.0, {"ET": (3,), "edema": (2,)})
    # ET only in truth: the default penalty, the diagonal of the 4^3 volume at 2 mm
    assert hd == pytest.approx({"ET": math.sqrt(3 * 8.0**2), "edema": 0.0})


BAD_INPUTS = [
    ({"spacing": 0}, ValueError, r"spacing must be > 0, got 0"),
    ({"spacing": (1.0, -1.0, 1.0)}, ValueError, r"spacing\[1\] must be > 0, got -1\.0"),
    ({"spacing": (1.0, 1.0)}, ValueError, r"spacing must be a number or one value per axis \(3\), got \(1\.0, 1\.0\)"),
    ({"spacing": (1.0, float("nan"), 1.0)}, ValueError, r"spacing\[1\] must be finite"),
    ({"spacing": "1"}, TypeError, r"spacing must be a real number, got '1'"),
    ({"empty_penalty": -1}, ValueError, r"empty_penalty must be >= 0, got -1"),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), BAD_INPUTS)
def test_bad_options(kwargs, error, match):
    a, b = single_voxels((3, 3, 3), (0, 0, 0), (1, 1, 1))
    with pytest.raises(error, match=match):
        hausdorff95(a, b, **kwargs)


def test_bad_masks():
    with pytest.raises(ValueError, match=r"pred \(3, 3\) and truth \(3, 4\)"):
        hausdorff95(np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"truth must be a boolean mask.*\[3\]"):
        hausdorff95(np.zeros(3), np.array([0, 1, 3]))
    with pytest.raises(ValueError, match="at least one axis"):
        hausdorff95(np.array(True), np.array(True))
    with pytest.raises(ValueError, match=r"pred must hold class indices 0\.\.3, got value\(s\) \[4\]"):
        hd95_per_region(np.array([0, 4]), np.array([0, 3]))


@pytest.mark.parametrize("as_torch", [False, True], ids=["numpy", "torch"])
def test_inputs_not_modified(as_torch):
    a, b = single_voxels((5, 5, 5), (1, 1, 1), (3, 3, 3))
    a, b = a.astype(np.uint8), b.astype(np.uint8)
    spacing = np.array([1.0, 2.0, 3.0])
    copies = (a.copy(), b.copy(), spacing.copy())
    if as_torch:
        hausdorff95(torch.from_numpy(a), torch.from_numpy(b), spacing)
        hd95_per_region(torch.from_numpy(a * 3), torch.from_numpy(b))
    else:
        hausdorff95(a, b, spacing)
    for array, copy in zip((a, b, spacing), copies):
        np.testing.assert_array_equal(array, copy)
