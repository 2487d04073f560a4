"""Instance-matched metrics under the BraTS 2025 rules (``brats-evaluation``, built on panoptica).

Per region:

1. instances are the connected components of each mask (panoptica's rule: all neighbours, 26 in 3-D, for three
   or more axes; face neighbours for one or two axes);
2. reference and predicted instances are matched one to one by maximum bipartite matching
   (``scipy.optimize.linear_sum_assignment``) on their Dice, pairs with Dice ``>= match_threshold`` (1e-6)
   only: matched pairs are true positives, unmatched predictions false positives, unmatched references false
   negatives; precision ``TP / (TP + FP)``, recall ``TP / (TP + FN)``, F1 ``2 TP / (2 TP + FP + FN)``
   (panoptica's recognition quality);
3. each matched pair gets Dice, HD95 (MedPy's pooled definition, with spacing) and NSD (panoptica's variant,
   ``method="voxels-mean"`` of :func:`~art_seg.metrics.nsd`, at ``nsd_tolerance``, default the smallest
   spacing); ``dice``, ``hd95`` and ``nsd`` are their means over the matched pairs;
4. global metrics compare the whole region masks: ``global_dice``, ``global_hd95``, ``global_nsd``.

Empty cases, as panoptica reports them except for HD95: no instance on either side -> every score NaN (and
precision, recall undefined -> NaN); instances on one side only, or no match -> Dice, NSD and F1 0, HD95
``empty_penalty`` (373 mm, the value ``brats-evaluation``'s result parser puts in place of panoptica's inf);
precision (recall) is NaN when there is no prediction (reference). Panoptica applies the same rule to the
global metrics: without a matched instance the global HD95 is the penalty and the global NSD 0, even when the
masks are not empty. Unlike panoptica, whose global metrics ignore the voxel spacing, the global HD95 and NSD
here use it.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from art_seg._checks import check_number
from art_seg.data.regions import RegionSpec
from art_seg.metrics._inputs import ArrayLike, Regions, region_masks
from art_seg.metrics.distance import hausdorff95
from art_seg.metrics.lesions import connected_lesions
from art_seg.metrics.overlap import dice_score
from art_seg.metrics.surface import Spacing, as_spacing
from art_seg.metrics.surface_dice import nsd

__all__ = ["matched_instances"]

_NAN = float("nan")


def _match(truth_labels: np.ndarray, nb_truth: int, pred_labels: np.ndarray, nb_pred: int, threshold: float):
    """Matched ``(truth id, pred id)`` pairs (1-based) maximising the summed Dice of pairs with Dice >= threshold."""
    both = (truth_labels > 0) & (pred_labels > 0)
    if not both.any():
        return []
    pairs, overlap = np.unique(
        truth_labels[both].astype(np.int64) * (nb_pred + 1) + pred_labels[both], return_counts=True
    )
    truth_sizes = np.bincount(truth_labels.ravel(), minlength=nb_truth + 1)
    pred_sizes = np.bincount(pred_labels.ravel(), minlength=nb_pred + 1)
    cost = np.full((nb_truth, nb_pred), 1.0 + 1e-6)
    for pair, count in zip(pairs, overlap):
        t, p = divmod(int(pair), nb_pred + 1)
        dice = 2.0 * count / (truth_sizes[t] + pred_sizes[p])
        if dice >= threshold:
            cost[t - 1, p - 1] = 1.0 - dice
    rows, cols = linear_sum_assignment(cost)
    return [(int(r) + 1, int(c) + 1) for r, c in zip(rows, cols) if cost[r, c] < 1.0]


def _instance_scores(pred, truth, spacing, tolerance, connectivity, threshold, penalty):
    pred_labels, nb_pred = connected_lesions(pred, connectivity)
    truth_labels, nb_truth = connected_lesions(truth, connectivity)
    matches = _match(truth_labels, nb_truth, pred_labels, nb_pred, threshold)
    voxel_volume = float(np.prod(spacing))
    per_instance = {t: {"volume": np.count_nonzero(truth_labels == t) * voxel_volume, "matched": False}
                    for t in range(1, nb_truth + 1)}  # fmt: skip
    for t, p in matches:
        ref, found = truth_labels == t, pred_labels == p
        per_instance[t].update(
            matched=True,
            dice=dice_score(found, ref),
            hd95=hausdorff95(found, ref, spacing),
            nsd=nsd(found, ref, spacing=spacing, tolerance=tolerance, method="voxels-mean"),
        )
    tp = len(matches)
    fp, fn = nb_pred - tp, nb_truth - tp
    matched = [v for v in per_instance.values() if v["matched"]]
    anything = nb_pred + nb_truth > 0

    def mean(key: str, none: float) -> float:
        return float(np.mean([v[key] for v in matched])) if matched else (none if anything else _NAN)

    return {
        "dice": mean("dice", 0.0),
        "hd95": mean("hd95", penalty),
        "nsd": mean("nsd", 0.0),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": tp / (tp + fp) if tp + fp else _NAN,
        "recall": tp / (tp + fn) if tp + fn else _NAN,
        "f1": 2 * tp / (2 * tp + fp + fn) if anything else _NAN,
        "nb_truth_lesions": nb_truth,
        "nb_pred_lesions": nb_pred,
        "instances": list(per_instance.values()),
        "global_dice": dice_score(pred, truth) if anything else _NAN,
        "global_hd95": hausdorff95(pred, truth, spacing) if tp else mean("hd95", penalty),
        "global_nsd": nsd(pred, truth, spacing=spacing, tolerance=tolerance, method="voxels-mean")
        if tp
        else mean("nsd", 0.0),
    }


def matched_instances(
    pred: ArrayLike,
    truth: ArrayLike,
    *,
    spacing: Spacing = None,
    regions: Regions | str | RegionSpec | None = None,
    nsd_tolerance: float | None = None,
    connectivity: int | None = None,
    match_threshold: float = 1e-6,
    empty_penalty: float = 373.0,
) -> dict[str, dict[str, object]]:
    """BraTS 2025 instance-matched metrics per region (rules and empty cases in the module docstring).

    Args:
        pred: predicted integer class-index map (``(D, H, W)``, any number of axes) or boolean mask(s), as in
            :func:`~art_seg.metrics.lesion_wise`.
        truth: ground truth of the same shape and kind.
        spacing: voxel size in mm (``None``: 1 mm; a number; or one per spatial axis).
        regions: as in :func:`~art_seg.metrics.lesion_wise` (default BraTS WT, TC, ET). The 2025 GLI regions are
            the ``"brats2024"`` preset.
        nsd_tolerance: NSD tolerance in mm; ``None`` for the smallest spacing (panoptica's default).
        connectivity: scipy connectivity of the instances, 1 .. ndim; ``None`` for panoptica's rule.
        match_threshold: smallest Dice of a pair that may be matched (``> 0``).
        empty_penalty: HD95 in mm where there is nothing to compare with (373 in BraTS 2025).

    Returns:
        ``{region: {...}}`` with ``dice``, ``hd95``, ``nsd`` (means over matched instances), ``tp``, ``fp``,
        ``fn``, ``precision``, ``recall``, ``f1``, ``nb_truth_lesions``, ``nb_pred_lesions``, ``instances``
        (per reference instance: ``volume`` mm^3, ``matched``, and ``dice``, ``hd95``, ``nsd`` when matched) and
        ``global_dice``, ``global_hd95``, ``global_nsd``.

    Raises:
        ValueError: bad inputs (as :func:`~art_seg.metrics.lesion_wise`), a negative tolerance or penalty, a
            connectivity outside 1 .. ndim, or a threshold outside ``(0, 1]``.

    Example:
        >>> truth = np.zeros((12, 12, 12), np.int64); truth[2:7, 2:7, 2:7] = 2
        >>> pred = np.zeros_like(truth); pred[3:8, 2:7, 2:7] = 2; pred[10, 10, 10] = 2
        >>> wt = matched_instances(pred, truth)["WT"]
        >>> wt["dice"], wt["tp"], wt["fp"], round(wt["f1"], 3)
        (0.8, 1, 1, 0.667)
    """
    masks = region_masks(pred, truth, regions)
    ndim = next(iter(masks.values()))[0].ndim
    if ndim == 0:
        raise ValueError("pred and truth must have at least one spatial axis, got shape ()")
    spacing = as_spacing(spacing, ndim)
    tolerance = min(spacing) if nsd_tolerance is None else nsd_tolerance
    check_number("nsd_tolerance", tolerance, low=0)
    if connectivity is None:
        connectivity = ndim if ndim >= 3 else 1
    check_number("connectivity", connectivity, low=1, high=ndim, integer=True)
    check_number("match_threshold", match_threshold, low=0, high=1, low_inclusive=False)
    check_number("empty_penalty", empty_penalty, low=0)
    return {
        name: _instance_scores(p, t, spacing, tolerance, connectivity, match_threshold, float(empty_penalty))
        for name, (p, t) in masks.items()
    }
