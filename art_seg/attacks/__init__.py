"""Evasion attacks on segmentation estimators, as ART ``EvasionAttack`` subclasses.

The founding study's attacks: :class:`FGSM`, :class:`IterativeFGSM` (i-FGSM) and
:class:`TargetedIterativeFGSM` (ti-FGSM, targeted iterative FGSM toward a chosen label map; not the
translation-invariant TI-FGSM of Dong et al.). Target maps come from :mod:`art_seg.attacks.targets`.

Stronger attacks for an honest evaluation: :class:`SegPGD` (Gu et al. 2022), :class:`CosPGD` (Agnihotri et al.
2024), :class:`AutoPGDSegmentation` (APGD, Croce and Hein 2020, with segmentation losses) and
:class:`WorstCaseEnsemble` (the worst member per sample), and :class:`SEA` (Croce et al. 2024: APGD with SEA's
four losses and a Dice loss, the worst case per sample).
"""

from art_seg.attacks.apgd import AutoPGDSegmentation
from art_seg.attacks.base import SegmentationAttack
from art_seg.attacks.cospgd import CosPGD
from art_seg.attacks.ensemble import WorstCaseEnsemble
from art_seg.attacks.fgsm import FGSM
from art_seg.attacks.iterative_fgsm import IterativeFGSM
from art_seg.attacks.sea import SEA
from art_seg.attacks.segpgd import SegPGD
from art_seg.attacks.targeted_iterative_fgsm import TargetedIterativeFGSM

__all__ = [
    "AutoPGDSegmentation",
    "CosPGD",
    "FGSM",
    "IterativeFGSM",
    "SEA",
    "SegPGD",
    "SegmentationAttack",
    "TargetedIterativeFGSM",
    "WorstCaseEnsemble",
]
