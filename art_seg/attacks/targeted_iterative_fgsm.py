"""Targeted iterative FGSM (ti-FGSM of Liu et al. 2019): push every voxel toward a chosen target label map.

Not to be confused with the translation-invariant TI-FGSM of Dong et al. (2019) that other libraries ship.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from art_seg._checks import check_number
from art_seg.attacks.iterative_fgsm import IterativeFGSM
from art_seg.attacks.scores import hard_labels, one_hot, per_sample_dice


class TargetedIterativeFGSM(IterativeFGSM):
    """ti-FGSM: i-FGSM that descends the attack loss toward a target label map given as ``y``.

    The target is any label map: build one with :mod:`art_seg.attacks.targets` (``no_tumour``,
    ``erase_labels``, ``relabel``, ``shrink``, ``grow``) or pass your own: class indices, or multi-hot region
    maps ``(N, R, *spatial)`` for a sigmoid model. ``generate`` requires ``y``.

    Args:
        estimator, norm, eps, eps_step, max_iter, random_start, loss, batch_size, seed, verbose: as in
            :class:`IterativeFGSM`.
        early_stop_dice: when set, a sample stops being stepped once the Dice between its prediction and its
            target (mean over classes, empty-in-both scoring 1) reaches this value, checked before each step
            at the cost of one extra forward pass. ``self.iterations_`` then holds each sample's steps.

    Example:
        >>> target = erase_labels(y, labels=[1, 2, 3])          # every tumour voxel to background
        >>> attack = TargetedIterativeFGSM(segmenter, eps=0.1, eps_step=0.01, max_iter=20, early_stop_dice=0.99)
        >>> x_adv = attack.generate(x, target)
    """

    attack_params = IterativeFGSM.attack_params + ["early_stop_dice"]

    def __init__(
        self,
        estimator: Any,
        norm: Any = np.inf,
        eps: Any = 0.1,
        eps_step: Any = 0.02,
        max_iter: int = 10,
        random_start: bool = False,
        loss: Any = None,
        batch_size: int = 8,
        seed: int | None = None,
        verbose: bool = False,
        early_stop_dice: float | None = None,
    ) -> None:
        self.early_stop_dice = early_stop_dice
        super().__init__(
            estimator,
            norm=norm,
            eps=eps,
            eps_step=eps_step,
            max_iter=max_iter,
            random_start=random_start,
            loss=loss,
            batch_size=batch_size,
            seed=seed,
            verbose=verbose,
        )
        self._targeted = True

    def _check_params(self) -> None:
        super()._check_params()
        if self.early_stop_dice is not None:
            check_number("early_stop_dice", self.early_stop_dice, low=0.0, high=1.0, low_inclusive=False)

    def _active(self, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        if self.early_stop_dice is None:
            return None
        activation = self.estimator.activation
        probabilities = self.estimator.predict(x_adv, batch_size=self.batch_size)
        prediction = hard_labels(probabilities, activation, from_logits=False)
        if y.is_floating_point():
            target = hard_labels(y, activation, from_logits=False)
        else:
            target = one_hot(y, self.estimator.nb_classes)
        return per_sample_dice(prediction, target) < self.early_stop_dice
