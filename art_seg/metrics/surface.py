"""Surfaces of masks and the directed distances between them, the ground shared by HD95 and surface Dice (NSD).

Two definitions of "surface", both in use by the reference tools:

- ``"voxels"`` (MedPy, MONAI's defaults, panoptica): the surface of a mask is the mask minus its binary erosion
  by the face-connected (cross) structuring element, voxels on the array border counting as surface; every
  surface voxel has weight 1; a distance is from a voxel centre to the nearest surface voxel centre of the other
  mask. Any number of axes.
- ``"surfels"`` (DeepMind's ``surface-distance``, used by the BraTS 2023/2024 lesion-wise code, and MONAI with
  ``use_subvoxels=True``): the surface lives on the lattice of voxel corners; every corner whose 2 x 2 (x 2)
  neighbourhood of voxels is neither all inside nor all outside is a surface element, weighted by the area (3-D)
  or length (2-D) in mm of the marching-cubes (marching-squares) surface inside that neighbourhood; a distance is
  between such corners. Two or three axes only, as in DeepMind's package.

Distances are Euclidean in mm (``scipy.ndimage.distance_transform_edt`` with ``sampling=spacing``); both masks
are cropped to the bounding box of their union first (plus a margin), which changes no distance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from art_seg._checks import check_choice, check_number
from art_seg.metrics._surfels import NORMALS_X8

__all__ = ["SURFACE_METHODS", "SurfaceDistances", "as_spacing", "surface_distances"]

Spacing = float | Sequence[float] | None

#: The two surface definitions (see the module docstring).
SURFACE_METHODS = ("voxels", "surfels")


class SurfaceDistances(NamedTuple):
    """Directed surface distances in mm and the weight of each surface element (1 for voxels, mm^2 or mm for
    surfels). A side whose mask is empty has no element; the other side's distances are then ``inf``."""

    pred_to_truth: np.ndarray
    pred_weights: np.ndarray
    truth_to_pred: np.ndarray
    truth_weights: np.ndarray


def as_spacing(spacing: Spacing, ndim: int) -> tuple[float, ...]:
    """Voxel spacing in mm, one per axis: ``None`` is 1 mm, a number is used on every axis."""
    if spacing is None:
        return (1.0,) * ndim
    if np.ndim(spacing) == 0:
        check_number("spacing", spacing, low=0, low_inclusive=False)
        return (float(spacing),) * ndim
    values = tuple(np.asarray(spacing).tolist())
    if len(values) != ndim:
        raise ValueError(f"spacing must be a number or one value per axis ({ndim}), got {spacing!r}")
    for axis, value in enumerate(values):
        check_number(f"spacing[{axis}]", value, low=0, low_inclusive=False)
    return tuple(float(value) for value in values)


def crop_to_union(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both masks cropped to the bounding box of their union plus a one-voxel margin (the union is not empty).

    Surfaces and surface distances are unchanged: the margin keeps the erosion's neighbourhood, a mask that
    touches the array border still touches the crop's border, and every surface voxel stays inside.
    """
    union = pred | truth
    box = []
    for axis in range(union.ndim):
        hits = np.flatnonzero(union.any(axis=tuple(a for a in range(union.ndim) if a != axis)))
        box.append(slice(max(hits[0] - 1, 0), hits[-1] + 2))
    return pred[tuple(box)], truth[tuple(box)]


def voxel_surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with a face neighbour outside it (or on the array border)."""
    return mask & ~ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(mask.ndim, 1))


