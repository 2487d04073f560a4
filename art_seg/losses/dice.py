"""Soft Dice loss (per class, averaged with optional class weights), following MONAI's ``DiceLoss``."""

from __future__ import annotations

import torch
from torch import nn

from art_seg.losses._common import (
    ClassWeights,
    activate,
    as_class_weights,
    as_voxel_weights,
    check_dice_options,
    check_include_background,
    check_logits,
    check_options,
    class_weights_for,
    is_index_target,
    one_hot,
    overlap_sums,
    reduce,
    weighted_class_mean,
)


def _check_soft_dice_options(
    *, activation: str, include_background: bool, smooth_nr: float, smooth_dr: float, batch: bool, reduction: str
) -> None:
    check_options(activation=activation, reduction=reduction)
    check_dice_options(
        include_background=include_background,
        smooth_nr=smooth_nr,
        smooth_dr=smooth_dr,
        batch=batch,
        reduction=reduction,
    )


def _soft_dice_per_sample(
    probs: torch.Tensor,
    onehot: torch.Tensor,
    *,
    include_background: bool,
    class_weights: torch.Tensor | None,
    smooth_nr: float,
    smooth_dr: float,
    batch: bool,
    voxel_weights: torch.Tensor | None,
) -> torch.Tensor:
    """Soft Dice loss of checked probabilities and maps: ``(N,)``, or ``()`` when ``batch`` is ``True``."""
    intersection, pred_sum, target_sum = overlap_sums(
        probs, onehot, voxel_weights, include_background=include_background, batch=batch
    )
    dice = (2.0 * intersection + smooth_nr) / (pred_sum + target_sum + smooth_dr)
    if class_weights is not None and not include_background:
        class_weights = class_weights[1:]
    return weighted_class_mean(1.0 - dice, class_weights)


