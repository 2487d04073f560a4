"""Scoring a segmenter's hard prediction region by region against a class-index label map, the same way for
softmax models (a label map) and region models (one sigmoid mask per region, in any channel order).

A scored region is a name and a set of art_seg classes, e.g. the BraTS regions
``{"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}`` (:data:`art_seg.data.REGION_CLASSES`, the default). Its masks:

- predicted, for a softmax model: the voxels whose predicted class is in the set; for a one-channel sigmoid model
  the same with its mask as classes 0 and 1 (:meth:`~art_seg.estimators.PyTorchSegmenter.to_label_map`);
- predicted, for a region model (``PyTorchSegmenter(regions=...)``): the thresholded channel of the region made of
  exactly that set of classes, whatever its name or position (MONAI's ``TC, WT, ET`` channels score as ``WT``,
  ``TC``, ``ET`` like nnU-Net's ``WT, TC, ET``). A scored region that no channel predicts is an error, found by
  :func:`region_channels` before any work;
- true: the voxels of the ground-truth class map whose class is in the set (for a region model, that channel of
  its region spec's masks of the truth, :meth:`~art_seg.data.RegionSpec.to_masks`, which is the same set).

Dice and HD95 are then :func:`~art_seg.metrics.dice_score` and :func:`~art_seg.metrics.hausdorff95` of the two
masks, with the BraTS values for a region empty in the truth (Dice 1 if the prediction is empty too, else 0).
So WT, TC and ET mean the same in every row and report, whatever kind of model made the prediction.

A prediction here is one sample's, as :meth:`~art_seg.estimators.PyTorchSegmenter.predict_labels` returns it
without the batch axis: a label map ``int (*spatial)`` (softmax) or masks ``bool (K, *spatial)`` (sigmoid).

Example:
    >>> seg = PyTorchSegmenter(model, "dice_ce", input_shape=(4, 32, 32, 32), nb_classes=3, activation="sigmoid",
    ...                        regions="monai_brats")  # doctest: +SKIP
    >>> region_dice(seg, seg.predict_labels(x[:1])[0], y[0])  # doctest: +SKIP
    {'WT': 0.91, 'TC': 0.84, 'ET': 0.79}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from art_seg._checks import check_type
from art_seg.estimators import PyTorchSegmenter
from art_seg.metrics import check_regions, dice_score, hausdorff95

__all__ = ["mean_region_dice", "model_regions", "region_channels", "region_dice", "region_hd95", "region_masks"]

Regions = Mapping[str, Sequence[int]]
ArrayLike = np.ndarray | torch.Tensor


def model_regions(segmenter: PyTorchSegmenter) -> dict[str, tuple[int, ...]]:
    """The regions a segmenter predicts, each on its own: a region model's regions (names and classes, in channel
    order); otherwise each foreground class alone, named by its index (``{"1": (1,), "2": (2,), ...}``; one
    ``"1"`` for a one-channel sigmoid model).

    Raises:
        ValueError: a multi-channel sigmoid model without regions (its channels are no known classes).
    """
    check_type("segmenter", segmenter, PyTorchSegmenter)
    spec = segmenter.regions
    if spec is not None:
        return dict(zip(spec.names, spec.classes))
    if segmenter.activation == "sigmoid" and segmenter.nb_classes > 1:
        raise ValueError(_no_regions(segmenter))
    return {str(k): (k,) for k in range(1, max(segmenter.nb_classes, 2))}


def region_channels(segmenter: PyTorchSegmenter, regions: Regions | None = None) -> dict[str, int | None]:
    """Where each scored region's predicted mask comes from: a region model's channel index, or ``None`` for the
    voxels of the predicted label map in the region's classes (softmax and one-channel sigmoid models).

    Args:
        segmenter: the model whose predictions are scored.
        regions: ``{name: class indices}``; default :data:`art_seg.data.REGION_CLASSES` (WT, TC, ET).

    Raises:
        ValueError: ``regions`` is empty or lists no class for a region; a region model has no channel for a
            region (no region of its spec is made of exactly that set of classes); a multi-channel sigmoid model
            has no region spec.
    """
    check_type("segmenter", segmenter, PyTorchSegmenter)
    return _channels(segmenter, check_regions(regions))


def _channels(segmenter: PyTorchSegmenter, regions: dict[str, tuple[int, ...]]) -> dict[str, int | None]:
    spec = segmenter.regions
    if spec is None:
        if segmenter.activation == "sigmoid" and segmenter.nb_classes > 1:
            raise ValueError(_no_regions(segmenter))
        return dict.fromkeys(regions)
    by_classes = {frozenset(classes): r for r, classes in enumerate(spec.classes)}
    channels = {}
    for name, classes in regions.items():
        channel = by_classes.get(frozenset(classes))
        if channel is None:
            predicted = ", ".join(f"{n} {c}" for n, c in zip(spec.names, spec.classes))
            raise ValueError(
                f"region {name!r} {classes} is predicted by no channel of the region model (its regions: "
                f"{predicted}); score regions made of the classes of its channels"
            )
        channels[name] = channel
    return channels


def region_masks(
    segmenter: PyTorchSegmenter, prediction: ArrayLike, label: ArrayLike, regions: Regions | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The predicted and true mask of each region, for one sample (see the module docstring).

    Args:
        segmenter: the model that made ``prediction``.
        prediction: one sample's hard prediction: a label map ``int (*spatial)`` for softmax models, masks
            ``bool (K, *spatial)`` for sigmoid models (``predict_labels(x)[i]``); numpy or torch.
        label: the ground-truth class-index map ``(*spatial)``, integer, numpy or torch.
        regions: ``{name: class indices}``; default :data:`art_seg.data.REGION_CLASSES`.

    Returns:
        ``{name: (predicted mask, true mask)}``, bool arrays ``(*spatial)``, in the order of ``regions``.

    Raises:
        TypeError: a prediction or label of the wrong kind (floating labels, for instance).
        ValueError: as :func:`region_channels`; a prediction or label of the wrong shape, or classes a region
            model's spec does not know.
    """
    check_type("segmenter", segmenter, PyTorchSegmenter)
    regions = check_regions(regions)
    channels = _channels(segmenter, regions)
    prediction, label = _numpy("prediction", prediction), _numpy("label", label)
    if not (label.dtype == bool or np.issubdtype(label.dtype, np.integer)):
        raise TypeError(f"label must be an integer class-index map, got dtype {label.dtype}")
    spatial = label.shape
    expected = spatial if segmenter.activation == "softmax" else (segmenter.nb_classes, *spatial)
    if prediction.shape != expected:
        what = "a label map" if segmenter.activation == "softmax" else "one mask per channel"
        raise ValueError(
            f"prediction must have shape {expected} ({what} of one sample, as predict_labels(x)[i]) for a label of "
            f"shape {spatial}, got {prediction.shape}"
        )
    spec = segmenter.regions
    if spec is not None:
        if prediction.dtype != bool and not np.isin(prediction, (0, 1)).all():
            raise ValueError(f"prediction of a region model must hold masks (bool or 0 and 1), got {prediction.dtype}")
        truth = spec.to_masks(label, spatial_dims=label.ndim)
        return {name: (prediction[r].astype(bool), truth[r]) for name, r in channels.items()}
    predicted = segmenter.to_label_map(prediction[None])[0]
    return {name: (np.isin(predicted, classes), np.isin(label, classes)) for name, classes in regions.items()}


