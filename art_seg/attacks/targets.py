"""Target label maps for targeted attacks such as :class:`~art_seg.attacks.TargetedIterativeFGSM`.

Every builder takes class-index maps ``(N, *spatial)`` (numpy or torch, integer), never modifies them, and
returns a new integer map of the same shape and kind. Class indices are art_seg's internal ones
(``0..K-1``; for BraTS 0 background, 1 necrotic core, 2 edema, 3 enhancing tumour). Morphology runs per
sample over the spatial axes only, with the face-connected structuring element.
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


def erase_labels(y: Labels, labels: int | Iterable[int], background: int = 0) -> Labels:
    """Replace every voxel of the given classes by ``background`` (e.g. the whole tumour by "no tumour").

    Example:
        >>> erase_labels(np.array([[0, 1, 2, 3]]), labels=[1, 2, 3]).tolist()
        [[0, 0, 0, 0]]
    """
    values = _as_labels(y)
    check_number("background", background, low=0, integer=True)
    return _like(y, np.where(np.isin(values, _class_list(labels)), background, values), values.dtype)


def relabel(y: Labels, mapping: Mapping[int, int]) -> Labels:
    """Map classes to other classes all at once, e.g. ``{3: 1}`` to call enhancing tumour necrotic core.

    Classes not in ``mapping`` keep their label. ``{1: 2, 2: 1}`` swaps two classes.
    """
    values = _as_labels(y)
    if not isinstance(mapping, Mapping) or not mapping:
        raise ValueError(f"mapping must be a non-empty {{class: class}} dict, got {mapping!r}")
    for source, target in mapping.items():
        check_number("mapping key", source, low=0, integer=True)
        check_number("mapping value", target, low=0, integer=True)
    result = values.copy()
    for source, target in mapping.items():
        result[values == source] = target
    return _like(y, result, values.dtype)


def shrink(y: Labels, labels: int | Iterable[int], voxels: int, background: int = 0) -> Labels:
    """Erode the region made of ``labels`` by ``voxels`` voxels; the removed rim becomes ``background``."""
    values = _as_labels(y)
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
    check_number("label", label, low=0, integer=True)
    check_number("voxels", voxels, low=1, integer=True)
    grown = ndimage.binary_dilation(values == label, structure=_per_sample_structure(values.ndim), iterations=voxels)
    allowed = np.ones_like(grown) if into is None else np.isin(values, _class_list(into))
    return _like(y, np.where(grown & allowed, label, values), values.dtype)


def _as_labels(y: np.ndarray | torch.Tensor) -> np.ndarray:
    check_array_type("y", y)
    values = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if not np.issubdtype(values.dtype, np.integer):
        raise TypeError(f"y must hold integer class indices, got dtype {values.dtype}")
    if values.ndim < 2:
        raise ValueError(f"y must be class-index maps (N, *spatial), got shape {values.shape}")
    return values


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
