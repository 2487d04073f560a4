"""Per-sample Dice between label maps, in torch, for attack bookkeeping (early stops, worst-case choices)."""

from __future__ import annotations

import torch

from art_seg.estimators.prediction import hard_prediction


def hard_labels(scores: torch.Tensor, activation: str, *, from_logits: bool) -> torch.Tensor:
    """Label maps from logits, probabilities or soft targets ``(N, K, *spatial)``; bool ``(N, K, *spatial)``.

    ``"softmax"``: the one-hot argmax (the same for logits and probabilities). ``"sigmoid"``: the multi-hot map of
    the channels predicted on, ``logit > 0`` when ``from_logits``, else ``probability > 0.5`` (also for soft or
    multi-hot targets); the two agree, since ``sigmoid(z) > 0.5`` exactly when ``z > 0``.

    Raises:
        ValueError: an unknown ``activation``.
    """
    prediction = hard_prediction(scores, activation, from_logits=from_logits)
    return one_hot(prediction, scores.shape[1]) if activation == "softmax" else prediction


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
    """Per-sample mean Dice over foreground classes of the hard predictions from ``logits``; ``(N,)``.

    ``logits``: raw scores ``(N, K, *spatial)`` (not probabilities). ``labels``: class indices ``(N, *spatial)`` or maps ``(N, K, *spatial)`` (taken hard). With ``"softmax"`` the
    background (class 0) is left out; with ``"sigmoid"`` every channel counts. Empty in both: 1 (BraTS).
    """
    prediction = hard_labels(logits, activation, from_logits=True)
    if labels.is_floating_point():
        target = hard_labels(labels, activation, from_logits=False)
    else:
        target = one_hot(labels, logits.shape[1])
    first = 1 if activation == "softmax" and logits.shape[1] > 1 else 0
    return per_sample_dice(prediction[:, first:], target[:, first:])
