"""Adversarial training for segmentation by data augmentation, as an ART ``Trainer`` (Goodfellow et al. 2015;
Madry et al. 2018).

Each batch has a share ``ratio`` of its samples replaced by adversarial examples made on the fly against the
current model, by an art_seg attack (``FGSM``, ``IterativeFGSM``, ``TargetedIterativeFGSM``, ...) or one of ART's
(``FastGradientMethod``, ``ProjectedGradientDescent``, ...) built on the same estimator. The labels stay the true
ones: the model learns to segment the attacked volume correctly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from art.attacks.attack import EvasionAttack

from art_seg import distributed
from art_seg._checks import check_number, check_type
from art_seg.attacks import IterativeFGSM
from art_seg.attacks.base import run_attack
from art_seg.attacks.targets import no_tumour
from art_seg.defences.checkpoint import plain
from art_seg.defences.training import SegmentationTrainer
from art_seg.estimators import PyTorchSegmenter

__all__ = ["AdversarialTrainer", "AdversarialTrainerMadryPGD", "adversarial_count"]

ArrayLike = np.ndarray | torch.Tensor
TargetMaker = Callable[[ArrayLike], ArrayLike]


class AdversarialTrainer(SegmentationTrainer):
    """Train a segmenter on batches in which a share of the samples is attacked against the current model.

    Per batch of ``B`` samples: ``ceil(ratio * B)`` samples (as ART's ``AdversarialTrainer``: a batch of one is
    attacked for any ``ratio > 0``), drawn at random, are replaced by adversarial examples of one attack chosen at
    random from ``attacks``; the step then trains on the mixed batch with the true labels. Under DDP, ``B`` is the
    global batch and its ``ceil(ratio * B)`` adversarial samples are split over the processes as the batch is
    (:func:`adversarial_count`), so the share does not depend on the number of processes.
    Targeted attacks (``attack.targeted``, e.g. ti-FGSM) aim at ``target(y)``, by default "no tumour"
    (:func:`~art_seg.attacks.targets.no_tumour`): class 0 at every voxel of class-index labels (also for a region
    model, whose regions are then all off), every region channel off in multi-hot labels, the background channel
    on in a softmax model's one-hot maps.
    Adversarial examples are made on the model's full-resolution head (the estimator's gradients are), and a
    deeply supervised model trains on them with its deep-supervision loss.

    Args:
        segmenter: the estimator to train (with an optimizer); every attack must be built on it.
        attacks: one ART ``EvasionAttack`` or a sequence of them.
        ratio: share of each batch, in ``[0, 1]``, replaced by adversarial examples (1: Madry et al.).
        warmup_epochs: clean epochs before adversarial examples start.
        target: for targeted attacks, ``y -> target`` in the form of ``y`` (class indices or multi-hot maps).
        seed, checkpoint_dir, patience, min_delta, restore_best, training_mode, verbose: as in
            :class:`~art_seg.defences.SegmentationTrainer`. Random starts of attacks without a seed of their own
            follow the run's seed.

    Raises:
        ValueError: ``ratio`` outside ``[0, 1]``, no attacks, or an attack built on another estimator.
        TypeError: an attack that is not an ART ``EvasionAttack``.

    Example:
        >>> attack = IterativeFGSM(segmenter, eps=0.1, eps_step=0.025, max_iter=5)  # doctest: +SKIP
        >>> trainer = AdversarialTrainer(segmenter, attack, ratio=0.5, warmup_epochs=2, seed=0)  # doctest: +SKIP
        >>> trainer.fit(x, y, batch_size=4, nb_epochs=20)  # doctest: +SKIP
    """

    def __init__(
        self,
        segmenter: PyTorchSegmenter,
        attacks: EvasionAttack | Sequence[EvasionAttack],
        ratio: float = 0.5,
        *,
        warmup_epochs: int = 0,
        target: TargetMaker | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(segmenter, **kwargs)
        attacks = [attacks] if isinstance(attacks, EvasionAttack) else list(attacks)
        if not attacks:
            raise ValueError("attacks must hold at least one attack, got an empty sequence")
        for i, attack in enumerate(attacks):
            check_type(f"attacks[{i}]", attack, EvasionAttack)
            if attack.estimator is not segmenter:
                raise ValueError(
                    f"attacks[{i}] ({type(attack).__name__}) is built on another estimator "
                    f"({type(attack.estimator).__name__} at {id(attack.estimator):#x}) than the trainer's "
                    f"segmenter (at {id(segmenter):#x}); build it on the segmenter being trained"
                )
        check_number("ratio", ratio, low=0, high=1)
        check_number("warmup_epochs", warmup_epochs, low=0, integer=True)
        if target is not None and not callable(target):
            raise TypeError(f"target must be a callable y -> target label map, got {target!r}")
        self.attacks = attacks
        self.ratio = float(ratio)
        self.warmup_epochs = warmup_epochs
        self.target = target if target is not None else self._no_tumour

    def _no_tumour(self, y: ArrayLike) -> ArrayLike:
        """:func:`~art_seg.attacks.targets.no_tumour`, with a softmax model's one-hot maps all background."""
        target = no_tumour(y)
        segmenter = self.segmenter
        maps = target.ndim == len(segmenter.input_shape) + 1 and target.shape[1] == segmenter.nb_classes
        if segmenter.activation == "softmax" and maps:
            target[:, 0] = 1
        return target

    def _batch(self, x: ArrayLike, y: ArrayLike, batch_size: int) -> tuple[ArrayLike, ArrayLike]:
        n = x.shape[0]
        count = min(adversarial_count(self.ratio, batch_size, distributed.world_size(), distributed.rank()), n)
        if len(self.history) < self.warmup_epochs or count == 0:
            return x, y
        chosen = torch.randperm(n)[:count].sort().values
        attack = self.attacks[int(torch.randint(len(self.attacks), (1,)))]
        index = chosen.numpy() if isinstance(x, np.ndarray) else chosen.to(x.device)
        x_chosen, y_chosen = x[index], y[index]
        labels = self.target(y_chosen) if attack.targeted else y_chosen
        x_adv = run_attack(attack, x_chosen, labels)
        x_mixed = x.copy() if isinstance(x, np.ndarray) else x.clone()
        x_mixed[index] = x_adv
        return x_mixed, y

    def _config(self) -> dict[str, Any]:
        attacks = [
            {"attack": type(a).__name__, **{p: plain(getattr(a, p, None)) for p in a.attack_params}}
            for a in self.attacks
        ]
        return {**super()._config(), "ratio": self.ratio, "warmup_epochs": self.warmup_epochs, "attacks": attacks}


