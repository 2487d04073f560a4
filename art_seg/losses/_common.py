"""Helpers shared by the segmentation losses: option checks, input checks, target conversion, reduction.

Every input check here looks at types, shapes, dtypes and devices only: it is cheap and never forces a
device synchronisation. Label values, soft-target values and voxel-weight values are *not* inspected
(the estimator validates them once at its boundary); class weights are inspected only where that is free
(Python sequences and CPU tensors) or done once (module construction).

Shapes: ``logits (N, K, *spatial)`` with 1 to 3 spatial dims; ``target`` either integer class indices
``(N, *spatial)`` or float soft / one-hot maps ``(N, K, *spatial)``; ``voxel_weights`` broadcastable to
``(N, *spatial)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from art_seg._checks import check_choice, check_number, check_type

ACTIVATIONS = ("softmax", "sigmoid")
REDUCTIONS = ("mean", "sum", "none")

ClassWeights = torch.Tensor | Sequence[float] | None


# ------------------------------------------------------------------------------------------- options


def check_options(*, activation: str, reduction: str) -> None:
    """Check the options every loss takes: ``activation`` and ``reduction`` against their fixed sets."""
    check_choice("activation", activation, ACTIVATIONS)
    check_choice("reduction", reduction, REDUCTIONS)


def check_dice_options(
    *, include_background: bool, smooth_nr: float, smooth_dr: float, batch: bool, reduction: str
) -> None:
    """Check the Dice options: booleans, ``smooth_nr >= 0``, ``smooth_dr > 0``, and no ``batch`` with ``"none"``.

    ``smooth_dr`` must be positive so that an empty class (or an all-zero voxel-weight map) never divides
    zero by zero.
    """
    check_type("include_background", include_background, bool)
    check_type("batch", batch, bool)
    check_number("smooth_nr", smooth_nr, low=0)
    check_number("smooth_dr", smooth_dr, low=0, low_inclusive=False)
    if batch and reduction == "none":
        raise ValueError(
            "reduction='none' cannot be used with batch=True: per-sample losses are undefined when batch=True"
        )


def as_class_weights(
    class_weights: ClassWeights, *, include_background: bool = True, check_values: bool | None = None
) -> torch.Tensor | None:
    """Validate class weights and return them as a 1-D floating tensor (or ``None``).

    Args:
        class_weights: ``None``, a sequence of K real numbers, or a 1-D real tensor of length K.
        include_background: when ``False`` the entry of class 0 is ignored by the Dice terms, so at least one
            of the *other* entries must be positive.
        check_values: inspect the values (finite, ``>= 0``, at least one ``> 0``). ``None`` means: only where
            that needs no device synchronisation (sequences and CPU tensors). Modules pass ``True`` once.

    Returns:
        ``None`` or a 1-D floating tensor (the default dtype for sequences and integer tensors).

    Raises:
        TypeError: not a tensor or sequence of real numbers.
        ValueError: not 1-D, empty, or (when values are checked) negative, non-finite or all zero.
    """
    if class_weights is None:
        return None
    if not isinstance(class_weights, torch.Tensor):
        if isinstance(class_weights, (str, bytes)) or not isinstance(class_weights, Sequence):
            raise TypeError(f"class_weights must be a 1-D tensor or a sequence of numbers, got {class_weights!r}")
        for value in class_weights:
            check_number("class_weights entry", value)
        class_weights = torch.as_tensor(list(class_weights), dtype=torch.get_default_dtype())
    if class_weights.is_complex() or class_weights.dtype == torch.bool:
        raise TypeError(f"class_weights must be a real tensor, got dtype {class_weights.dtype}")
    if not class_weights.is_floating_point():
        class_weights = class_weights.to(torch.get_default_dtype())
    if class_weights.ndim != 1 or class_weights.numel() == 0:
        raise ValueError(f"class_weights must be 1-D with one entry per class, got shape {tuple(class_weights.shape)}")
    if check_values is None:
        check_values = class_weights.device.type == "cpu"
    if check_values:
        kept = class_weights if include_background else class_weights[1:]
        if (
            not bool(torch.isfinite(class_weights).all())
            or bool((class_weights < 0).any())
            or not bool((kept > 0).any())
        ):
            where = "" if include_background else " among classes 1.. (include_background=False)"
            raise ValueError(
                f"class_weights must be finite and >= 0 with at least one > 0{where}, got {class_weights.tolist()}"
            )
    return class_weights


def class_weights_for(
    class_weights: ClassWeights, logits: torch.Tensor, *, include_background: bool = True
) -> torch.Tensor | None:
    """Validate ``class_weights`` for a call: length K, same device as ``logits``; cast to its dtype."""
    weights = as_class_weights(class_weights, include_background=include_background)
    if weights is None:
        return None
    num_classes = logits.shape[1]
    if weights.numel() != num_classes:
        raise ValueError(f"class_weights must have K = {num_classes} entries (one per class), got {weights.numel()}")
    if weights.device != logits.device:
        weights = weights.to(logits.device)
    return weights.to(logits.dtype)


def check_include_background(include_background: bool, num_classes: int) -> None:
    """Raise ``ValueError`` if dropping class 0 would leave no class."""
    if not include_background and num_classes == 1:
        raise ValueError("include_background=False needs K >= 2 classes, got logits with K = 1")


# -------------------------------------------------------------------------------------------- inputs


def check_logits(logits: torch.Tensor) -> None:
    """Check ``logits``: a floating tensor ``(N, K, *spatial)`` with 1 to 3 spatial dims and no empty axis."""
    check_type("logits", logits, torch.Tensor)
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating tensor, got dtype {logits.dtype}")
    if not 3 <= logits.ndim <= 5:
        raise ValueError(
            f"logits must have shape (N, K, *spatial) with 1 to 3 spatial dims, got shape {tuple(logits.shape)}"
        )
    if logits.numel() == 0:
        raise ValueError(f"logits must not have an empty axis, got shape {tuple(logits.shape)}")


def is_index_target(target: torch.Tensor, logits: torch.Tensor) -> bool:
    """Check ``target`` against ``logits``; return ``True`` for class indices, ``False`` for soft maps.

    Raises:
        TypeError: not a tensor, or a bool / complex tensor.
        ValueError: an integer target not shaped ``(N, *spatial)``, a float target not shaped like ``logits``,
            or a target on another device.
    """
    check_type("target", target, torch.Tensor)
    if target.dtype == torch.bool or target.is_complex():
        raise TypeError(f"target must be an integer (class indices) or floating (soft maps) tensor, got {target.dtype}")
    index = not target.is_floating_point()
    if index:
        expected = (logits.shape[0], *logits.shape[2:])
        if target.shape != expected:
            raise ValueError(
                f"target of integer dtype {target.dtype} must hold class indices of shape (N, *spatial) = "
                f"{tuple(expected)}, got shape {tuple(target.shape)}"
            )
    elif target.shape != logits.shape:
        raise ValueError(
            f"target of floating dtype {target.dtype} must be soft maps of shape (N, K, *spatial) = "
            f"{tuple(logits.shape)}, got shape {tuple(target.shape)}"
        )
    if target.device != logits.device:
        raise ValueError(f"target must be on the logits' device {logits.device}, got {target.device}")
    return index


def one_hot(target: torch.Tensor, logits: torch.Tensor, *, index: bool) -> torch.Tensor:
    """Return ``target`` as maps ``(N, K, *spatial)`` in the logits' dtype.

    Class indices are encoded by comparison with ``arange(K)`` (not ``F.one_hot``, which synchronises to
    find the number of classes); an index outside ``0..K-1`` gives an all-zero column. Soft maps are cast.
    """
    if not index:
        return target.to(logits.dtype)
    num_classes = logits.shape[1]
    classes = torch.arange(num_classes, device=target.device).view(1, num_classes, *([1] * (logits.ndim - 2)))
    return (target.unsqueeze(1) == classes).to(logits.dtype)


def as_voxel_weights(voxel_weights: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor | None:
    """Check ``voxel_weights`` and return them expanded to ``(N, *spatial)`` in the logits' dtype.

    Accepts any real tensor (bool and integer masks are cast) broadcastable to ``(N, *spatial)``, e.g.
    ``(N, *spatial)`` or ``(*spatial)``. Values are not inspected (they should be ``>= 0``).

    Raises:
        TypeError: not a tensor, or complex.
        ValueError: a shape that does not broadcast to ``(N, *spatial)``, or another device.
    """
    if voxel_weights is None:
        return None
    check_type("voxel_weights", voxel_weights, torch.Tensor)
    if voxel_weights.is_complex():
        raise TypeError(f"voxel_weights must be a real tensor, got dtype {voxel_weights.dtype}")
    shape = torch.Size((logits.shape[0], *logits.shape[2:]))
    try:
        broadcast = torch.broadcast_shapes(voxel_weights.shape, shape)
    except RuntimeError:
        broadcast = None
    if broadcast != shape:
        raise ValueError(
            f"voxel_weights of shape {tuple(voxel_weights.shape)} does not broadcast to (N, *spatial) = {tuple(shape)}"
        )
    if voxel_weights.device != logits.device:
        raise ValueError(f"voxel_weights must be on the logits' device {logits.device}, got {voxel_weights.device}")
    return voxel_weights.to(logits.dtype).expand(shape)


# ----------------------------------------------------------------------------------------- computing


def activate(logits: torch.Tensor, activation: str) -> torch.Tensor:
    """Probabilities ``(N, K, *spatial)``: softmax over the class axis or an independent sigmoid per channel."""
    return torch.softmax(logits, dim=1) if activation == "softmax" else torch.sigmoid(logits)


def weighted_voxel_mean(values: torch.Tensor, voxel_weights: torch.Tensor | None) -> torch.Tensor:
    """Per-sample ``sum_v w_v x_v / sum_v w_v`` of ``values (N, *spatial)``; plain mean when ``w`` is ``None``.

    An all-zero weight map gives 0 (the denominator is clamped to the smallest positive normal number, which
    changes nothing else), and its gradient is 0, not NaN.
    """
    if voxel_weights is None:
        return values.flatten(1).mean(1)
    numerator = (values * voxel_weights).flatten(1).sum(1)
    denominator = voxel_weights.flatten(1).sum(1)
    return numerator / denominator.clamp_min(torch.finfo(denominator.dtype).tiny)


def overlap_sums(
    probs: torch.Tensor,
    onehot: torch.Tensor,
    voxel_weights: torch.Tensor | None,
    *,
    include_background: bool,
    batch: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The Dice sums ``(sum w p t, sum w p, sum w t)`` per sample and class.

    Sums run over the spatial axes, and over the batch axis too when ``batch`` is ``True``. Class 0 is
    dropped (after the activation) when ``include_background`` is ``False``.

    Returns:
        Three tensors ``(N, K')``, or ``(K',)`` when ``batch`` is ``True``; ``K' = K`` or ``K - 1``.
    """
    if not include_background:
        probs, onehot = probs[:, 1:], onehot[:, 1:]
    dims = tuple(range(2, probs.ndim))
    if batch:
        dims = (0, *dims)
    if voxel_weights is not None:
        weights = voxel_weights.unsqueeze(1)
        probs_w, onehot_w = probs * weights, onehot * weights
    else:
        probs_w, onehot_w = probs, onehot
    return (probs_w * onehot).sum(dims), probs_w.sum(dims), onehot_w.sum(dims)


def weighted_class_mean(values: torch.Tensor, class_weights: torch.Tensor | None) -> torch.Tensor:
    """``sum_k cw_k x_k / sum_k cw_k`` over the last axis; plain mean when ``cw`` is ``None``."""
    if class_weights is None:
        return values.mean(-1)
    return (values * class_weights).sum(-1) / class_weights.sum().clamp_min(torch.finfo(values.dtype).tiny)


def reduce(losses: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce per-sample losses ``(N,)``: ``"mean"`` and ``"sum"`` give a scalar, ``"none"`` returns them.

    A batch-level loss (shape ``()``, from ``batch=True``) is returned as it is for ``"mean"`` and ``"sum"``.
    """
    if reduction == "none" or losses.ndim == 0:
        return losses
    return losses.mean() if reduction == "mean" else losses.sum()
