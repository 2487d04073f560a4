"""CosPGD (Agnihotri, Jung, Keuper, ICML 2024): PGD with each voxel's loss scaled by how right it still is."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from art_seg._checks import check_type
from art_seg.attacks.iterative_fgsm import IterativeFGSM
from art_seg.losses._common import as_voxel_weights, weighted_voxel_mean


def cospgd_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    targeted: bool = False,
    voxel_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """CosPGD's objective: the voxel mean of ``s_v * ce_v``, ``s_v`` detached.

    ``s_v = cos(softmax(z_v), onehot(y_v))`` untargeted (voxels already fooled fade out), ``1 - cos(...)`` targeted
    (voxels already at the target fade out); ``ce_v`` is the cross-entropy against ``target`` (class indices or soft
    maps taken by argmax). The mean runs over (weighted) voxels per sample, then over samples.
    """
    labels = target.long() if not target.is_floating_point() else target.argmax(dim=1)
    ce = F.cross_entropy(logits, labels, reduction="none")
    with torch.no_grad():
        p = logits.softmax(dim=1)
        cosine = p.gather(1, labels.unsqueeze(1)).squeeze(1) / p.norm(dim=1).clamp_min(torch.finfo(p.dtype).tiny)
        scale = 1 - cosine if targeted else cosine
    per_voxel = scale * ce
    return weighted_voxel_mean(per_voxel, as_voxel_weights(voxel_weights, logits)).mean()


class CosPGD(IterativeFGSM):
    """CosPGD: i-FGSM / PGD on the cross-entropy of each voxel scaled by the cosine similarity of its softmax to its
    (one-hot) label, so that the loss of voxels already fooled fades and the budget goes to those still right.

    With ``targeted=True`` ``y`` is the target map and the attack descends the cross-entropy to it, each voxel
    scaled by ``1 - cos``. Softmax segmenters.

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
        if estimator.activation != "softmax":
            raise ValueError(f"CosPGD needs a softmax segmenter, got activation={estimator.activation!r}")

    def _loss_at(self, t: int) -> Any:
        return partial(cospgd_loss, targeted=self.targeted)
