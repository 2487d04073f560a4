"""Dice-family losses for segmentation: a functional core plus a thin ``nn.Module`` for each.

Conventions shared by every loss:

- ``logits``: raw network outputs ``(N, K, *spatial)``, floating, 1 to 3 spatial dims;
- ``target``: integer class indices ``(N, *spatial)`` or float soft / one-hot / multi-hot maps
  ``(N, K, *spatial)`` in [0, 1] (shapes are checked on every call, label values never are);
- ``activation``: ``"softmax"`` (mutually exclusive classes) or ``"sigmoid"`` (independent channels, e.g.
  overlapping BraTS regions);
- ``voxel_weights``: optional non-negative weights broadcastable to ``(N, *spatial)``;
- ``reduction``: each loss first computes one loss per sample ``(N,)``; ``"none"`` returns them, ``"mean"``
  averages and ``"sum"`` adds them.

:data:`LOSSES` maps the names ``"ce"``, ``"dice"``, ``"generalized_dice"``, ``"dice_ce"`` and ``"margin"`` (the
logit margin, an attack loss) to the functions, and
:func:`per_sample_loss` (from :mod:`art_seg.losses.registry`) turns a name or callable into a per-sample loss.

Deep supervision (:mod:`art_seg.losses.deep_supervision`): :func:`deep_supervision_loss` combines the losses of
a network's heads with :func:`deep_supervision_weights` (nnU-Net's or MONAI's weighting). Other libraries'
losses: :func:`monai_loss` (:mod:`art_seg.losses.adapters`) hands MONAI losses targets in their shape.
"""

from __future__ import annotations

from art_seg.losses.adapters import MonaiLossAdapter, monai_loss
from art_seg.losses.cross_entropy import CrossEntropyLoss, cross_entropy_loss
from art_seg.losses.deep_supervision import DEEP_SUPERVISION, deep_supervision_loss, deep_supervision_weights
from art_seg.losses.dice import SoftDiceLoss, soft_dice_loss
from art_seg.losses.dice_ce import DiceCELoss, dice_ce_loss
from art_seg.losses.generalized_dice import GeneralizedDiceLoss, generalized_dice_loss
from art_seg.losses.margin import LogitMarginLoss, logit_margin_loss
from art_seg.losses.registry import LOSSES, per_sample_loss

__all__ = [
    "CrossEntropyLoss",
    "DEEP_SUPERVISION",
    "DiceCELoss",
    "GeneralizedDiceLoss",
    "LOSSES",
    "LogitMarginLoss",
    "MonaiLossAdapter",
    "SoftDiceLoss",
    "cross_entropy_loss",
    "deep_supervision_loss",
    "deep_supervision_weights",
    "dice_ce_loss",
    "generalized_dice_loss",
    "logit_margin_loss",
    "monai_loss",
    "per_sample_loss",
    "soft_dice_loss",
]
