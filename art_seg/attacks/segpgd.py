"""SegPGD (Gu, Zhao, Tresp, Torr, ECCV 2022): PGD whose cross-entropy shifts from correct to fooled voxels."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import torch

from art_seg.attacks.iterative_fgsm import IterativeFGSM
from art_seg.attacks.voxel_losses import decision_cross_entropy, decision_mean, decision_targets, still_correct


def segpgd_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: float,
    activation: str = "softmax",
    voxel_weights: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """SegPGD's objective: ``((1 - w) sum_{correct} ce_d + w sum_{wrong} ce_d) / sum_d m_d`` over decisions ``d``.

    ``"softmax"``: a decision is a voxel, ``ce_d`` its cross-entropy against ``target`` (class indices
    ``(N, *spatial)``, or soft maps ``(N, K, *spatial)`` taken by argmax), correct when the argmax of the logits
    (detached) is its class. ``"sigmoid"``: a decision is a voxel's region channel, ``ce_d`` its binary
    cross-entropy against the multi-hot ``target`` ``(N, R, *spatial)`` (thresholded at 0.5), correct when
    ``logit > 0`` matches the target channel; the sum runs over channels and voxels and is divided by ``R`` times
    the voxels' weight. ``w`` is the weight of the already fooled decisions, ``m`` the voxel weights (all 1 by
    default). Returns the mean over samples (``reduction="mean"``), their sum (``"sum"``) or each sample's
    value ``(N,)`` (``"none"``).
    """
    targets = decision_targets(target, logits, activation)
    ce = decision_cross_entropy(logits, targets, activation)
    correct = still_correct(logits, targets, activation)
    per_decision = ((1 - weight) * correct + weight * (1 - correct)) * ce
    return decision_mean(per_decision, logits, voxel_weights, reduction)


class SegPGD(IterativeFGSM):
    """SegPGD: i-FGSM / PGD with the loss weight of fooled voxels rising as ``lambda_t = t / (2 T)``.

    At iteration ``t`` (0-based) of ``T = max_iter``, correctly classified voxels weigh ``1 - lambda_t`` and wrongly
    classified ones ``lambda_t``: early steps push voxels that are still right instead of piling onto voxels that are
    already fooled, which dominate a plain per-voxel loss (Gu et al. 2022). Untargeted. Softmax segmenters take
    cross-entropy per voxel; sigmoid (region) segmenters binary cross-entropy per voxel and region channel, each
    voxel-channel weighted as correct or fooled on its own (see :func:`segpgd_loss`).

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

    def _loss_at(self, t: int) -> Any:
        return partial(segpgd_loss, weight=t / (2 * self.max_iter), activation=self.estimator.activation)
