"""FGSM (Goodfellow et al. 2015), the study's single-step attack, for segmentation."""

from __future__ import annotations

from typing import Any

import numpy as np

from art_seg.attacks.base import SegmentationAttack
from art_seg.attacks.iterative_fgsm import IterativeFGSM


class FGSM(IterativeFGSM):
    """FGSM: one steepest-ascent step of size ``eps`` on the attack loss, then clipping to ``clip_values``.

    ``norm=np.inf`` gives ``x + eps * sign(grad)``, the study's attack; ``norm=2`` gives
    ``x + eps * grad / ||grad||_2``. With the same loss and eps it computes what ART's
    ``FastGradientMethod`` computes; unlike ART's (which drops ``mask`` for non-classifiers) it honours
    the perturbation mask.

    Args:
        estimator: a :class:`~art_seg.estimators.PyTorchSegmenter`.
        norm: ``np.inf`` or ``2``.
        eps: budget (scalar or per channel), in input units (z-scored intensity).
        loss: ``None`` (the estimator's loss), a loss name or a callable.
        batch_size: samples attacked together.
        verbose: progress bar over batches.

    Example:
        >>> x_adv = FGSM(segmenter, eps=0.05).generate(x, y)
    """

    attack_params = SegmentationAttack.attack_params

    def __init__(
        self,
        estimator: Any,
        norm: Any = np.inf,
        eps: Any = 0.1,
        loss: Any = None,
        batch_size: int = 8,
        verbose: bool = False,
    ) -> None:
        super().__init__(
            estimator,
            norm=norm,
            eps=eps,
            eps_step=eps,
            max_iter=1,
            loss=loss,
            batch_size=batch_size,
            verbose=verbose,
        )

    def _check_params(self) -> None:
        self.eps_step = self.eps  # one step of the full budget, whatever eps was set to
        super()._check_params()
