"""Logit-margin loss (Carlini and Wagner 2017, per voxel): the attack loss that softmax saturation cannot hide."""

from __future__ import annotations

import math

import torch
from torch import nn

from art_seg._checks import check_number
from art_seg.losses._common import (
    as_voxel_weights,
    check_logits,
    check_options,
    is_index_target,
    one_hot,
    reduce,
    weighted_voxel_mean,
)


def _check_margin_options(*, activation: str, kappa: float, reduction: str) -> None:
    check_options(activation=activation, reduction=reduction)
    if kappa != math.inf:
        check_number("kappa", kappa, low=0)


def logit_margin_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    activation: str = "softmax",
    kappa: float = math.inf,
    voxel_weights: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Voxel-averaged logit margin: how far each voxel is from (or past) being misclassified, in logit units.

    Per voxel ``v`` with true class ``y_v`` (the argmax of a soft / one-hot target):

    - ``"softmax"``: ``m_v = max_{j != y_v} z_vj - z_vy``, negative while the voxel is classified correctly;
    - ``"sigmoid"``: ``m_v = (1/K) sum_k (1 - 2 t_vk) z_vk`` with ``t`` the (multi-hot) target thresholded at
      0.5: each channel's logit signed so that a wrong side of 0 is positive.

    ``m_v`` is clamped above at ``kappa`` (a voxel fooled by more than ``kappa`` stops counting; ``inf``: no
    clamp) and averaged over (weighted) voxels per sample. Ascending it is an untargeted attack; unlike
    cross-entropy, its gradient does not vanish when the softmax saturates, which is how defensive
    distillation hides gradients (Carlini and Wagner 2016), so it serves as the gradient-masking check.

    Args:
        logits: raw scores ``(N, K, *spatial)``.
        target: class indices ``(N, *spatial)`` or soft / one-hot maps ``(N, K, *spatial)``.
        activation: ``"softmax"`` or ``"sigmoid"``.
        kappa: clamp ``>= 0`` in logit units, or ``math.inf``.
        voxel_weights: ``None`` or non-negative weights broadcastable to ``(N, *spatial)``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (shape ``(N,)``).

    Returns:
        A scalar tensor, or per-sample losses ``(N,)`` for ``reduction="none"``.

    Raises:
        ValueError: unknown ``activation`` / ``reduction``, ``kappa < 0``, or shapes that do not fit.
        TypeError: non-tensor inputs, non-floating logits, bool / complex target.

    Example:
        >>> logits = torch.tensor([[[2.0], [0.5], [-1.0]]])  # (1, 3, 1): one voxel, class 0 wins by 1.5
        >>> logit_margin_loss(logits, torch.zeros(1, 1, dtype=torch.long)).item()
        -1.5
    """
    _check_margin_options(activation=activation, kappa=kappa, reduction=reduction)
    check_logits(logits)
    index = is_index_target(target, logits)
    if activation == "softmax":
        labels = (target.long() if index else target.argmax(dim=1)).unsqueeze(1)
        true = logits.gather(1, labels)
        others = logits.scatter(1, labels, -math.inf).amax(dim=1, keepdim=True)
        margin = (others - true).squeeze(1)
    else:
        maps = one_hot(target, logits, index=True) if index else (target > 0.5).to(logits.dtype)
        margin = ((1 - 2 * maps) * logits).mean(dim=1)
    if kappa != math.inf:
        margin = margin.clamp(max=kappa)
    return reduce(weighted_voxel_mean(margin, as_voxel_weights(voxel_weights, logits)), reduction)


class LogitMarginLoss(nn.Module):
    """Module form of :func:`logit_margin_loss`: holds the options, ``forward`` calls the function.

    Args:
        activation: ``"softmax"`` or ``"sigmoid"``.
        kappa: clamp ``>= 0`` in logit units, or ``math.inf``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Raises:
        ValueError, TypeError: a bad option, naming it and its value.

    Example:
        >>> LogitMarginLoss(kappa=1.0)(torch.zeros(1, 2, 3, 3), torch.ones(1, 3, 3, dtype=torch.long)).item()
        0.0
    """

    def __init__(self, activation: str = "softmax", kappa: float = math.inf, reduction: str = "mean") -> None:
        super().__init__()
        _check_margin_options(activation=activation, kappa=kappa, reduction=reduction)
        self.activation = activation
        self.kappa = kappa
        self.reduction = reduction

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, voxel_weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        """See :func:`logit_margin_loss`."""
        return logit_margin_loss(
            logits,
            target,
            activation=self.activation,
            kappa=self.kappa,
            voxel_weights=voxel_weights,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}, kappa={self.kappa}, reduction={self.reduction!r}"
