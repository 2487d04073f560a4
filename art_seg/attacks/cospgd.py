"""CosPGD (Agnihotri, Jung, Keuper, ICML 2024): PGD with each voxel's loss scaled by how right it still is."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import torch

from art_seg._checks import check_type
from art_seg.attacks.iterative_fgsm import IterativeFGSM
from art_seg.attacks.voxel_losses import decision_cross_entropy, decision_mean, decision_targets


def cospgd_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    targeted: bool = False,
    activation: str = "softmax",
    voxel_weights: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """CosPGD's objective: the mean over decisions of ``s_d * ce_d``, ``s_d`` detached.

    ``"softmax"``: a decision is a voxel; ``s_v = cos(softmax(z_v), onehot(y_v))`` untargeted (voxels already
    fooled fade out), ``1 - cos(...)`` targeted (voxels already at the target fade out); ``ce_v`` is the
    cross-entropy against ``target`` (class indices or soft maps taken by argmax).

    ``"sigmoid"``: a decision is a voxel's region channel, seen as the two-class softmax ``(1 - p, p)`` with
    ``p = sigmoid(z)``: ``cos = p_t / ||(1 - p, p)||``, ``p_t`` the probability of the target side (``p`` where
    the multi-hot target channel is on, ``1 - p`` where it is off), and ``ce`` the channel's binary
    cross-entropy. Per channel, because the cosine of a voxel's whole probability vector to its multi-hot
    target is undefined wherever no region is on (most of a scan), and because the loss it scales is per channel.

    The mean runs over channels, then over (weighted) voxels per sample, then ``reduction`` over samples
    (``"none"``: ``(N,)``).
    """
    targets = decision_targets(target, logits, activation)
    ce = decision_cross_entropy(logits, targets, activation)
    with torch.no_grad():
        if activation == "softmax":
            p = logits.softmax(dim=1)
            on_target = p.gather(1, targets.unsqueeze(1)).squeeze(1)
            cosine = on_target / p.norm(dim=1).clamp_min(torch.finfo(p.dtype).tiny)
        else:
            p = logits.sigmoid()
            cosine = torch.where(targets > 0.5, p, 1 - p) / torch.hypot(p, 1 - p)
        scale = 1 - cosine if targeted else cosine
    return decision_mean(scale * ce, logits, voxel_weights, reduction)


class CosPGD(IterativeFGSM):
    """CosPGD: i-FGSM / PGD on the cross-entropy of each voxel scaled by the cosine similarity of its softmax to its
    (one-hot) label, so that the loss of voxels already fooled fades and the budget goes to those still right.

    With ``targeted=True`` ``y`` is the target map and the attack descends the cross-entropy to it, each voxel
    scaled by ``1 - cos``. Sigmoid (region) segmenters: binary cross-entropy and cosine per voxel and region
    channel (see :func:`cospgd_loss`).

    Args:
        estimator, norm, eps, eps_step, max_iter, random_start, batch_size, seed, verbose: as in
            :class:`~art_seg.attacks.IterativeFGSM` (eps in input units: z-scored intensity for BraTS).
        targeted: push toward the label map ``y`` instead of away from it.
    """

    attack_params = [p for p in IterativeFGSM.attack_params if p != "loss"] + ["targeted"]

    def __init__(
        self,
        estimator: Any,
        norm: Any = np.inf,
        eps: Any = 0.1,
        eps_step: Any = 0.025,
        max_iter: int = 10,
        random_start: bool = False,
        batch_size: int = 8,
        seed: int | None = None,
        verbose: bool = False,
        targeted: bool = False,
    ) -> None:
        check_type("targeted", targeted, bool)
        super().__init__(
            estimator, norm=norm, eps=eps, eps_step=eps_step, max_iter=max_iter, random_start=random_start,
            batch_size=batch_size, seed=seed, verbose=verbose,
        )  # fmt: skip
        self._targeted = targeted

    def _loss_at(self, t: int) -> Any:
        return partial(cospgd_loss, targeted=self.targeted, activation=self.estimator.activation)
