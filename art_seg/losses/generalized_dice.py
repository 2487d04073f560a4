"""Generalized Dice loss (Sudre et al. 2017), following MONAI's ``GeneralizedDiceLoss``."""

from __future__ import annotations

import torch
from torch import nn

from art_seg._checks import check_choice
from art_seg.losses._common import (
    activate,
    as_voxel_weights,
    check_dice_options,
    check_include_background,
    check_logits,
    check_options,
    is_index_target,
    one_hot,
    overlap_sums,
    reduce,
)

WEIGHT_TYPES = ("square", "simple", "uniform")


def _check_generalized_dice_options(
    *,
    activation: str,
    include_background: bool,
    weight_type: str,
    smooth_nr: float,
    smooth_dr: float,
    batch: bool,
    reduction: str,
) -> None:
    check_options(activation=activation, reduction=reduction)
    check_choice("weight_type", weight_type, WEIGHT_TYPES)
    check_dice_options(
        include_background=include_background,
        smooth_nr=smooth_nr,
        smooth_dr=smooth_dr,
        batch=batch,
        reduction=reduction,
    )


def _class_weights(target_sum: torch.Tensor, weight_type: str) -> torch.Tensor:
    """Sudre's class weights from the target volumes ``(N, K')`` or ``(K',)``, without gradient.

    Empty classes (infinite weight) get the largest finite weight along the class axis (of the sample, or of
    the batch for a 1-D input); if every class is empty all weights are 0.
    """
    volume = target_sum.detach()
    if weight_type == "uniform":
        return torch.ones_like(volume)
    weights = volume.reciprocal() if weight_type == "simple" else (volume * volume).reciprocal()
    finite = torch.isfinite(weights)
    weights = torch.where(finite, weights, torch.zeros_like(weights))
    largest = weights.amax(dim=-1, keepdim=True)
    return torch.where(finite, weights, largest)


