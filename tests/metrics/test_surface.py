"""Tests for art_seg.metrics.surface / surface_dice and the DeepMind HD95: the surface-element table and values
against DeepMind's ``surface_distance`` and MONAI's ``compute_surface_dice``, hand-computed cases, empty masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from art_seg.metrics import hausdorff95, nsd
from art_seg.metrics.surface import _surfel_areas

sd = pytest.importorskip("surface_distance")


def random_pair(seed: int, ndim: int = 3):
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(6, 14 if ndim == 3 else 24, size=ndim))
    a = ndimage.binary_opening(rng.random(shape) < 0.45)
    b = ndimage.binary_opening(rng.random(shape) < 0.45)
    a.flat[0] = b.flat[-1] = True  # never empty; touching the border
    return a, b, tuple(float(s) for s in rng.uniform(0.5, 2.5, size=ndim))


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (1.2, 0.7, 2.5), (0.5, 3.0, 1.0)])
def test_surfel_table_equals_deepminds(spacing):
    from surface_distance import lookup_tables

    assert np.allclose(_surfel_areas(spacing), lookup_tables.create_table_neighbour_code_to_surface_area(spacing))
    lengths = lookup_tables.create_table_neighbour_code_to_contour_length(spacing[:2])
    assert np.allclose(_surfel_areas(spacing[:2]), lengths)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("seed", range(8))
def test_surfels_match_deepmind(seed, ndim):
    """DeepMind's surface_distance 0.1 takes (gt, pred); with both masks non-empty it never reaches np.Inf
    (gone in NumPy 2), so no workaround is needed here."""
    pred, truth, spacing = random_pair(seed, ndim)
    ref = sd.compute_surface_distances(truth, pred, spacing)
    assert hausdorff95(pred, truth, spacing, method="surfels") == pytest.approx(sd.compute_robust_hausdorff(ref, 95))
    for tolerance in (0.0, 1.0, 2.5):
        expected = sd.compute_surface_dice_at_tolerance(ref, tolerance)
        assert nsd(pred, truth, spacing=spacing, tolerance=tolerance) == pytest.approx(expected)


@pytest.mark.parametrize("seed", range(6))
def test_nsd_matches_monai(seed):
    metrics = pytest.importorskip("monai.metrics")
    pred, truth, spacing = random_pair(seed)

    def one_hot(mask):
        x = torch.as_tensor(mask[None, None], dtype=torch.float32)
        return torch.cat([1 - x, x], 1)

    for tolerance in (0.5, 1.5):
        voxels = metrics.compute_surface_dice(one_hot(pred), one_hot(truth), [tolerance], spacing=list(spacing)).item()
        surfels = metrics.compute_surface_dice(
            one_hot(pred), one_hot(truth), [tolerance], spacing=list(spacing), use_subvoxels=True
        ).item()
        assert nsd(pred, truth, spacing=spacing, tolerance=tolerance, method="voxels") == pytest.approx(voxels)
        assert nsd(pred, truth, spacing=spacing, tolerance=tolerance) == pytest.approx(surfels)


@pytest.mark.parametrize("seed", range(4))
def test_voxel_hd95_unchanged_and_equal_to_medpy(seed):
    binary = pytest.importorskip("medpy.metric.binary")
    pred, truth, spacing = random_pair(seed)
    assert hausdorff95(pred, truth, spacing) == pytest.approx(binary.hd95(pred, truth, voxelspacing=spacing))
    assert hausdorff95(pred, truth, spacing, method="voxels") == hausdorff95(pred, truth, spacing)


def test_hand_computed_and_empty():
    a, b = np.zeros((8, 8, 8), bool), np.zeros((8, 8, 8), bool)
    a[2:5, 2:5, 2:5] = True
    b[3:6, 2:5, 2:5] = True  # shifted one voxel along axis 0 (2 mm)
    # surfels: the faces perpendicular to the shift are 2 mm from the other surface, everything else closer
    assert hausdorff95(a, b, (2.0, 1.0, 1.0), method="surfels") == pytest.approx(2.0)
    assert nsd(a, b, spacing=(2.0, 1.0, 1.0), tolerance=2.0) == 1.0
    assert nsd(a, a, tolerance=0.0) == 1.0
    empty = np.zeros_like(a)
    assert nsd(empty, empty, tolerance=1.0) == 1.0 and nsd(a, empty, tolerance=1.0) == 0.0
    assert nsd(empty, a, tolerance=1.0, method="voxels-mean") == 0.0
    assert hausdorff95(empty, empty, method="surfels") == 0.0
    assert hausdorff95(a, empty, method="surfels", empty_penalty=374.0) == 374.0
    one_d = np.array([0, 1, 1, 0, 0]), np.array([0, 0, 1, 1, 0])
    assert nsd(*one_d, tolerance=0.0, method="voxels") == 0.5  # any number of axes for voxel surfaces


def test_bad_options():
    a = np.ones((4, 4, 4), bool)
    with pytest.raises(ValueError, match="tolerance"):
        nsd(a, a, tolerance=-1.0)
    with pytest.raises(ValueError, match="method"):
        nsd(a, a, tolerance=1.0, method="deepmind")
    with pytest.raises(ValueError, match="method"):
        hausdorff95(a, a, method="medpy")
    with pytest.raises(ValueError, match="2 or 3 axes"):
        nsd(a[None], a[None], tolerance=1.0)
    with pytest.raises(ValueError, match="spacing"):
        nsd(a, a, spacing=(1.0, 1.0), tolerance=1.0)
