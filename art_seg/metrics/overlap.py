"""Overlap metrics: Dice on masks, per class and per BraTS region; sensitivity and specificity.

Every function takes numpy arrays or torch tensors (copied to the CPU) of any number of dimensions (usually
``(D, H, W)`` or ``(H, W)``), leaves its inputs unchanged and returns plain floats or ``float64`` arrays.
An empty denominator means there was nothing to get wrong and scores 1.0 (see each function).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from art_seg._checks import check_number, check_type
from art_seg.metrics._inputs import ArrayLike, Regions, as_class_map, check_same_shape, mask_pair, region_pair

__all__ = ["dice_per_class", "dice_per_region", "dice_score", "sensitivity", "specificity"]


def _dice_from_counts(intersection: np.ndarray, pred_sum: np.ndarray, truth_sum: np.ndarray) -> np.ndarray:
    """``2 |P & T| / (|P| + |T|)``, and 1.0 where both are empty."""
    total = pred_sum + truth_sum
    return np.where(total == 0, 1.0, 2.0 * intersection / np.maximum(total, 1))


def dice_score(pred: ArrayLike, truth: ArrayLike) -> float:
    """Dice coefficient ``2 |P & T| / (|P| + |T|)`` of two boolean masks.

    BraTS convention for an empty ground truth: 1.0 if ``pred`` is empty too, else 0.0.

    Args:
        pred: predicted mask, any shape (e.g. ``(D, H, W)``); bool, or numbers that are all 0 or 1.
        truth: ground-truth mask of the same shape.

    Returns:
        Dice in ``[0, 1]``.

    Raises:
        ValueError: if a mask holds values other than 0/1 or the shapes differ.
        TypeError: if an input is neither a numpy array nor a torch tensor.

    Example:
        >>> dice_score(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0]))
        0.5
    """
    pred, truth = mask_pair(pred, truth)
    return float(_dice_from_counts(np.count_nonzero(pred & truth), np.count_nonzero(pred), np.count_nonzero(truth)))


def dice_per_class(
    pred: ArrayLike, truth: ArrayLike, nb_classes: int, *, include_background: bool = False
) -> np.ndarray:
    """Dice of each class of two class-index maps (one-vs-rest masks ``pred == k`` and ``truth == k``).

    A class absent from both maps scores 1.0, absent from ``truth`` only 0.0 (as :func:`dice_score`).

    Args:
        pred: integer class-index map, any shape (e.g. ``(D, H, W)``), values ``0 .. nb_classes - 1``.
        truth: integer class-index map of the same shape and range.
        nb_classes: number of classes ``K``, class 0 being the background.
        include_background: keep class 0. When ``False`` (default, as MONAI) the result leaves it out.

    Returns:
        ``float64`` array ``(K,)`` for classes ``0 .. K-1``, or ``(K - 1,)`` for classes ``1 .. K-1``
        when ``include_background`` is ``False``.

    Raises:
        ValueError: if a map is not integer, holds a value outside ``0 .. nb_classes - 1`` (the message names
            the map and the value), the shapes differ, or ``nb_classes`` is below 1 (below 2 without background).

    Example:
        >>> dice_per_class(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2]), 3).tolist()
        [0.6666666666666666, 0.6666666666666666]
    """
    check_type("include_background", include_background, bool)
    check_number("nb_classes", nb_classes, low=1 if include_background else 2, integer=True)
    pred, truth = as_class_map("pred", pred, nb_classes), as_class_map("truth", truth, nb_classes)
    check_same_shape(pred, truth)
    pair_index = truth.ravel().astype(np.int64) * nb_classes + pred.ravel().astype(np.int64)
    confusion = np.bincount(pair_index, minlength=nb_classes * nb_classes).reshape(nb_classes, nb_classes)
    dice = _dice_from_counts(np.diag(confusion), confusion.sum(axis=0), confusion.sum(axis=1))
    return dice if include_background else dice[1:]


def dice_per_region(pred: ArrayLike, truth: ArrayLike, regions: Regions | None = None) -> dict[str, float]:
    """Dice of each region, a region being the union of some classes (BraTS WT, TC and ET by default).

    Regions may overlap (WT contains TC contains ET); each is scored as its own binary mask with
    :func:`dice_score`, so a region empty in ``truth`` scores 1.0 or 0.0 as there.

    Args:
        pred: integer class-index map, any shape (e.g. ``(D, H, W)``).
        truth: integer class-index map of the same shape.
        regions: mapping region name -> class indices; default
            :data:`art_seg.data.labels.REGION_CLASSES` = ``{"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}``,
            in which case the maps must hold class indices ``0 .. 3`` (not BraTS label values: convert those
            with :func:`art_seg.data.labels_to_classes`). With custom regions any non-negative index is allowed.

    Returns:
        ``{region name: Dice}`` in the order of ``regions``.

    Raises:
        ValueError: if a map is not integer or holds an out-of-range value, the shapes differ, or ``regions``
            is empty or lists no class for a region.

    Example:
        >>> dice_per_region(np.array([0, 1, 2, 3]), np.array([0, 1, 3, 3]))
        {'WT': 1.0, 'TC': 0.8, 'ET': 0.6666666666666666}
    """
    pred, truth, regions = region_pair(pred, truth, regions)
    return {name: dice_score(np.isin(pred, classes), np.isin(truth, classes)) for name, classes in regions.items()}


def mean_dice_per_region(
    preds: ArrayLike | Sequence[ArrayLike], truths: ArrayLike | Sequence[ArrayLike], regions: Regions | None = None
) -> dict[str, float]:
    """Mean over samples of :func:`dice_per_region`: class maps stacked ``(N, *spatial)`` (or sequences of maps).

    Example:
        >>> mean_dice_per_region(np.array([[0, 1], [3, 3]]), np.array([[0, 1], [0, 3]]))
        {'WT': 0.8333333333333333, 'TC': 0.8333333333333333, 'ET': 0.8333333333333333}
    """
    if len(preds) != len(truths) or len(preds) == 0:
        raise ValueError(
            f"preds and truths must hold the same number (> 0) of maps, got {len(preds)} and {len(truths)}"
        )
    scores = [dice_per_region(p, t, regions) for p, t in zip(preds, truths)]
    return {name: float(np.mean([s[name] for s in scores])) for name in scores[0]}


def sensitivity(pred: ArrayLike, truth: ArrayLike) -> float:
    """Sensitivity (recall, true-positive rate) ``|P & T| / |T|`` of two boolean masks.

    Convention: 1.0 when ``truth`` is empty (nothing to find, so nothing was missed), whatever ``pred`` holds.
    False positives do not enter sensitivity: read it together with Dice or specificity.

    Args:
        pred: predicted mask, any shape; bool, or numbers that are all 0 or 1.
        truth: ground-truth mask of the same shape.

    Returns:
        Sensitivity in ``[0, 1]``.

    Raises:
        ValueError: if a mask holds values other than 0/1 or the shapes differ.

    Example:
        >>> sensitivity(np.array([1, 0, 0, 1]), np.array([1, 1, 0, 0]))
        0.5
    """
    pred, truth = mask_pair(pred, truth)
    positives = np.count_nonzero(truth)
    return 1.0 if positives == 0 else float(np.count_nonzero(pred & truth) / positives)


def specificity(pred: ArrayLike, truth: ArrayLike) -> float:
    """Specificity (true-negative rate) ``|~P & ~T| / |~T|`` of two boolean masks.

    Convention: 1.0 when ``truth`` has no negative voxel (nothing could be falsely flagged), as for
    :func:`sensitivity`.

    Args:
        pred: predicted mask, any shape; bool, or numbers that are all 0 or 1.
        truth: ground-truth mask of the same shape.

    Returns:
        Specificity in ``[0, 1]``.

    Raises:
        ValueError: if a mask holds values other than 0/1 or the shapes differ.

    Example:
        >>> specificity(np.array([1, 0, 0, 1]), np.array([1, 1, 0, 0]))
        0.5
    """
    pred, truth = mask_pair(pred, truth)
    negatives = truth.size - np.count_nonzero(truth)
    return 1.0 if negatives == 0 else float(np.count_nonzero(~pred & ~truth) / negatives)
