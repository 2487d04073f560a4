"""Cross-entropy for segmentation, with class and voxel weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from art_seg.losses._common import (
    ClassWeights,
    as_class_weights,
    as_voxel_weights,
    check_logits,
    check_options,
    class_weights_for,
    is_index_target,
    one_hot,
    reduce,
    weighted_voxel_mean,
)


def _cross_entropy_per_sample(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    index: bool,
    activation: str,
    class_weights: torch.Tensor | None,
    voxel_weights: torch.Tensor | None,
) -> torch.Tensor:
    """Per-sample CE ``(N,)`` of checked inputs; ``target`` is indices if ``index`` else maps ``(N, K, ...)``."""
    if activation == "softmax":
        # Fused kernel; with probability targets it computes -sum_k cw_k t_k log_softmax(logits)_k per voxel.
        target = target.long() if index else target
        per_voxel = F.cross_entropy(logits, target, weight=class_weights, reduction="none")
    else:
        maps = one_hot(target, logits, index=True) if index else target
        per_channel = F.binary_cross_entropy_with_logits(logits, maps, reduction="none")
        if class_weights is not None:
            per_channel = per_channel * class_weights.view(1, -1, *([1] * (logits.ndim - 2)))
        per_voxel = per_channel.mean(1)
    return weighted_voxel_mean(per_voxel, voxel_weights)


def cross_entropy_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    activation: str = "softmax",
    class_weights: ClassWeights = None,
    voxel_weights: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Voxel-wise cross-entropy, averaged over (weighted) voxels per sample.

    With logits ``z``, the loss of voxel ``v`` is

    - ``"softmax"``: ``ce_v = -sum_k cw_k t_vk log softmax(z_v)_k`` (for class indices, ``-cw_y log p_vy``);
    - ``"sigmoid"``: ``ce_v = (1/K) sum_k cw_k BCE(sigmoid(z_vk), t_vk)``, binary cross-entropy per
      independent channel (overlapping regions such as BraTS WT / TC / ET), averaged over channels.

    Per-sample loss: ``sum_v w_v ce_v / sum_v w_v`` (``w`` = ``voxel_weights``), or the plain voxel mean
    without voxel weights; an all-zero weight map gives 0. Without class or voxel weights the softmax loss
    equals ``F.cross_entropy(logits, target)`` for index and for soft targets.

    Note:
        With class weights the normalisation is by the voxel weights only (a per-voxel weighted mean of
        ``cw_y * ce``), *not* by ``sum_v cw_{y_v}`` as in ``F.cross_entropy(weight=...)``'s mean for hard
        labels. This keeps each sample's loss independent of its class frequencies and identical for index
        and one-hot targets.

    Temperature: there is none here. Defensive distillation divides the logits by ``T`` itself
    (:class:`~art_seg.defences.DistillationTrainer`), its one temperature mechanism, and passes the teacher's
    ``softmax(teacher_logits / T)`` as soft maps.

    Args:
        logits: raw scores ``(N, K, *spatial)``, floating, 1 to 3 spatial dims.
        target: class indices ``(N, *spatial)`` (any integer dtype; values not checked) or soft / one-hot maps
            ``(N, K, *spatial)`` with values in [0, 1]. With ``"sigmoid"``, indices are one-hot encoded.
        activation: ``"softmax"`` (mutually exclusive classes) or ``"sigmoid"`` (independent channels).
        class_weights: ``None`` or K non-negative weights, at least one positive.
        voxel_weights: ``None`` or non-negative weights broadcastable to ``(N, *spatial)`` (e.g. a mask).
        reduction: ``"mean"`` (mean of per-sample losses), ``"sum"`` (their sum) or ``"none"`` (shape ``(N,)``).

    Returns:
        A scalar tensor, or per-sample losses ``(N,)`` for ``reduction="none"``.

    Raises:
        ValueError: unknown ``activation`` / ``reduction``, bad class weights, or
            shapes that do not fit the conventions above.
        TypeError: non-tensor inputs, non-floating logits, bool / complex target.

    Example:
        >>> logits = torch.zeros(2, 3, 4, 4)
        >>> target = torch.zeros(2, 4, 4, dtype=torch.long)
        >>> round(cross_entropy_loss(logits, target).item(), 4)  # log(3)
        1.0986
        >>> cross_entropy_loss(logits, target, reduction="none").shape
        torch.Size([2])
    """
    check_options(activation=activation, reduction=reduction)
    check_logits(logits)
    index = is_index_target(target, logits)
    per_sample = _cross_entropy_per_sample(
        logits,
        target if index else target.to(logits.dtype),
        index=index,
        activation=activation,
        class_weights=class_weights_for(class_weights, logits),
        voxel_weights=as_voxel_weights(voxel_weights, logits),
    )
    return reduce(per_sample, reduction)


class CrossEntropyLoss(nn.Module):
    """Module form of :func:`cross_entropy_loss`: holds the options, ``forward`` calls the function.

    Args:
        activation: ``"softmax"`` or ``"sigmoid"``.
        class_weights: ``None`` or K non-negative weights (at least one positive), kept as the buffer
            ``class_weights`` so that it follows ``.to(device)``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Raises:
        ValueError, TypeError: a bad option, naming it and its value.

    Example:
        >>> loss = CrossEntropyLoss(class_weights=[0.5, 1.0])
        >>> loss(torch.zeros(1, 2, 3, 3), torch.ones(1, 3, 3, dtype=torch.long)).shape
        torch.Size([])
    """

    class_weights: torch.Tensor | None

    def __init__(
        self,
        activation: str = "softmax",
        class_weights: ClassWeights = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        check_options(activation=activation, reduction=reduction)
        self.activation = activation
        self.reduction = reduction
        self.register_buffer("class_weights", as_class_weights(class_weights, check_values=True))

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, voxel_weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        """See :func:`cross_entropy_loss`."""
        return cross_entropy_loss(
            logits,
            target,
            activation=self.activation,
            class_weights=self.class_weights,
            voxel_weights=voxel_weights,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}, reduction={self.reduction!r}"
