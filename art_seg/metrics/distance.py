"""Surface-distance metrics: the 95th-percentile Hausdorff distance (HD95), per mask and per BraTS region.

Definition (MedPy's ``medpy.metric.binary.hd95``, used by many BraTS papers): the surface of a mask is the mask
minus its binary erosion by the face-connected (cross) structuring element, voxels on the array border counting
as surface; the directed distances are, for each surface voxel of one mask, the Euclidean distance in mm to the
nearest surface voxel of the other (``scipy.ndimage.distance_transform_edt`` with ``sampling=spacing``); HD95
is the 95th percentile (numpy's linear interpolation) of both directed sets pooled together. MONAI's
``compute_hausdorff_distance(percentile=95)`` and DeepMind's ``surface-distance`` (which also weights surface
elements by area) take instead the larger of the two directed 95th percentiles, so their values differ slightly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from art_seg._checks import check_number
from art_seg.metrics._inputs import ArrayLike, Regions, mask_pair, region_pair

__all__ = ["hausdorff95", "hd95_per_region"]

Spacing = float | Sequence[float] | None


def _as_spacing(spacing: Spacing, ndim: int) -> tuple[float, ...]:
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


def _crop_to_union(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both masks cropped to the bounding box of their union plus a one-voxel margin.

    Surfaces and surface distances are unchanged: the margin keeps the erosion's neighbourhood, a mask that
    touches the array border still touches the crop's border, and every surface voxel stays inside.
    """
    union = pred | truth
    box = []
    for axis in range(union.ndim):
        hits = np.flatnonzero(union.any(axis=tuple(a for a in range(union.ndim) if a != axis)))
        box.append(slice(max(hits[0] - 1, 0), hits[-1] + 2))
    return pred[tuple(box)], truth[tuple(box)]


def _surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with a face neighbour outside it (or on the array border)."""
    return mask & ~ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(mask.ndim, 1))


def hausdorff95(
    pred: ArrayLike, truth: ArrayLike, spacing: Spacing = None, *, empty_penalty: float | None = None
) -> float:
    """95th-percentile symmetric Hausdorff distance in mm between two boolean masks (MedPy's definition).

    HD95 is the 95th percentile of the pooled surface distances from ``pred`` to ``truth`` and from ``truth``
    to ``pred`` (see the module docstring for the exact surface and percentile). It is symmetric in its
    arguments and 0.0 for identical masks.

    Empty masks: both empty -> 0.0; exactly one empty -> ``empty_penalty``, by default the diagonal of the
    whole volume in mm, ``sqrt(sum((shape[i] * spacing[i]) ** 2))``. For the BraTS grid ``240 x 240 x 155`` at
    1 mm this is ``sqrt(139225) = 373.13`` mm, the value BraTS evaluation toolkits assign.

    Args:
        pred: predicted mask, any shape with at least one axis (e.g. ``(D, H, W)`` or ``(H, W)``); bool, or
            numbers that are all 0 or 1.
        truth: ground-truth mask of the same shape.
        spacing: voxel size in mm: ``None`` (1 mm), one positive number for every axis, or one per axis.
        empty_penalty: value in mm returned when exactly one mask is empty (``>= 0``); ``None`` for the volume
            diagonal.

    Returns:
        HD95 in mm.

    Raises:
        ValueError: if a mask holds values other than 0/1, the shapes differ or have no axis, a spacing is not
            positive or does not match the number of axes, or ``empty_penalty`` is negative.

    Example:
        >>> a, b = np.zeros((8, 3, 3), bool), np.zeros((8, 3, 3), bool)
        >>> a[1, 1, 1] = b[6, 1, 1] = True
        >>> hausdorff95(a, b, spacing=(2.0, 1.0, 1.0))
        10.0
    """
    pred, truth = mask_pair(pred, truth)
    if pred.ndim == 0:
        raise ValueError("pred and truth must have at least one axis, got shape ()")
    spacing = _as_spacing(spacing, pred.ndim)
    if empty_penalty is not None:
        check_number("empty_penalty", empty_penalty, low=0)
    has_pred, has_truth = bool(pred.any()), bool(truth.any())
    if not (has_pred or has_truth):
        return 0.0
    if not (has_pred and has_truth):
        if empty_penalty is None:
            return float(np.sqrt(sum((size * step) ** 2 for size, step in zip(pred.shape, spacing))))
        return float(empty_penalty)
    pred_surface, truth_surface = (_surface(mask) for mask in _crop_to_union(pred, truth))
    distances = np.concatenate(
        [
            ndimage.distance_transform_edt(~truth_surface, sampling=spacing)[pred_surface],
            ndimage.distance_transform_edt(~pred_surface, sampling=spacing)[truth_surface],
        ]
    )
    return float(np.percentile(distances, 95))


def hd95_per_region(
    pred: ArrayLike,
    truth: ArrayLike,
    spacing: Spacing = None,
    regions: Regions | None = None,
    *,
    empty_penalty: float | None = None,
) -> dict[str, float]:
    """:func:`hausdorff95` of each region (BraTS WT, TC and ET by default) of two class-index maps.

    Args:
        pred: integer class-index map, any shape with at least one axis (e.g. ``(D, H, W)``).
        truth: integer class-index map of the same shape.
        spacing: voxel size in mm (``None``: 1 mm; a number; or one per axis).
        regions: mapping region name -> class indices; default
            :data:`art_seg.data.labels.REGION_CLASSES` (maps must then hold class indices ``0 .. 3``).
        empty_penalty: HD95 in mm when a region is empty in exactly one map; ``None`` for the volume diagonal.

    Returns:
        ``{region name: HD95 in mm}`` in the order of ``regions``.

    Raises:
        ValueError: as :func:`hausdorff95` and :func:`art_seg.metrics.dice_per_region`.

    Example:
        >>> hd95_per_region(np.array([[0, 3, 3, 0]]), np.array([[0, 3, 0, 3]]))
        {'WT': 1.0, 'TC': 1.0, 'ET': 1.0}
    """
    pred, truth, regions = region_pair(pred, truth, regions)
    return {
        name: hausdorff95(np.isin(pred, classes), np.isin(truth, classes), spacing, empty_penalty=empty_penalty)
        for name, classes in regions.items()
    }
