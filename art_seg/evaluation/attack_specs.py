"""Attacks by name, for sweeps over eps: the study's (art_seg's) and ART's own.

An :class:`AttackSpec` builds an attack on an estimator at a given eps. The named ones (all L-inf, eps in z-scored
intensity units, iterative ones with ``eps_step = eps * step_fraction``):

=============  ================================================================  =====================
name           attack                                                            label it is given
=============  ================================================================  =====================
``fgsm``       art_seg :class:`~art_seg.attacks.FGSM`                             true labels
``i-fgsm``     art_seg :class:`~art_seg.attacks.IterativeFGSM`                    true labels
``ti-fgsm``    art_seg :class:`~art_seg.attacks.TargetedIterativeFGSM`            "no tumour": every
                                                                                  foreground class erased
``pgd``        ART ``ProjectedGradientDescent`` (numpy, ``num_random_init=0``)    true labels
``fgm``        ART ``FastGradientMethod``                                         true labels
``bim``        ART ``BasicIterativeMethod``                                       true labels
``segpgd``     art_seg :class:`~art_seg.attacks.SegPGD`                           true labels
``cospgd``     art_seg :class:`~art_seg.attacks.CosPGD`                           true labels
``apgd``       art_seg :class:`~art_seg.attacks.AutoPGDSegmentation`, CE          true labels
``apgd-dlr``   art_seg :class:`~art_seg.attacks.AutoPGDSegmentation`, DLR         true labels
``sea``        art_seg :class:`~art_seg.attacks.SEA`, 5 losses x 300 iterations   true labels
``sea-fast``   art_seg :meth:`SEA.fast <art_seg.attacks.SEA.fast>`, 5 x 75         true labels
=============  ================================================================  =====================

``sea`` and ``sea-fast`` keep SEA's own iteration budgets and step sizes: ``iterations`` and ``step_fraction``
do not apply to them. SEA draws its random starts from torch's global generator, which
:class:`~art_seg.evaluation.RobustnessEvaluator` seeds for every run from the run's seed and key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from art.attacks.attack import EvasionAttack
from art.attacks.evasion import BasicIterativeMethod, FastGradientMethod, ProjectedGradientDescent

from art_seg._checks import check_choice, check_number
from art_seg.attacks import FGSM, SEA, AutoPGDSegmentation, CosPGD, IterativeFGSM, SegPGD, TargetedIterativeFGSM

__all__ = ["ATTACK_NAMES", "AttackSpec", "attack_spec"]

ATTACK_NAMES = (
    "fgsm", "i-fgsm", "ti-fgsm", "pgd", "fgm", "bim", "segpgd", "cospgd", "apgd", "apgd-dlr", "sea", "sea-fast",
)  # fmt: skip
DISPLAY = {
    "fgsm": "FGSM",
    "i-fgsm": "i-FGSM",
    "ti-fgsm": "ti-FGSM",
    "pgd": "PGD",
    "fgm": "ART FGM",
    "bim": "BIM",
    "segpgd": "SegPGD",
    "cospgd": "CosPGD",
    "apgd": "APGD-CE",
    "apgd-dlr": "APGD-DLR",
    "sea": "SEA",
    "sea-fast": "SEA (fast)",
}


@dataclass(frozen=True)
class AttackSpec:
    """How to attack at a given eps.

    Attributes:
        name: the name in results and reports (e.g. ``"i-FGSM"``).
        build: ``(estimator, eps) -> attack``.
        target: for targeted attacks, ``y -> target label map`` (class indices); ``None``: the attack gets ``y``.
        masked: whether the attack honours a perturbation mask (ART's ``FastGradientMethod`` drops it for
            non-classifiers).
    """

    name: str
    build: Callable[[Any, float], EvasionAttack]
    target: Callable[[np.ndarray], np.ndarray] | None = None
    masked: bool = True


def _erase_foreground(y: np.ndarray) -> np.ndarray:
    """ "No tumour": every foreground class erased to background (class 0)."""
    return np.zeros_like(y)


def attack_spec(name: str, *, iterations: int = 10, step_fraction: float = 0.25, batch_size: int = 1) -> AttackSpec:
    """The :class:`AttackSpec` of a named attack (see the module table).

    Args:
        name: one of :data:`ATTACK_NAMES` (case-insensitive).
        iterations: steps of the iterative attacks.
        step_fraction: ``eps_step / eps`` of the iterative attacks.
        batch_size: samples attacked together.

    Raises:
        ValueError: an unknown name (the message lists the known ones), or bad numbers.
    """
    key = name.lower() if isinstance(name, str) else name
    check_choice("attack", key, ATTACK_NAMES)
    check_number("iterations", iterations, low=1, integer=True)
    check_number("step_fraction", step_fraction, low=0, high=1, low_inclusive=False)
    n, f, b = iterations, step_fraction, batch_size
    builders: dict[str, Callable[[Any, float], EvasionAttack]] = {
        "fgsm": lambda est, eps: FGSM(est, eps=eps, batch_size=b),
        "i-fgsm": lambda est, eps: IterativeFGSM(est, eps=eps, eps_step=eps * f, max_iter=n, batch_size=b),
        "ti-fgsm": lambda est, eps: TargetedIterativeFGSM(est, eps=eps, eps_step=eps * f, max_iter=n, batch_size=b),
        "pgd": lambda est, eps: ProjectedGradientDescent(
            est, eps=eps, eps_step=eps * f, max_iter=n, num_random_init=0, batch_size=b, verbose=False
        ),
        "fgm": lambda est, eps: FastGradientMethod(est, eps=eps, batch_size=b),
        "bim": lambda est, eps: BasicIterativeMethod(
            est, eps=eps, eps_step=eps * f, max_iter=n, batch_size=b, verbose=False
        ),
        "segpgd": lambda est, eps: SegPGD(est, eps=eps, eps_step=eps * f, max_iter=n, batch_size=b),
        "cospgd": lambda est, eps: CosPGD(est, eps=eps, eps_step=eps * f, max_iter=n, batch_size=b),
        "apgd": lambda est, eps: AutoPGDSegmentation(est, eps=eps, max_iter=n, loss="ce", batch_size=b),
        "apgd-dlr": lambda est, eps: AutoPGDSegmentation(est, eps=eps, max_iter=n, loss="dlr", batch_size=b),
        "sea": lambda est, eps: SEA(est, eps=eps, batch_size=b),
        "sea-fast": lambda est, eps: SEA.fast(est, eps=eps, batch_size=b),
    }
    return AttackSpec(
        name=DISPLAY[key],
        build=builders[key],
        target=_erase_foreground if key == "ti-fgsm" else None,
        masked=key != "fgm",
    )
