"""What the per-voxel attack losses (SegPGD, CosPGD, APGD) share, for softmax classes and sigmoid regions.

A softmax segmenter makes one decision per voxel, among ``K`` classes; a sigmoid (region) segmenter makes ``R``
independent yes/no decisions per voxel, one per region channel (e.g. BraTS WT, TC, ET). The attack losses are
written once over these decisions:

- targets: class indices ``(N, *spatial)`` int64 (softmax), or binary channel maps ``(N, R, *spatial)`` in the
  logits' dtype (sigmoid);
- per-decision values: ``(N, *spatial)`` (softmax) or ``(N, R, *spatial)`` (sigmoid);
- reduction: the mean over channels, then the (weighted) mean over voxels per sample, then ``reduction`` over
  samples (``"mean"``, ``"sum"`` or ``"none"``: one loss per sample ``(N,)``, each computed from that sample
  alone), which for sigmoid is how :func:`~art_seg.losses.cross_entropy_loss` averages its per-channel binary
  cross-entropy. Every attack loss takes ``reduction`` so that :func:`~art_seg.losses.per_sample_loss` can
  evaluate it once per batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from art_seg.losses._common import as_voxel_weights, one_hot, reduce, weighted_voxel_mean


def decision_targets(target: torch.Tensor, logits: torch.Tensor, activation: str) -> torch.Tensor:
    """The target of every decision.

    ``"softmax"``: class indices ``(N, *spatial)`` int64, from class indices or from soft / one-hot maps
    ``(N, K, *spatial)`` by argmax. ``"sigmoid"``: binary maps ``(N, R, *spatial)`` in the logits' dtype, from
    multi-hot or soft maps ``(N, R, *spatial)`` (float, bool or integer) thresholded at 0.5, or from class indices
    ``(N, *spatial)`` one-hot encoded (as art_seg's losses do).
    """
    if activation == "softmax":
        return target.long() if not target.is_floating_point() else target.argmax(dim=1)
    if target.ndim == logits.ndim:
        return (target > 0.5).to(logits.dtype)
    return one_hot(target, logits, index=True)


def decision_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, activation: str) -> torch.Tensor:
    """Cross-entropy of every decision: softmax CE per voxel, or binary CE per voxel and channel (sigmoid)."""
    if activation == "softmax":
        return F.cross_entropy(logits, targets, reduction="none")
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none")


def still_correct(logits: torch.Tensor, targets: torch.Tensor, activation: str) -> torch.Tensor:
    """1 where a decision still matches its target, else 0, in the logits' dtype and detached.

    ``"softmax"``: the voxel's argmax is its class; ``"sigmoid"``: the channel's side of 0 (``logit > 0`` is on)
    matches its binary target.
    """
    z = logits.detach()
    if activation == "softmax":
        return (z.argmax(dim=1) == targets).to(logits.dtype)
    return ((z > 0) == (targets > 0.5)).to(logits.dtype)


def decision_mean(
    values: torch.Tensor, logits: torch.Tensor, voxel_weights: torch.Tensor | None, reduction: str = "mean"
) -> torch.Tensor:
    """Mean of per-decision ``values`` over channels (sigmoid) and weighted voxels per sample, then ``reduction``
    over samples: a scalar for ``"mean"`` / ``"sum"``, ``(N,)`` for ``"none"``."""
    if values.ndim == logits.ndim:
        values = values.mean(dim=1)
    return reduce(weighted_voxel_mean(values, as_voxel_weights(voxel_weights, logits)), reduction)
