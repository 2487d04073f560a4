"""Soft Dice plus cross-entropy; binary cross-entropy per channel for sigmoid (overlapping regions)."""

from __future__ import annotations

import torch
from torch import nn

from art_seg._checks import check_number
from art_seg.losses._common import (
    ClassWeights,
    activate,
    as_class_weights,
    as_voxel_weights,
    check_include_background,
    check_logits,
    class_weights_for,
    is_index_target,
    one_hot,
    reduce,
)
from art_seg.losses.cross_entropy import _cross_entropy_per_sample
from art_seg.losses.dice import _check_soft_dice_options, _soft_dice_per_sample


def _check_dice_ce_options(
    *,
    activation: str,
    include_background: bool,
    smooth_nr: float,
    smooth_dr: float,
    lambda_dice: float,
    lambda_ce: float,
    reduction: str,
) -> None:
    _check_soft_dice_options(
        activation=activation,
        include_background=include_background,
        smooth_nr=smooth_nr,
        smooth_dr=smooth_dr,
        batch=False,
        reduction=reduction,
    )
    check_number("lambda_dice", lambda_dice, low=0)
    check_number("lambda_ce", lambda_ce, low=0)
    if lambda_dice == 0 and lambda_ce == 0:
        raise ValueError("lambda_dice and lambda_ce must not both be 0, got lambda_dice=0 and lambda_ce=0")


def dice_ce_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    activation: str = "softmax",
    include_background: bool = True,
    class_weights: ClassWeights = None,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    lambda_dice: float = 1.0,
    lambda_ce: float = 1.0,
    voxel_weights: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """``lambda_dice * soft Dice + lambda_ce * cross-entropy``, per sample, then reduced.

    The Dice part is :func:`~art_seg.losses.soft_dice_loss` (per sample, ``batch=False``) and the CE part
    :func:`~art_seg.losses.cross_entropy_loss`, both with the same activation, class
    weights and voxel weights. ``include_background`` applies to the Dice part only; CE always uses all K
    channels (as MONAI does).

    Unlike MONAI's ``DiceCELoss``, with ``activation="sigmoid"`` the CE part is the binary cross-entropy of
    each channel against its own map, averaged over channels, which is correct for overlapping regions
    (BraTS WT / TC / ET as multi-hot soft targets). MONAI applies softmax cross-entropy there.

    Args:
        logits: raw scores ``(N, K, *spatial)``, floating, 1 to 3 spatial dims.
        target: class indices ``(N, *spatial)`` (any integer dtype; values not checked) or soft / one-hot /
            multi-hot maps ``(N, K, *spatial)`` in [0, 1].
        activation: ``"softmax"`` (mutually exclusive classes) or ``"sigmoid"`` (independent channels).
        include_background: keep class 0 in the Dice part; ``False`` needs ``K >= 2``.
        class_weights: ``None`` or K non-negative weights, used by both parts.
        smooth_nr: ``>= 0``, Dice numerator smoothing.
        smooth_dr: ``> 0``, Dice denominator smoothing.
        lambda_dice: ``>= 0``, weight of the Dice part.
        lambda_ce: ``>= 0``, weight of the CE part (not both 0).
        voxel_weights: ``None`` or non-negative weights broadcastable to ``(N, *spatial)`` (e.g. a mask).
        reduction: ``"mean"`` (mean of per-sample losses), ``"sum"`` (their sum) or ``"none"`` (shape ``(N,)``).

    Returns:
        A scalar tensor, or per-sample losses ``(N,)`` for ``reduction="none"``.

    Raises:
        ValueError: unknown ``activation`` / ``reduction``, negative smoothing or lambdas, both lambdas 0,
            ``include_background=False`` with ``K == 1``, bad class weights or shapes.
        TypeError: non-tensor inputs, non-floating logits, bool / complex target, non-bool flags.

    Example:
        >>> logits = torch.tensor([[[0.0, 0.0], [0.0, 0.0]]])  # p = 1/2 everywhere
        >>> round(dice_ce_loss(logits, torch.tensor([[0, 1]])).item(), 4)  # 0.5 + log(2)
        1.1931
    """
    _check_dice_ce_options(
        activation=activation,
        include_background=include_background,
        smooth_nr=smooth_nr,
        smooth_dr=smooth_dr,
        lambda_dice=lambda_dice,
        lambda_ce=lambda_ce,
        reduction=reduction,
    )
    check_logits(logits)
    check_include_background(include_background, logits.shape[1])
    index = is_index_target(target, logits)
    weights = class_weights_for(class_weights, logits, include_background=include_background)
    voxels = as_voxel_weights(voxel_weights, logits)
    fused = index and activation == "softmax"  # then CE runs F.cross_entropy on the indices directly
    maps = one_hot(target, logits, index=index) if lambda_dice > 0 or not fused else target
    terms: list[torch.Tensor] = []
    if lambda_dice > 0:
        dice = _soft_dice_per_sample(
            activate(logits, activation),
            maps,
            include_background=include_background,
            class_weights=weights,
            smooth_nr=smooth_nr,
            smooth_dr=smooth_dr,
            batch=False,
            voxel_weights=voxels,
        )
        terms.append(lambda_dice * dice)
    if lambda_ce > 0:
        ce = _cross_entropy_per_sample(
            logits,
            target if fused else maps,
            index=fused,
            activation=activation,
            class_weights=weights,
            voxel_weights=voxels,
        )
        terms.append(lambda_ce * ce)
    per_sample = terms[0] if len(terms) == 1 else terms[0] + terms[1]
    return reduce(per_sample, reduction)


