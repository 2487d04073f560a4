"""The two losses SEA adds to APGD for segmentation: Jensen-Shannon divergence and the masked spherical loss.

Croce, Singh and Hein, "Towards reliable evaluation and fast training of robust semantic segmentation models",
ECCV 2024 (SEA); reference code: github.com/nmndeep/robust-segmentation, ``semseg/utils/attacker.py``
(``js_loss`` / ``js_div_fn`` and ``single_logits_loss(normalized=True, masked=True)``, there named
``"js-avg"`` and ``"mask-norm-corrlog-avg"``). Both are written over the decisions of
:mod:`art_seg.attacks.voxel_losses`: voxels of a softmax model, voxel-channels of a sigmoid (region) model.
Each returns the quantity an untargeted attack ascends; a targeted attack descends it toward the target map.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from art_seg.attacks.voxel_losses import decision_mean, decision_targets, still_correct


def js_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    activation: str = "softmax",
    voxel_weights: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Jensen-Shannon divergence between each decision's predicted distribution ``p`` and its one-hot label ``e_y``.

    ``JS(p, e_y) = (KL(p || m) + KL(e_y || m)) / 2`` with ``m = (p + e_y) / 2`` (natural logarithm), which
    depends on the probability of the label alone, ``q = p_y``::

        JS = log 2 + (q log q - (1 + q) log(1 + q)) / 2,

    from 0 (``q = 1``) to ``log 2`` (``q = 0``). Bounded, so voxels already fooled stop dominating the loss,
    unlike cross-entropy (SEA's argument for it).

    - ``"softmax"``: ``q`` is the softmax probability of the voxel's class (``target`` class indices
      ``(N, *spatial)``, or soft / one-hot maps ``(N, K, *spatial)`` taken by argmax);
    - ``"sigmoid"``: every region channel is the two-class distribution ``(1 - s, s)``, ``s = sigmoid(z)``, and
      ``q`` is the probability of the target side (``s`` where the multi-hot target is on, ``1 - s`` where off).

    Targeted (descending it): the divergence from the target map. Mean over channels, (weighted) voxels, then
    ``reduction`` over samples (``"mean"``, ``"sum"`` or ``"none"``: ``(N,)``).

    Args:
        logits: ``(N, K, *spatial)``.
        target: as above.
        activation: ``"softmax"`` or ``"sigmoid"``.
        voxel_weights: ``None`` or non-negative weights broadcastable to ``(N, *spatial)``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Example:
        >>> logits = torch.tensor([[[0.0], [0.0]]])  # two classes, one voxel, p = (0.5, 0.5)
        >>> round(js_loss(logits, torch.tensor([[0]])).item(), 4)  # log 2 + (0.5 log 0.5 - 1.5 log 1.5) / 2
        0.2158
    """
    targets = decision_targets(target, logits, activation)
    if activation == "softmax":
        log_q = logits.log_softmax(dim=1).gather(1, targets.unsqueeze(1)).squeeze(1)
    else:
        log_q = F.logsigmoid(torch.where(targets > 0.5, logits, -logits))
    q = log_q.exp()
    values = math.log(2.0) + (q * log_q - (1 + q) * torch.log1p(q)) / 2
    return decision_mean(values, logits, voxel_weights, reduction)


def masked_spherical_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    activation: str = "softmax",
    masked: bool = True,
    targeted: bool = False,
    voxel_weights: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """SEA's masked spherical loss: minus the label's normalised logit, on the decisions not yet flipped.

    - ``"softmax"``: per voxel ``-z_y / ||z||_2`` (the logit vector projected on the unit sphere, SEA's
      ``normalized=True``, the norm differentiated through as in the reference), ``y`` the voxel's class;
    - ``"sigmoid"``: per voxel-channel ``-(2 t_k - 1) z_k / ||z||_2``, the logit signed toward the target side,
      ``||z||_2`` over the voxel's region channels and **detached**: with one region channel the undetached
      ratio would be ``sign(z)``, constant, with no gradient (the same reason two-class DLR needs its margin).

    ``masked=True``: only decisions still on the label's side count (for a targeted attack: those not yet at the
    target), the mask detached; ``masked=False`` is SEA's ``"norm-corrlog-avg"``, which its APGD tracks to pick
    the best point of the masked run. Mean over channels, (weighted) voxels, then ``reduction`` over samples.

    Args:
        logits: ``(N, K, *spatial)``.
        target: class indices ``(N, *spatial)`` or maps ``(N, K, *spatial)`` (argmax for softmax, multi-hot
            thresholded at 0.5 for sigmoid); the target map when ``targeted``.
        activation: ``"softmax"`` or ``"sigmoid"``.
        masked: count only the decisions still to flip.
        targeted: the mask keeps the decisions not yet at ``target`` instead of those still at it.
        voxel_weights: ``None`` or non-negative weights broadcastable to ``(N, *spatial)``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Example:
        >>> logits = torch.tensor([[[3.0], [4.0]]])  # one voxel, class 1 wins; label 0 is already fooled
        >>> abs(masked_spherical_loss(logits, torch.tensor([[0]])).item())  # masked out
        0.0
        >>> round(masked_spherical_loss(logits, torch.tensor([[0]]), masked=False).item(), 4)  # -3 / 5
        -0.6
    """
    targets = decision_targets(target, logits, activation)
    if activation == "softmax":
        on_label = logits.gather(1, targets.unsqueeze(1)).squeeze(1)
        values = -on_label / logits.norm(dim=1).clamp_min(torch.finfo(logits.dtype).tiny)
    else:
        norm = logits.detach().norm(dim=1, keepdim=True).clamp_min(torch.finfo(logits.dtype).tiny)
        values = -(2 * targets - 1) * logits / norm
    if masked:
        correct = still_correct(logits, targets, activation)
        values = values * ((1 - correct) if targeted else correct)
    return decision_mean(values, logits, voxel_weights, reduction)