class AdversarialTrainerMadryPGD(AdversarialTrainer):
    """Madry et al. (2018) adversarial training: every sample replaced by a PGD example with a random start.

    PGD here is art_seg's :class:`~art_seg.attacks.IterativeFGSM` with ``random_start=True``, on the device (ART's
    own ``AdversarialTrainerMadryPGD`` asks numpy PGD for a random start, which it refuses for non-classifiers).

    Args:
        segmenter: the estimator to train.
        eps, eps_step, max_iter, norm: of the PGD attack; ``eps`` and ``eps_step`` in input units (z-scored
            intensity for art_seg's BraTS pipeline), scalars or per channel.
        loss: the attack's loss (``None``: the segmenter's).
        **kwargs: :class:`AdversarialTrainer` options (``warmup_epochs``, ``seed``, ``checkpoint_dir``, ...).
    """

    def __init__(
        self,
        segmenter: PyTorchSegmenter,
        eps: Any = 0.1,
        eps_step: Any = 0.025,
        max_iter: int = 7,
        norm: Any = np.inf,
        loss: Any = None,
        **kwargs: Any,
    ) -> None:
        attack = IterativeFGSM(
            segmenter, norm=norm, eps=eps, eps_step=eps_step, max_iter=max_iter, random_start=True, loss=loss
        )
        super().__init__(segmenter, attack, ratio=1.0, **kwargs)


def adversarial_count(ratio: float, batch_size: int, processes: int = 1, rank: int = 0) -> int:
    """How many samples of process ``rank``'s slice of a global batch of ``batch_size`` are made adversarial.

    The global batch gets ``ceil(ratio * batch_size)`` adversarial samples (``ratio * batch_size`` rounded to 9
    decimals first, so that ``0.1 * 30`` gives 3, not 4), cut over the ``processes`` as
    :func:`~art_seg.distributed.shard_bounds` cuts the batch itself: part ``rank`` of them, which never exceeds
    that process's slice of the batch. One process: ``ceil(ratio * batch_size)``.

    Example:
        >>> adversarial_count(0.5, 1)
        1
        >>> [adversarial_count(0.5, 2, processes=2, rank=r) for r in range(2)]  # one per global batch, not two
        [1, 0]
    """
    check_number("ratio", ratio, low=0, high=1)
    check_number("batch_size", batch_size, low=0, integer=True)
    total = math.ceil(round(ratio * batch_size, 9))
    low, high = distributed.shard_bounds(total, processes, rank)
    return high - low