def soft_dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    activation: str = "softmax",
    include_background: bool = True,
    class_weights: ClassWeights = None,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    batch: bool = False,
    voxel_weights: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Soft Dice loss: one minus the (class-weighted) mean over classes of each class's soft Dice.

    With probabilities ``p = activation(logits)`` (softmax over all K channels, or a sigmoid per channel),
    maps ``t`` and voxel weights ``w`` (1 when ``None``), for each kept class ``k``::

        dice_k = (2 * sum_v w_v p_vk t_vk + smooth_nr) / (sum_v w_v p_vk + sum_v w_v t_vk + smooth_dr)
        loss   = sum_k cw_k (1 - dice_k) / sum_k cw_k

    Sums run over the spatial voxels of each sample, or over all voxels of the batch when ``batch`` is
    ``True`` (MONAI's flag). Class 0 is dropped after the activation when ``include_background`` is
    ``False``; ``class_weights`` still has K entries and the background entry is then ignored.

    Empty classes (smoothing convention): a class absent from the target *and* not predicted scores
    ``dice ~ smooth_nr / smooth_dr = 1`` (loss 0); a class absent from the target but predicted scores
    ``dice ~ 0`` (loss ~1). Nothing is NaN, including all-zero voxel weights (every class is then "empty",
    so the loss is ``1 - smooth_nr / smooth_dr``, 0 for the defaults). Weighting voxel ``v`` by 0 gives
    exactly the loss of the volume with ``v`` removed.

    Args:
        logits: raw scores ``(N, K, *spatial)``, floating, 1 to 3 spatial dims.
        target: class indices ``(N, *spatial)`` (any integer dtype; values not checked) or soft / one-hot /
            multi-hot maps ``(N, K, *spatial)`` in [0, 1]. Indices are one-hot encoded for either activation.
        activation: ``"softmax"`` (mutually exclusive classes) or ``"sigmoid"`` (independent channels).
        include_background: keep class (channel) 0 in the average; ``False`` needs ``K >= 2``.
        class_weights: ``None`` or K non-negative weights with a positive one among the kept classes.
        smooth_nr: ``>= 0``, added to the numerator.
        smooth_dr: ``> 0``, added to the denominator.
        batch: sum over the batch before taking Dice (one batch loss; then ``reduction="none"`` is an error).
        voxel_weights: ``None`` or non-negative weights broadcastable to ``(N, *spatial)`` (e.g. a mask).
        reduction: ``"mean"`` (mean of per-sample losses), ``"sum"`` (their sum) or ``"none"`` (shape
            ``(N,)``). With ``batch=True`` there is one loss, returned as a scalar for ``"mean"`` and ``"sum"``.

    Returns:
        A scalar tensor, or per-sample losses ``(N,)`` for ``reduction="none"``. Values lie in [0, 1] when
        ``smooth_nr <= smooth_dr``.

    Raises:
        ValueError: unknown ``activation`` / ``reduction``, negative smoothing, ``batch=True`` with
            ``reduction="none"``, ``include_background=False`` with ``K == 1``, bad class weights or shapes.
        TypeError: non-tensor inputs, non-floating logits, bool / complex target, non-bool flags.

    Example:
        >>> logits = torch.tensor([[[0.0, 0.0], [0.0, 0.0]]])  # N=1, K=2, 2 voxels: p = 1/2 everywhere
        >>> target = torch.tensor([[0, 1]])
        >>> round(soft_dice_loss(logits, target).item(), 4)  # dice = 2 * 0.5 / (1 + 1) per class
        0.5
    """
    _check_soft_dice_options(
        activation=activation,
        include_background=include_background,
        smooth_nr=smooth_nr,
        smooth_dr=smooth_dr,
        batch=batch,
        reduction=reduction,
    )
    check_logits(logits)
    check_include_background(include_background, logits.shape[1])
    index = is_index_target(target, logits)
    per_sample = _soft_dice_per_sample(
        activate(logits, activation),
        one_hot(target, logits, index=index),
        include_background=include_background,
        class_weights=class_weights_for(class_weights, logits, include_background=include_background),
        smooth_nr=smooth_nr,
        smooth_dr=smooth_dr,
        batch=batch,
        voxel_weights=as_voxel_weights(voxel_weights, logits),
    )
    return reduce(per_sample, reduction)


class SoftDiceLoss(nn.Module):
    """Module form of :func:`soft_dice_loss`: holds the options, ``forward`` calls the function.

    Args:
        activation: ``"softmax"`` or ``"sigmoid"``.
        include_background: keep class 0 in the average.
        class_weights: ``None`` or K non-negative weights, kept as the buffer ``class_weights``.
        smooth_nr: ``>= 0``, added to the numerator.
        smooth_dr: ``> 0``, added to the denominator.
        batch: sum over the batch before taking Dice (not with ``reduction="none"``).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Raises:
        ValueError, TypeError: a bad option, naming it and its value.

    Example:
        >>> loss = SoftDiceLoss(include_background=False, reduction="none")
        >>> loss(torch.randn(2, 3, 4, 4, 4), torch.randint(0, 3, (2, 4, 4, 4))).shape
        torch.Size([2])
    """

    class_weights: torch.Tensor | None

    def __init__(
        self,
        activation: str = "softmax",
        include_background: bool = True,
        class_weights: ClassWeights = None,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        _check_soft_dice_options(
            activation=activation,
            include_background=include_background,
            smooth_nr=smooth_nr,
            smooth_dr=smooth_dr,
            batch=batch,
            reduction=reduction,
        )
        self.activation = activation
        self.include_background = include_background
        self.smooth_nr = smooth_nr
        self.smooth_dr = smooth_dr
        self.batch = batch
        self.reduction = reduction
        self.register_buffer(
            "class_weights",
            as_class_weights(class_weights, include_background=include_background, check_values=True),
        )

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, voxel_weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        """See :func:`soft_dice_loss`."""
        return soft_dice_loss(
            logits,
            target,
            activation=self.activation,
            include_background=self.include_background,
            class_weights=self.class_weights,
            smooth_nr=self.smooth_nr,
            smooth_dr=self.smooth_dr,
            batch=self.batch,
            voxel_weights=voxel_weights,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        return (
            f"activation={self.activation!r}, include_background={self.include_background}, "
            f"smooth_nr={self.smooth_nr}, smooth_dr={self.smooth_dr}, batch={self.batch}, "
            f"reduction={self.reduction!r}"
        )