def _surfel_areas(spacing: tuple[float, ...]) -> np.ndarray:
    """Area (3-D, mm^2) or length (2-D, mm) of the surface inside each 2^ndim neighbourhood code."""
    if len(spacing) == 3:
        scale = np.array([spacing[1] * spacing[2], spacing[0] * spacing[2], spacing[0] * spacing[1]]) / 8.0
        return np.array([np.linalg.norm(np.array(normals) * scale, axis=1).sum() for normals in NORMALS_X8])
    # 2-D marching squares: corner (a, b) has bit 3 - (2 a + b); one corner in or out -> half a cell diagonal,
    # two corners on one side -> one cell edge, two opposite corners -> two half diagonals.
    half_diagonal = 0.5 * float(np.hypot(*spacing))
    lengths = np.zeros(16)
    for code in range(1, 15):
        inside = [(a, b) for a in (0, 1) for b in (0, 1) if code >> (3 - 2 * a - b) & 1]
        if len(inside) != 2:
            lengths[code] = half_diagonal
        elif inside[0][0] == inside[1][0]:  # same row: the contour runs along axis 1
            lengths[code] = spacing[1]
        elif inside[0][1] == inside[1][1]:  # same column: along axis 0
            lengths[code] = spacing[0]
        else:
            lengths[code] = 2 * half_diagonal
    return lengths


def _surfels(mask: np.ndarray, areas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Surface corners of ``mask`` on the corner lattice (shape + 1 per axis) and the area of each."""
    padded = np.pad(mask, 1).astype(np.uint8)
    ndim, code = mask.ndim, np.zeros(tuple(n + 1 for n in mask.shape), dtype=np.intp)
    for bit, offset in enumerate(reversed(list(np.ndindex(*(2,) * ndim)))):
        code |= padded[tuple(slice(o, o + n + 1) for o, n in zip(offset, mask.shape))].astype(np.intp) << bit
    border = (code != 0) & (code != 2 ** (2**ndim) - 1)
    return border, areas[code]


def surface_distances(
    pred: np.ndarray, truth: np.ndarray, spacing: tuple[float, ...], method: str = "voxels"
) -> SurfaceDistances:
    """Directed distances between the surfaces of two boolean masks, with the elements' weights.

    Args:
        pred, truth: boolean masks of the same shape (checked by the caller); at least one is not empty.
        spacing: voxel size in mm per axis (from :func:`as_spacing`).
        method: ``"voxels"`` or ``"surfels"`` (2 or 3 axes only), see the module docstring.

    Returns:
        :class:`SurfaceDistances`; distances from an element to an empty mask's (missing) surface are ``inf``.

    Raises:
        ValueError: an unknown ``method``, or ``"surfels"`` on masks with other than 2 or 3 axes.
    """
    check_choice("method", method, SURFACE_METHODS)
    if method == "surfels" and pred.ndim not in (2, 3):
        raise ValueError(f"method='surfels' needs masks with 2 or 3 axes (DeepMind's definition), got {pred.ndim}")
    pred, truth = crop_to_union(pred, truth)
    if method == "voxels":
        (pred_surface, pred_weights), (truth_surface, truth_weights) = (
            (surface, np.ones(np.count_nonzero(surface))) for surface in (voxel_surface(pred), voxel_surface(truth))
        )
    else:
        areas = _surfel_areas(spacing)
        (pred_surface, pred_areas), (truth_surface, truth_areas) = _surfels(pred, areas), _surfels(truth, areas)
        pred_weights, truth_weights = pred_areas[pred_surface], truth_areas[truth_surface]

    def distance_map(surface: np.ndarray) -> np.ndarray:
        if not surface.any():
            return np.full(surface.shape, np.inf)
        return ndimage.distance_transform_edt(~surface, sampling=spacing)

    pred_to_truth = distance_map(truth_surface)[pred_surface]
    return SurfaceDistances(pred_to_truth, pred_weights, distance_map(pred_surface)[truth_surface], truth_weights)


def weighted_percentile(distances: np.ndarray, weights: np.ndarray, percent: float) -> float:
    """DeepMind's area-weighted percentile: the smallest distance at which the cumulative weight of the elements
    sorted by (distance, weight) reaches ``percent`` % of the total; ``inf`` without elements."""
    if distances.size == 0:
        return float("inf")
    order = np.lexsort((weights, distances))
    cumulative = np.cumsum(weights[order]) / np.sum(weights)
    index = int(np.searchsorted(cumulative, percent / 100.0))
    return float(distances[order][min(index, distances.size - 1)])
