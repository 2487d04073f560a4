"""Evasion attacks on segmentation estimators, as ART ``EvasionAttack`` subclasses.

The founding study's attacks: :class:`FGSM`, :class:`IterativeFGSM` (i-FGSM) and
:class:`TargetedIterativeFGSM` (ti-FGSM, targeted iterative FGSM toward a chosen label map; not the
translation-invariant TI-FGSM of Dong et al.). Target maps come from :mod:`art_seg.attacks.targets`.
"""

from art_seg.attacks.base import SegmentationAttack
from art_seg.attacks.fgsm import FGSM
from art_seg.attacks.iterative_fgsm import IterativeFGSM
from art_seg.attacks.targeted_iterative_fgsm import TargetedIterativeFGSM

__all__ = ["SegmentationAttack", "FGSM", "IterativeFGSM", "TargetedIterativeFGSM"]
