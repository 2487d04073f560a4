"""Target label maps for targeted attacks such as :class:`~art_seg.attacks.TargetedIterativeFGSM`.

Every builder takes class-index maps ``(N, *spatial)`` (numpy or torch, integer, or bool for the two classes
0 and 1), never modifies them, and returns a new map of the same shape, kind, dtype and device. Class indices
are art_seg's internal ones (``0..K-1``; for BraTS 0 background, 1 necrotic core, 2 edema, 3 enhancing tumour).
Morphology runs per sample over the spatial axes only, with the face-connected structuring element.

Region (sigmoid) models take multi-hot maps ``(N, R, *spatial)``, one channel per region (e.g. WT, TC, ET):
:func:`erase_labels` switches region channels off with ``multi_hot=True``, and :func:`no_tumour` builds the
"no tumour" target of either form.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

import numpy as np
import torch
from scipy import ndimage

from art_seg._checks import check_number
from art_seg.estimators.conversion import check_array_type

Labels = TypeVar("Labels", np.ndarray, torch.Tensor)


def erase_labels(y: Labels, labels: int | Iterable[int], background: int = 0, *, multi_hot: bool = False) -> Labels:
    """Erase classes or regions, e.g. the whole tumour for a "no tumour" target (see also :func:`no_tumour`).

    Args:
        y: class-index maps ``(N, *spatial)``, or with ``multi_hot`` multi-hot region maps ``(N, R, *spatial)``
            (bool, integer 0 / 1, or float in [0, 1] such as a sigmoid model's targets).
        labels: the classes whose voxels become ``background``; with ``multi_hot``, the region channels
            (``0..R-1``) switched off at every voxel.
        background: the class erased voxels take (class-index maps only).
        multi_hot: ``y`` holds region channels rather than class indices.

    Raises:
        TypeError: ``y`` not an array, or float without ``multi_hot``.
        ValueError: a class or channel out of range, ``background`` other than 0 with ``multi_hot``.

    Example:
        >>> erase_labels(np.array([[0, 1, 2, 3]]), labels=[1, 2, 3]).tolist()
        [[0, 0, 0, 0]]
        >>> erase_labels(np.array([[[1, 1], [0, 1]]]), labels=[1], multi_hot=True).tolist()  # (1, R=2, 2)
        [[[1, 1], [0, 0]]]
    """
    if multi_hot:
        values = _as_maps(y)
        channels = _class_list(labels)
        if max(channels) >= values.shape[1]:
            raise ValueError(
                f"labels must name region channels in [0, {values.shape[1]}) of y's shape {values.shape}, "
                f"got {channels}"
            )
        if background != 0:
            raise ValueError(
                "background applies to class-index maps only; with multi_hot=True erased region channels are "
                f"switched off, got background={background!r}"
            )
        result = values.copy()
        result[:, channels] = 0
        return _like(y, result, values.dtype)
    values = _as_labels(y)
    _check_class("background", background, values)
    return _like(y, np.where(np.isin(values, _class_list(labels)), background, values), values.dtype)


def no_tumour(y: Labels) -> Labels:
    """The "no tumour" target of ``y``: every voxel background (class 0) in class-index maps ``(N, *spatial)``,
    every region channel off in multi-hot maps ``(N, R, *spatial)``; zeros of ``y``'s shape, kind, dtype and
    device either way.

    Example:
        >>> no_tumour(np.array([[0, 2, 3]])).tolist()
        [[0, 0, 0]]
    """
    check_array_type("y", y)
    return torch.zeros_like(y) if isinstance(y, torch.Tensor) else np.zeros_like(y)


def relabel(y: Labels, mapping: Mapping[int, int]) -> Labels:
    """Map classes to other classes all at once, e.g. ``{3: 1}`` to call enhancing tumour necrotic core.

    Classes not in ``mapping`` keep their label. ``{1: 2, 2: 1}`` swaps two classes.
    """
    values = _as_labels(y)
    if not isinstance(mapping, Mapping) or not mapping:
        raise ValueError(f"mapping must be a non-empty {{class: class}} dict, got {mapping!r}")
    for source, target in mapping.items():
        _check_class("mapping key", source, values)
        _check_class("mapping value", target, values)
    result = values.copy()
    for source, target in mapping.items():
        result[values == source] = target
    return _like(y, result, values.dtype)


def shrink(y: Labels, labels: int | Iterable[int], voxels: int, background: int = 0) -> Labels:
    """Erode the region made of ``labels`` by ``voxels`` voxels; the removed rim becomes ``background``."""
    values = _as_labels(y)
    _check_class("background", background, values)
    check_number("voxels", voxels, low=1, integer=True)
    region = np.isin(values, _class_list(labels))
    kept = ndimage.binary_erosion(region, structure=_per_sample_structure(values.ndim), iterations=voxels)
    return _like(y, np.where(region & ~kept, background, values), values.dtype)


def grow(y: Labels, label: int, voxels: int, into: int | Iterable[int] | None = None) -> Labels:
    """Dilate class ``label`` by ``voxels`` voxels, taking over neighbouring voxels of the classes ``into``.

    Args:
        y: class-index maps ``(N, *spatial)``.
        label: the class that grows.
        voxels: how many voxels its boundary moves outward.
        into: the classes it may replace (default: every other class).
    """
    values = _as_labels(y)
    _check_class("label", label, values)
    check_number("voxels", voxels, low=1, integer=True)
    grown = ndimage.binary_dilation(values == label, structure=_per_sample_structure(values.ndim), iterations=voxels)
    allowed = np.ones_like(grown) if into is None else np.isin(values, _class_list(into))
    return _like(y, np.where(grown & allowed, label, values), values.dtype)


def _as_labels(y: np.ndarray | torch.Tensor) -> np.ndarray:
    values = _as_array(y)
    if not (np.issubdtype(values.dtype, np.integer) or values.dtype == np.bool_):
        raise TypeError(
            f"y must hold integer (or bool) class indices, got dtype {values.dtype}; for multi-hot region maps "
            "pass multi_hot=True"
        )
    if values.ndim < 2:
        raise ValueError(f"y must be class-index maps (N, *spatial), got shape {values.shape}")
    return values


def _as_maps(y: np.ndarray | torch.Tensor) -> np.ndarray:
    values = _as_array(y)
    if values.ndim < 3:
        raise ValueError(f"y must be multi-hot region maps (N, R, *spatial), got shape {values.shape}")
    return values


def _as_array(y: np.ndarray | torch.Tensor) -> np.ndarray:
    check_array_type("y", y)
    return y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)


def _check_class(name: str, value: int, values: np.ndarray) -> None:
    """A class index: an integer >= 0, and 0 or 1 when ``values`` (the labels) are bool."""
    check_number(name, value, low=0, integer=True)
    if values.dtype == np.bool_ and value > 1:
        raise ValueError(f"{name} must be 0 or 1 for bool labels y, got {value}")


def _class_list(labels: int | Iterable[int]) -> list[int]:
    classes = [labels] if isinstance(labels, (int, np.integer)) else list(labels)
    if not classes:
        raise ValueError("labels must name at least one class, got an empty list")
    for value in classes:
        check_number("labels", value, low=0, integer=True)
    return classes


def _per_sample_structure(ndim: int) -> np.ndarray:
    """Face connectivity over the spatial axes and none across samples (axis 0)."""
    return ndimage.generate_binary_structure(ndim - 1, 1)[None]


def _like(y: np.ndarray | torch.Tensor, result: np.ndarray, dtype: np.dtype) -> np.ndarray | torch.Tensor:
    """``result`` in ``y``'s kind, dtype and device."""
    result = result.astype(dtype, copy=False)
    return torch.as_tensor(result, device=y.device) if isinstance(y, torch.Tensor) else result
