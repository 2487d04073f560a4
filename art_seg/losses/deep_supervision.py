"""Deep supervision: one loss over several output heads of a network, weighted per head.

Deeply supervised networks return the full-resolution logits and extra heads from decoder stages:

- nnU-Net's networks (``dynamic_network_architectures``) return a list of heads at decreasing resolution, full
  resolution first; nnU-Net trains with weights ``1 / 2**i``, the lowest-resolution head weighted 0, normalised
  to sum 1 (``nnUNetTrainer._build_loss`` with ``DeepSupervisionWrapper``), and targets downsampled to each
  head's size by nearest-neighbour interpolation (``DownsampleSegForDSTransform``, ``"nearest-exact"``);
- MONAI's ``DynUNet`` stacks its heads on dim 1, every head upsampled to full resolution; MONAI's
  ``DeepSupervisionLoss(weight_mode="exp")`` weights them ``max(0.5**i, 0.0625)``, not normalised, and resizes
  the target only for a head of another size (``"nearest-exact"``).

:func:`deep_supervision_loss` is the combination both use, per sample, and :func:`deep_supervision_weights` gives
each tool's weights. :class:`art_seg.estimators.PyTorchSegmenter` splits a model's output into heads
(``training_heads``) and its ``fit`` and ``training_loss`` combine them with these functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from art_seg._checks import check_choice, check_number

#: Named weightings: nnU-Net's and MONAI's (see the module docstring).
DEEP_SUPERVISION = ("nnunet", "monai")

PerSampleLoss = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def deep_supervision_weights(kind: str | Sequence[float] | None, nb_heads: int) -> tuple[float, ...]:
    """The loss weight of each head, full-resolution head first.

    Args:
        kind: ``"nnunet"``: ``1 / 2**i`` with the last (lowest-resolution) head's weight set to 0, normalised to
            sum 1; ``"monai"``: ``max(0.5**i, 0.0625)`` (MONAI's ``DeepSupervisionLoss`` ``"exp"``), not
            normalised; ``None``: the full-resolution head only, ``(1, 0, ..., 0)``; or a sequence of
            ``nb_heads`` finite weights ``>= 0``, at least one positive, used as given.
        nb_heads: number of heads ``H >= 1``. With one head every kind gives ``(1.0,)``.

    Returns:
        ``H`` floats.

    Raises:
        ValueError: an unknown name, a bad ``nb_heads``, or a sequence of the wrong length or with bad values.

    Example:
        >>> deep_supervision_weights("nnunet", 3)
        (0.6666666666666666, 0.3333333333333333, 0.0)
        >>> deep_supervision_weights("monai", 3)
        (1.0, 0.5, 0.25)
    """
    check_number("nb_heads", nb_heads, low=1, integer=True)
    if kind is None or isinstance(kind, str):
        if kind is not None:
            check_choice("deep_supervision", kind, DEEP_SUPERVISION)
        if nb_heads == 1:
            return (1.0,)
        if kind is None:
            return (1.0,) + (0.0,) * (nb_heads - 1)
        if kind == "monai":
            return tuple(max(0.5**i, 0.0625) for i in range(nb_heads))
        weights = [1 / 2**i for i in range(nb_heads - 1)] + [0.0]
        return tuple(w / sum(weights) for w in weights)
    weights = tuple(kind) if isinstance(kind, Sequence) else None
    if weights is None or len(weights) != nb_heads:
        raise ValueError(
            f"deep_supervision must be one of {DEEP_SUPERVISION}, None or {nb_heads} weights (one per head), "
            f"got {kind!r}"
        )
    for w in weights:
        check_number("deep_supervision weight", w, low=0)
    if not any(w > 0 for w in weights):
        raise ValueError(f"deep_supervision weights must hold at least one positive weight, got {kind!r}")
    return tuple(float(w) for w in weights)


def resize_target(target: torch.Tensor, spatial_shape: Sequence[int]) -> torch.Tensor:
    """``target`` resized to ``spatial_shape`` by ``"nearest-exact"`` interpolation (nnU-Net's and MONAI's rule).

    Args:
        target: ``(N, *spatial)`` (class indices or voxel weights) or ``(N, K, *spatial)`` (maps), any dtype.
        spatial_shape: the head's spatial size.

    Returns:
        The target at ``spatial_shape`` in its own dtype; the same tensor when the size already matches.
    """
    spatial_shape = tuple(int(s) for s in spatial_shape)
    if tuple(target.shape[-len(spatial_shape) :]) == spatial_shape:
        return target
    channels = target.ndim == len(spatial_shape) + 2
    values = target if channels else target.unsqueeze(1)
    dtype = values.dtype if values.is_floating_point() else torch.float32  # exact for class indices
    resized = F.interpolate(values.to(dtype), size=spatial_shape, mode="nearest-exact")
    return (resized if channels else resized.squeeze(1)).to(target.dtype)


def deep_supervision_loss(
    heads: Sequence[torch.Tensor],
    target: torch.Tensor,
    loss_fn: PerSampleLoss,
    weights: Sequence[float],
    voxel_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-sample ``sum_i weights[i] * loss_fn(heads[i], target_i, voxel_weights_i)``.

    ``target_i`` and ``voxel_weights_i`` are ``target`` and ``voxel_weights`` resized to head ``i``'s spatial size
    by :func:`resize_target` (unchanged for a full-resolution head); heads of weight 0 are not evaluated.

    Args:
        heads: logits ``(N, K, *spatial_i)``, the full-resolution head first (as
            :meth:`art_seg.estimators.PyTorchSegmenter.training_heads` returns them).
        target: at full resolution: class indices ``int64 (N, *spatial)`` or maps ``(N, K, *spatial)``.
        loss_fn: ``(logits, target, voxel_weights) -> (N,)``, e.g. from :func:`art_seg.losses.per_sample_loss`.
        weights: one weight per head (:func:`deep_supervision_weights`).
        voxel_weights: optional ``(N, *spatial)`` at full resolution.

    Returns:
        ``(N,)`` losses, differentiable with respect to the heads.

    Raises:
        ValueError: no heads, or as many weights as heads not given.
    """
    if len(heads) == 0 or len(weights) != len(heads):
        raise ValueError(f"deep_supervision_loss needs one weight per head, got {len(heads)} heads, weights {weights}")
    total: torch.Tensor | None = None
    for head, weight in zip(heads, weights):
        if weight == 0:
            continue
        spatial = tuple(head.shape[2:])
        weights_i = None if voxel_weights is None else resize_target(voxel_weights, spatial)
        term = weight * loss_fn(head, resize_target(target, spatial), weights_i)
        total = term if total is None else total + term
    if total is None:
        raise ValueError(f"deep_supervision_loss needs at least one non-zero weight, got {tuple(weights)}")
    return total


__all__ = ["DEEP_SUPERVISION", "deep_supervision_loss", "deep_supervision_weights", "resize_target"]
