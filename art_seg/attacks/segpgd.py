"""SegPGD (Gu, Zhao, Tresp, Torr, ECCV 2022): PGD whose cross-entropy shifts from correct to fooled voxels."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from art_seg.attacks.iterative_fgsm import IterativeFGSM
from art_seg.losses._common import as_voxel_weights, weighted_voxel_mean


def segpgd_loss(
    logits: torch.Tensor, target: torch.Tensor, *, weight: float, voxel_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """SegPGD's objective: ``((1 - w) sum_{correct} ce_v + w sum_{wrong} ce_v) / sum_v m_v``.

    ``correct`` are the voxels the model still labels right (``argmax`` of the logits, detached), ``w`` the weight
    of the already fooled ones, ``ce_v`` the voxel's cross-entropy against ``target`` (class indices
    ``(N, *spatial)``, or soft maps ``(N, K, *spatial)`` taken by argmax), ``m`` the voxel weights (all 1 by default).
    Returns the mean over samples.
    """
    labels = target.long() if not target.is_floating_point() else target.argmax(dim=1)
    ce = F.cross_entropy(logits, labels, reduction="none")
    correct = (logits.detach().argmax(dim=1) == labels).to(ce.dtype)
    per_voxel = ((1 - weight) * correct + weight * (1 - correct)) * ce
    return weighted_voxel_mean(per_voxel, as_voxel_weights(voxel_weights, logits)).mean()


class SegPGD(IterativeFGSM):
    """SegPGD: i-FGSM / PGD with the loss weight of fooled voxels rising as ``lambda_t = t / (2 T)``.

    At iteration ``t`` (0-based) of ``T = max_iter``, correctly classified voxels weigh ``1 - lambda_t`` and wrongly
    classified ones ``lambda_t``: early steps push voxels that are still right instead of piling onto voxels that are
    already fooled, which dominate a plain per-voxel loss (Gu et al. 2022). Untargeted, softmax segmenters.

    Args:
        estimator, norm, eps, eps_step, max_iter, random_start, batch_size, seed, verbose: as in
            :class:`~art_seg.attacks.IterativeFGSM` (eps in input units: z-scored intensity for BraTS).

    Example:
        >>> x_adv = SegPGD(segmenter, eps=0.1, eps_step=0.025, max_iter=10).generate(x, y)  # doctest: +SKIP
    """

    attack_params = [p for p in IterativeFGSM.attack_params if p != "loss"]

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
    ) -> None:
        super().__init__(
            estimator, norm=norm, eps=eps, eps_step=eps_step, max_iter=max_iter, random_start=random_start,
            batch_size=batch_size, seed=seed, verbose=verbose,
        )  # fmt: skip
        if estimator.activation != "softmax":
            raise ValueError(f"SegPGD needs a softmax segmenter, got activation={estimator.activation!r}")

    def _loss_at(self, t: int) -> Any:
        return partial(segpgd_loss, weight=t / (2 * self.max_iter))