def region_dice(
    segmenter: PyTorchSegmenter, prediction: ArrayLike, label: ArrayLike, regions: Regions | None = None
) -> dict[str, float]:
    """Dice of each region for one sample: ``{name: Dice}`` in the order of ``regions``; 1.0 for a region empty in
    both the prediction and the truth, 0.0 for one empty in the truth only (BraTS). Arguments and errors as
    :func:`region_masks`.

    Example:
        >>> region_dice(seg, seg.predict_labels(x[:1])[0], y[0], {"WT": (1, 2, 3)})  # doctest: +SKIP
        {'WT': 0.93}
    """
    return {name: dice_score(p, t) for name, (p, t) in region_masks(segmenter, prediction, label, regions).items()}


def mean_region_dice(
    segmenter: PyTorchSegmenter,
    x: ArrayLike,
    y: ArrayLike,
    regions: Regions | None = None,
    *,
    batch_size: int = 4,
) -> dict[str, float]:
    """Mean over the samples of each region's Dice (:func:`region_dice`) of the segmenter's prediction on ``x``.

    Args:
        segmenter: the model.
        x: images ``(N, C, *spatial)``, numpy or torch.
        y: ground-truth class-index maps ``(N, *spatial)``.
        regions: ``{name: class indices}``; default :data:`art_seg.data.REGION_CLASSES`.
        batch_size: samples per forward pass.

    Returns:
        ``{name: mean Dice}`` in the order of ``regions``.

    Raises:
        ValueError: as :func:`region_masks`, or ``x`` and ``y`` holding different numbers of samples.

    Example:
        >>> mean_region_dice(seg, x_test, y_test)  # doctest: +SKIP
        {'WT': 0.88, 'TC': 0.74, 'ET': 0.69}
    """
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must hold the same number (> 0) of samples, got {len(x)} and {len(y)}")
    region_channels(segmenter, regions)  # before the forward passes
    predictions = segmenter.predict_labels(x, batch_size=batch_size)
    scores = [region_dice(segmenter, p, t, regions) for p, t in zip(predictions, y)]
    return {name: float(np.mean([s[name] for s in scores])) for name in scores[0]}


def region_hd95(
    segmenter: PyTorchSegmenter,
    prediction: ArrayLike,
    label: ArrayLike,
    spacing: float | Sequence[float] | None = None,
    regions: Regions | None = None,
    *,
    empty_penalty: float | None = None,
) -> dict[str, float]:
    """HD95 in mm of each region for one sample (:func:`~art_seg.metrics.hausdorff95`: 0 when both masks are
    empty, ``empty_penalty`` (default the grid's diagonal) when one is); ``spacing`` in mm per spatial axis
    (``None``: 1 mm). Other arguments and errors as :func:`region_masks`."""
    masks = region_masks(segmenter, prediction, label, regions)
    return {name: hausdorff95(p, t, spacing, empty_penalty=empty_penalty) for name, (p, t) in masks.items()}


def _numpy(name: str, value: ArrayLike) -> np.ndarray:
    check_type(name, value, (np.ndarray, torch.Tensor))
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value


def _no_regions(segmenter: PyTorchSegmenter) -> str:
    return (
        f"a sigmoid model with {segmenter.nb_classes} channels and no region spec cannot be scored against class "
        "maps (which classes each channel means is unknown): build its PyTorchSegmenter with regions= (e.g. "
        "'brats', 'monai_brats')"
    )
