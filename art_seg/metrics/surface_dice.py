"""Normalised surface Dice (NSD, "surface Dice at tolerance"): the share of both surfaces lying within
``tolerance`` mm of the other surface.

Three variants, as computed by the reference tools (surfaces as in :mod:`art_seg.metrics.surface`):

- ``method="surfels"`` (default; DeepMind's ``compute_surface_dice_at_tolerance``, MONAI's
  ``compute_surface_dice(use_subvoxels=True)``): surface elements weighted by area,
  ``(area(S_p within tol) + area(S_t within tol)) / (area(S_p) + area(S_t))``; 2 or 3 axes.
- ``method="voxels"`` (MONAI's ``compute_surface_dice`` default): the same with surface voxels counted, any axes.
- ``method="voxels-mean"`` (panoptica's NSD, after GaNDLF, so BraTS 2025): the mean of the two directed shares
  of surface voxels within tolerance, ``(n(S_p within tol) / n(S_p) + n(S_t within tol) / n(S_t)) / 2``.

Empty masks (the convention of :func:`art_seg.metrics.dice_score`): both empty -> 1.0, exactly one empty -> 0.0.
DeepMind's package returns NaN for both empty, MONAI NaN (or inf) too, panoptica 0 for one empty.
"""

from __future__ import annotations

import numpy as np

from art_seg._checks import check_choice, check_number
from art_seg.metrics._inputs import ArrayLike, mask_pair
from art_seg.metrics.surface import Spacing, as_spacing, surface_distances

__all__ = ["NSD_METHODS", "nsd"]

#: The surface Dice variants (see the module docstring).
NSD_METHODS = ("surfels", "voxels", "voxels-mean")


def nsd(
    pred: ArrayLike, truth: ArrayLike, *, spacing: Spacing = None, tolerance: float, method: str = "surfels"
) -> float:
    """Normalised surface Dice of two boolean masks at ``tolerance`` mm.

    Args:
        pred: predicted mask, any shape with at least one axis (``"surfels"``: 2 or 3 axes), e.g. ``(D, H, W)``;
            bool, or numbers that are all 0 or 1.
        truth: ground-truth mask of the same shape.
        spacing: voxel size in mm: ``None`` (1 mm), one positive number for every axis, or one per axis.
        tolerance: largest distance in mm at which a surface element still counts as matched (``>= 0``).
        method: ``"surfels"`` (DeepMind), ``"voxels"`` (MONAI's default) or ``"voxels-mean"`` (panoptica).

    Returns:
        NSD in ``[0, 1]``; 1.0 when both masks are empty, 0.0 when exactly one is.

    Raises:
        ValueError: masks not 0/1 or of different shapes, a bad spacing, a negative tolerance, an unknown method
            or ``"surfels"`` on other than 2 or 3 axes.

    Example:
        >>> a, b = np.zeros((6, 6), bool), np.zeros((6, 6), bool)
        >>> a[1:4, 1:4] = b[2:5, 1:4] = True
        >>> round(nsd(a, b, tolerance=1.0), 4), nsd(a, b, tolerance=0.0, method="voxels")
        (1.0, 0.5)
    """
    pred, truth = mask_pair(pred, truth)
    if pred.ndim == 0:
        raise ValueError("pred and truth must have at least one axis, got shape ()")
    spacing = as_spacing(spacing, pred.ndim)
    check_number("tolerance", tolerance, low=0)
    check_choice("method", method, NSD_METHODS)
    has_pred, has_truth = bool(pred.any()), bool(truth.any())
    if not (has_pred and has_truth):
        return float(has_pred == has_truth)
    d = surface_distances(pred, truth, spacing, "surfels" if method == "surfels" else "voxels")
    pred_hit, truth_hit = d.pred_weights[d.pred_to_truth <= tolerance], d.truth_weights[d.truth_to_pred <= tolerance]
    if method == "voxels-mean":
        return float((pred_hit.sum() / d.pred_weights.sum() + truth_hit.sum() / d.truth_weights.sum()) / 2)
    return float((pred_hit.sum() + truth_hit.sum()) / (d.pred_weights.sum() + d.truth_weights.sum()))
