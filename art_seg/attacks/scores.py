"""Per-sample Dice between label maps, in torch, for attack bookkeeping (early stops, worst-case choices)."""

from __future__ import annotations

import torch


def hard_labels(scores: torch.Tensor, activation: str) -> torch.Tensor:
    """Label maps from probabilities, logits or soft targets ``(N, K, *spatial)``.

    ``"softmax"``: the one-hot argmax; ``"sigmoid"``: channels above 0.5 (probabilities) as multi-hot maps.
    Returns a bool tensor ``(N, K, *spatial)``.
    """
    if activation == "softmax":
        index = scores.argmax(dim=1, keepdim=True)
        return torch.zeros_like(scores, dtype=torch.bool).scatter_(1, index, True)
    return scores > 0.5


def one_hot(labels: torch.Tensor, nb_classes: int) -> torch.Tensor:
    """Class-index maps ``(N, *spatial)`` as a bool one-hot tensor ``(N, K, *spatial)``."""
    classes = torch.arange(nb_classes, device=labels.device).view(1, -1, *[1] * (labels.ndim - 1))
    return labels.unsqueeze(1) == classes


def per_sample_dice(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over classes of each sample's Dice between bool maps ``(N, K, *spatial)``; returns ``(N,)``.

    A class empty in both prediction and target scores 1 (the BraTS convention).
    """
    dims = tuple(range(2, prediction.ndim))
    overlap = (prediction & target).sum(dims).double()
    total = prediction.sum(dims).double() + target.sum(dims).double()
    dice = torch.where(total > 0, 2 * overlap / total.clamp_min(1), torch.ones_like(total))
    return dice.mean(dim=1)


def foreground_dice(logits: torch.Tensor, labels: torch.Tensor, activation: str) -> torch.Tensor:
    """Per-sample mean Dice over foreground classes of hard predictions; ``(N,)``.

    ``labels``: class indices ``(N, *spatial)`` or maps ``(N, K, *spatial)`` (taken hard). With ``"softmax"`` the
    background (class 0) is left out; with ``"sigmoid"`` every channel counts. Empty in both: 1 (BraTS).
    """
    prediction = hard_labels(logits, activation)
    target = one_hot(labels, logits.shape[1]) if not labels.is_floating_point() else hard_labels(labels, activation)
    first = 1 if activation == "softmax" and logits.shape[1] > 1 else 0
    return per_sample_dice(prediction[:, first:], target[:, first:])