def generalized_dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    activation: str = "softmax",
    include_background: bool = True,
    weight_type: str = "square",
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    batch: bool = False,
    voxel_weights: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Generalized Dice loss of Sudre et al. (2017): one Dice over all classes, each weighted by its volume.

    This follows MONAI's ``GeneralizedDiceLoss``. With ``p = activation(logits)``, maps ``t`` and voxel
    weights ``w`` (1 when ``None``), per sample (or over the whole batch when ``batch`` is ``True``)::

        G_k  = sum_v w_v t_vk
        W_k  = 1 / G_k**2 ("square"), 1 / G_k ("simple") or 1 ("uniform")   -- no gradient
        loss = 1 - (2 sum_k W_k sum_v w_v p_vk t_vk + smooth_nr)
                   / (sum_k W_k sum_v w_v (p_vk + t_vk) + smooth_dr)

    The infinite weight of a class empty in the target is replaced by the largest finite weight of that
    sample (of the batch when ``batch`` is ``True``). If all kept classes are empty (also: all-zero voxel
    weights) every weight is 0 and the loss is ``1 - smooth_nr / smooth_dr``, 0 for the defaults. Class 0
    is dropped after the activation when ``include_background`` is ``False``.

    Args:
        logits: raw scores ``(N, K, *spatial)``, floating, 1 to 3 spatial dims.
        target: class indices ``(N, *spatial)`` (any integer dtype; values not checked) or soft / one-hot /
            multi-hot maps ``(N, K, *spatial)`` in [0, 1].
        activation: ``"softmax"`` (mutually exclusive classes) or ``"sigmoid"`` (independent channels).
        include_background: keep class (channel) 0; ``False`` needs ``K >= 2``.
        weight_type: ``"square"``, ``"simple"`` or ``"uniform"``.
        smooth_nr: ``>= 0``, added to the numerator.
        smooth_dr: ``> 0``, added to the denominator.
        batch: pool all samples into one Dice (then ``reduction="none"`` is an error).
        voxel_weights: ``None`` or non-negative weights broadcastable to ``(N, *spatial)`` (e.g. a mask).
        reduction: ``"mean"`` (mean of per-sample losses), ``"sum"`` (their sum) or ``"none"`` (shape
            ``(N,)``). With ``batch=True`` there is one loss, returned as a scalar for ``"mean"`` and ``"sum"``.

    Returns:
        A scalar tensor, or per-sample losses ``(N,)`` for ``reduction="none"``. Values lie in [0, 1] when
        ``smooth_nr <= smooth_dr``.

    Raises:
        ValueError: unknown ``activation`` / ``weight_type`` / ``reduction``, negative smoothing,
            ``batch=True`` with ``reduction="none"``, ``include_background=False`` with ``K == 1``, bad shapes.
        TypeError: non-tensor inputs, non-floating logits, bool / complex target, non-bool flags.

    Example:
        >>> logits = torch.tensor([[[0.0, 0.0], [0.0, 0.0]]])  # p = 1/2 everywhere
        >>> round(generalized_dice_loss(logits, torch.tensor([[0, 1]])).item(), 4)
        0.5
    """
    _check_generalized_dice_options(
        activation=activation,
        include_background=include_background,
        weight_type=weight_type,
        smooth_nr=smooth_nr,
        smooth_dr=smooth_dr,
        batch=batch,
        reduction=reduction,
    )
    check_logits(logits)
    check_include_background(include_background, logits.shape[1])
    index = is_index_target(target, logits)
    intersection, pred_sum, target_sum = overlap_sums(
        activate(logits, activation),
        one_hot(target, logits, index=index),
        as_voxel_weights(voxel_weights, logits),
        include_background=include_background,
        batch=batch,
    )
    weights = _class_weights(target_sum, weight_type)
    numerator = 2.0 * (weights * intersection).sum(-1) + smooth_nr
    denominator = (weights * (pred_sum + target_sum)).sum(-1) + smooth_dr
    return reduce(1.0 - numerator / denominator, reduction)


class GeneralizedDiceLoss(nn.Module):
    """Module form of :func:`generalized_dice_loss`: holds the options, ``forward`` calls the function.

    Args:
        activation: ``"softmax"`` or ``"sigmoid"``.
        include_background: keep class 0.
        weight_type: ``"square"``, ``"simple"`` or ``"uniform"``.
        smooth_nr: ``>= 0``, added to the numerator.
        smooth_dr: ``> 0``, added to the denominator.
        batch: pool all samples into one Dice (not with ``reduction="none"``).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Raises:
        ValueError, TypeError: a bad option, naming it and its value.

    Example:
        >>> loss = GeneralizedDiceLoss(weight_type="simple", batch=True)
        >>> loss(torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))).shape
        torch.Size([])
    """

    def __init__(
        self,
        activation: str = "softmax",
        include_background: bool = True,
        weight_type: str = "square",
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        _check_generalized_dice_options(
            activation=activation,
            include_background=include_background,
            weight_type=weight_type,
            smooth_nr=smooth_nr,
            smooth_dr=smooth_dr,
            batch=batch,
            reduction=reduction,
        )
        self.activation = activation
        self.include_background = include_background
        self.weight_type = weight_type
        self.smooth_nr = smooth_nr
        self.smooth_dr = smooth_dr
        self.batch = batch
        self.reduction = reduction

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, voxel_weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        """See :func:`generalized_dice_loss`."""
        return generalized_dice_loss(
            logits,
            target,
            activation=self.activation,
            include_background=self.include_background,
            weight_type=self.weight_type,
            smooth_nr=self.smooth_nr,
            smooth_dr=self.smooth_dr,
            batch=self.batch,
            voxel_weights=voxel_weights,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        return (
            f"activation={self.activation!r}, include_background={self.include_background}, "
            f"weight_type={self.weight_type!r}, smooth_nr={self.smooth_nr}, smooth_dr={self.smooth_dr}, "
            f"batch={self.batch}, reduction={self.reduction!r}"
        )
