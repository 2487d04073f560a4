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
from art_seg.data.regions import RegionSpec

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


def _check_real(name: str, value: ArrayLike, allow_bool: bool = False) -> None:
    if isinstance(value, torch.Tensor):
        real = not (value.is_complex() or (value.dtype == torch.bool and not allow_bool))
    else:
        real = (
            np.issubdtype(value.dtype, np.floating)
            or np.issubdtype(value.dtype, np.integer)
            or (allow_bool and value.dtype == bool)
        )
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


def check_labels(
    y: ArrayLike,
    *,
    batch_shape: tuple[int, ...],
    nb_classes: int,
    activation: str = "softmax",
    regions: RegionSpec | None = None,
) -> LabelForm:
    """Validate segmentation labels for images of batch shape ``(N, *spatial)`` and say which form they take.

    Accepted forms (numpy or torch; bool is read as 0/1):

    - ``"index"``: class-index maps ``(N, *spatial)`` (or ``(N, 1, *spatial)``, MONAI's convention, when
      ``nb_classes > 1``) with whole numbers (a float array of whole numbers is accepted too, as NIfTI label files
      often are) in
        - ``[0, nb_classes)`` for ``"softmax"``;
        - ``[0, regions.nb_classes)`` for a region model (``regions`` given): :func:`to_label_tensor` turns them
          into one mask per region;
        - ``{0, 1}`` for a single-channel ``"sigmoid"`` model (the channel's mask);
      a ``"sigmoid"`` model with several channels and no ``regions`` takes no class indices (they would have to be
      guessed into channels): a clear error says to pass ``regions`` or multi-hot maps;
    - ``"soft"``: one-hot, multi-hot or soft maps ``(N, K, *spatial)``: floats in ``[0, 1]`` (such as the
      probabilities ART passes as ``y`` when an attack is called with ``y=None``), or bool / integers in ``{0, 1}``.

    Args:
        y: the labels.
        batch_shape: ``(N, *spatial)`` of the images.
        nb_classes: the model's output channels ``K``.
        activation: ``"softmax"`` or ``"sigmoid"``.
        regions: the region spec of a region (sigmoid) model, or ``None``.

    Raises:
        TypeError: ``y`` is not an array or tensor, or holds non-real values.
        ValueError: a shape matching neither form, class indices out of range or non-integral, class indices for
            a multi-channel sigmoid model without ``regions``, soft values outside ``[0, 1]``, integer maps
            other than 0/1, NaN or Inf.
    """
    check_array_type("y", y)
    _check_real("y", y, allow_bool=True)
    n, spatial = batch_shape[0], tuple(batch_shape[1:])
    shape = tuple(y.shape)
    check_finite("y", y)
    values = as_tensor(y)
    values = values.to(torch.uint8) if values.dtype == torch.bool else values
    if shape == (n, *spatial) or (nb_classes > 1 and shape == (n, 1, *spatial)):
        if activation == "sigmoid" and regions is None and nb_classes > 1:
            raise ValueError(
                f"y holds class indices of shape {shape}, but the model has {nb_classes} independent sigmoid "
                f"channels and no region spec, so which channels a class turns on is unknown: pass regions= (a "
                f"preset such as 'brats', or a mapping name -> classes) to PyTorchSegmenter, or give y as multi-hot "
                f"maps of shape {(n, nb_classes, *spatial)}"
            )
        if values.is_floating_point() and not bool(torch.equal(values, torch.round(values))):
            raise ValueError("y holds non-integral class indices; pass integer labels or one-hot maps")
        high = regions.nb_classes if regions is not None else (2 if activation == "sigmoid" else nb_classes)
        if int(values.min()) < 0 or int(values.max()) >= high:
            bad = [v for v in torch.unique(values).long().tolist() if v < 0 or v >= high][:10]
            what = f"the region spec's classes {regions.names}" if regions is not None else f"nb_classes={nb_classes}"
            raise ValueError(f"y holds labels {bad} outside [0, {high}) ({what})")
        return "index"
    if shape == (n, nb_classes, *spatial):
        low, top = float(values.min()), float(values.max())
        if values.is_floating_point() and (low < 0.0 or top > 1.0):
            raise ValueError(f"soft or one-hot labels y must lie in [0, 1], got values in [{low}, {top}]")
        if not values.is_floating_point() and (low < 0 or top > 1):
            raise ValueError(f"integer one-hot or multi-hot labels y must be 0 or 1, got values in [{low:g}, {top:g}]")
        return "soft"
    index_shapes = f"{(n, *spatial)}" + (f" or {(n, 1, *spatial)}" if nb_classes > 1 else "")
    raise ValueError(
        f"y must be class indices of shape {index_shapes}, or soft/one-hot/multi-hot maps of shape "
        f"{(n, nb_classes, *spatial)} (nb_classes={nb_classes}), got shape {shape}"
    )


def to_label_tensor(
    y: ArrayLike,
    form: LabelForm,
    *,
    spatial_shape: tuple[int, ...],
    device: torch.device,
    dtype: torch.dtype,
    activation: str = "softmax",
    regions: RegionSpec | None = None,
) -> torch.Tensor:
    """Convert labels checked by :func:`check_labels` (with the same ``activation`` and ``regions``) to the loss
    target on ``device``.

    Returns:
        ``"softmax"`` class indices: ``int64 (N, *spatial)``; a region model's class indices: the region masks
        ``dtype (N, R, *spatial)`` (``regions.to_masks``); a single-channel ``"sigmoid"`` model's class indices:
        ``dtype (N, 1, *spatial)``; maps: ``dtype (N, K, *spatial)``.
    """
    if form == "soft":
        return as_tensor(y, device=device).to(dtype)
    indices = as_tensor(y, device=device, dtype=torch.long).reshape(-1, *spatial_shape)
    if regions is not None:
        return regions.to_masks(indices, spatial_dims=len(spatial_shape)).to(dtype)
    if activation == "sigmoid":
        return indices.unsqueeze(1).to(dtype)
    return indices


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
