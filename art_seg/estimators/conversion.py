"""Validate inputs, labels and voxel weights at the estimator's boundary, and convert them to device tensors.

The checks run once, on the whole array, before any work starts; the conversions run per batch, so a large
numpy dataset is never copied to the device whole. Checks look at numpy arrays through zero-copy tensor
views, and nothing here ever writes to a caller's array.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from art_seg._checks import check_finite

ArrayLike = np.ndarray | torch.Tensor
LabelForm = Literal["index", "soft"]


def as_tensor(
    array: ArrayLike, *, device: torch.device | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Return ``array`` as a tensor on ``device`` with ``dtype`` (``None`` keeps either), copying only if needed.

    A read-only or negatively strided numpy array is copied first, since torch cannot share its memory.
    """
    if isinstance(array, np.ndarray):
        if not array.flags.writeable or any(s < 0 for s in array.strides):
            array = np.array(array)
        array = torch.from_numpy(array)
    return array.to(device=device, dtype=dtype)


def like_input(result: torch.Tensor, x: ArrayLike) -> ArrayLike:
    """``result`` in the kind and place of the caller's input ``x``: numpy (on the host) for numpy ``x``, else a
    tensor on ``x``'s device (ART's rule: an output lives where its input came from, whatever device the estimator
    computes on). No copy when ``result`` is already there; autograd flows through the move."""
    if isinstance(x, np.ndarray):
        return result.detach().cpu().numpy()
    return result.to(x.device)


def check_array_type(name: str, value: object) -> None:
    """Raise ``TypeError`` unless ``value`` is a numpy array or a torch tensor."""
    if not isinstance(value, (np.ndarray, torch.Tensor)):
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(value).__name__}")


def _check_real(name: str, value: ArrayLike) -> None:
    if isinstance(value, torch.Tensor):
        real = not (value.is_complex() or value.dtype == torch.bool)
    else:
        real = np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)
    if not real:
        raise TypeError(f"{name} must hold real numbers, got dtype {value.dtype}")


def check_input(x: ArrayLike, *, nb_channels: int, nb_spatial_dims: int) -> None:
    """Validate an image batch ``x`` of shape ``(N, C, *spatial)``.

    Raises:
        TypeError: ``x`` is not an array or tensor, or is not real-valued.
        ValueError: wrong number of dimensions or channels, an empty batch, or NaN/Inf values.
    """
    check_array_type("x", x)
    expected = f"(N, {nb_channels}, " + ", ".join(["*"] * nb_spatial_dims) + ")"
    if x.ndim != 2 + nb_spatial_dims:
        raise ValueError(f"x must have shape {expected}, got shape {tuple(x.shape)}")
    if x.shape[1] != nb_channels:
        raise ValueError(
            f"x has {x.shape[1]} channel(s) in shape {tuple(x.shape)}, the estimator expects {nb_channels}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"x must hold at least one sample, got shape {tuple(x.shape)}")
    _check_real("x", x)
    check_finite("x", x)


def check_labels(y: ArrayLike, *, batch_shape: tuple[int, ...], nb_classes: int) -> LabelForm:
    """Validate segmentation labels for images of batch shape ``(N, *spatial)`` and say which form they take.

    Accepted forms:

    - ``"index"``: class-index maps ``(N, *spatial)`` with integers in ``[0, nb_classes)`` (a float array of
      whole numbers is accepted too, as NIfTI label files often are), or ``(N, 1, *spatial)`` (MONAI's
      convention) when ``nb_classes > 1``;
    - ``"soft"``: one-hot, multi-hot or soft maps ``(N, K, *spatial)`` with values in ``[0, 1]``, such as the
      probabilities ART passes as ``y`` when an attack is called with ``y=None``.

    Raises:
        TypeError: ``y`` is not an array or tensor, or holds non-real values.
        ValueError: a shape matching neither form, labels outside ``[0, nb_classes)``, non-integral class
            indices, soft values outside ``[0, 1]``, NaN or Inf.
    """
    check_array_type("y", y)
    _check_real("y", y)
    n, spatial = batch_shape[0], tuple(batch_shape[1:])
    shape = tuple(y.shape)
    check_finite("y", y)
    values = as_tensor(y)
    if shape == (n, *spatial) or (nb_classes > 1 and shape == (n, 1, *spatial)):
        if values.is_floating_point() and not bool(torch.equal(values, torch.round(values))):
            raise ValueError("y holds non-integral class indices; pass integer labels or one-hot maps")
        if int(values.min()) < 0 or int(values.max()) >= nb_classes:
            bad = [v for v in torch.unique(values).long().tolist() if v < 0 or v >= nb_classes][:10]
            raise ValueError(f"y holds labels {bad} outside [0, {nb_classes}) (nb_classes={nb_classes})")
        return "index"
    if shape == (n, nb_classes, *spatial):
        low, high = float(values.min()), float(values.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(f"soft or one-hot labels y must lie in [0, 1], got values in [{low}, {high}]")
        return "soft"
    raise ValueError(
        f"y must be class indices of shape {(n, *spatial)} or {(n, 1, *spatial)}, or soft/one-hot maps of shape "
        f"{(n, nb_classes, *spatial)} (nb_classes={nb_classes}), got shape {shape}"
    )


def to_label_tensor(
    y: ArrayLike, form: LabelForm, *, spatial_shape: tuple[int, ...], device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Convert labels checked by :func:`check_labels` to ``int64 (N, *spatial)`` or ``dtype (N, K, *spatial)``."""
    if form == "index":
        return as_tensor(y, device=device, dtype=torch.long).reshape(-1, *spatial_shape)
    return as_tensor(y, device=device, dtype=dtype)


def check_voxel_weights(weights: ArrayLike, *, batch_shape: tuple[int, ...]) -> None:
    """Validate a voxel weight or mask map: non-negative, finite, broadcastable to ``(N, *spatial)``.

    Raises:
        TypeError: not an array or tensor, or not real-valued.
        ValueError: not broadcastable to ``(N, *spatial)``, negative values, NaN or Inf.
    """
    check_array_type("voxel_weights", weights)
    _check_real("voxel_weights", weights)
    try:
        fits = np.broadcast_shapes(tuple(weights.shape), tuple(batch_shape)) == tuple(batch_shape)
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"voxel_weights of shape {tuple(weights.shape)} does not broadcast to (N, *spatial) = {tuple(batch_shape)}"
        )
    check_finite("voxel_weights", weights)
    minimum = float(as_tensor(weights).min())
    if minimum < 0.0:
        raise ValueError(f"voxel_weights must be >= 0, got minimum {minimum}")