class DiceCELoss(nn.Module):
    """Module form of :func:`dice_ce_loss`: holds the options, ``forward`` calls the function.

    Args:
        activation: ``"softmax"`` or ``"sigmoid"`` (binary cross-entropy per channel).
        include_background: keep class 0 in the Dice part.
        class_weights: ``None`` or K non-negative weights, kept as the buffer ``class_weights``.
        smooth_nr: ``>= 0``, Dice numerator smoothing.
        smooth_dr: ``> 0``, Dice denominator smoothing.
        lambda_dice: ``>= 0``, weight of the Dice part.
        lambda_ce: ``>= 0``, weight of the CE part (not both 0).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Raises:
        ValueError, TypeError: a bad option, naming it and its value.

    Example:
        >>> loss = DiceCELoss(activation="sigmoid", lambda_ce=0.5)
        >>> loss(torch.randn(2, 3, 4, 4, 4), torch.rand(2, 3, 4, 4, 4).round()).shape
        torch.Size([])
    """

    class_weights: torch.Tensor | None

    def __init__(
        self,
        activation: str = "softmax",
        include_background: bool = True,
        class_weights: ClassWeights = None,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        lambda_dice: float = 1.0,
        lambda_ce: float = 1.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        _check_dice_ce_options(
            activation=activation,
            include_background=include_background,
            smooth_nr=smooth_nr,
            smooth_dr=smooth_dr,
            lambda_dice=lambda_dice,
            lambda_ce=lambda_ce,
            reduction=reduction,
        )
        self.activation = activation
        self.include_background = include_background
        self.smooth_nr = smooth_nr
        self.smooth_dr = smooth_dr
        self.lambda_dice = lambda_dice
        self.lambda_ce = lambda_ce
        self.reduction = reduction
        self.register_buffer(
            "class_weights",
            as_class_weights(class_weights, include_background=include_background, check_values=True),
        )

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, voxel_weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        """See :func:`dice_ce_loss`."""
        return dice_ce_loss(
            logits,
            target,
            activation=self.activation,
            include_background=self.include_background,
            class_weights=self.class_weights,
            smooth_nr=self.smooth_nr,
            smooth_dr=self.smooth_dr,
            lambda_dice=self.lambda_dice,
            lambda_ce=self.lambda_ce,
            voxel_weights=voxel_weights,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        return (
            f"activation={self.activation!r}, include_background={self.include_background}, "
            f"smooth_nr={self.smooth_nr}, smooth_dr={self.smooth_dr}, lambda_dice={self.lambda_dice}, "
            f"lambda_ce={self.lambda_ce}, reduction={self.reduction!r}"
        )
