"""Segmentation metrics on numpy arrays (or torch tensors, copied to the CPU): numbers in, floats out.

Conventions shared by every metric:

- ``pred`` and ``truth`` have the same shape, any number of axes (usually ``(D, H, W)`` or ``(H, W)``); inputs
  are never modified;
- masks are bool (or numbers that are all 0 or 1); label maps hold integer class indices ``0 .. K-1``, and the
  BraTS regions are ``WT = {1, 2, 3}``, ``TC = {1, 3}``, ``ET = {3}``
  (:data:`art_seg.data.labels.REGION_CLASSES`);
- Dice with an empty ground truth is 1.0 when the prediction is empty too, else 0.0 (BraTS);
- sensitivity / specificity with nothing to find / no negative voxel are 1.0;
- HD95 is in mm (``spacing`` per axis, 1 mm by default), by default MedPy's definition: the 95th percentile of
  both directed surface-distance sets pooled (``method="surfels"``: DeepMind's surface elements, as in the
  BraTS 2023/2024 code); 0.0 when both masks are empty, ``empty_penalty`` when one is (default: the volume
  diagonal, 373.13 mm for the 1 mm BraTS grid ``240 x 240 x 155``);
- :func:`nsd` is the surface Dice at a tolerance in mm (DeepMind's, MONAI's or panoptica's variant);
- the challenges' own metrics: :func:`lesion_wise` (BraTS 2023/2024 lesion-wise Dice and HD95, per challenge)
  and :func:`matched_instances` (BraTS 2025: connected components matched one to one, detection F1 and
  per-instance Dice, HD95, NSD).

Example:
    >>> import numpy as np
    >>> from art_seg.metrics import dice_per_region, hd95_per_region
    >>> pred, truth = np.array([[0, 1, 3, 3]]), np.array([[0, 1, 1, 3]])
    >>> dice_per_region(pred, truth)
    {'WT': 1.0, 'TC': 1.0, 'ET': 0.6666666666666666}
"""

from __future__ import annotations

from art_seg.metrics.distance import hausdorff95, hd95_per_region
from art_seg.metrics.instances import matched_instances
from art_seg.metrics.lesions import LESION_CHALLENGES, connected_lesions, lesion_wise
from art_seg.metrics.overlap import (
    dice_per_class,
    dice_per_region,
    dice_score,
    mean_dice_per_region,
    sensitivity,
    specificity,
)
from art_seg.metrics.surface_dice import nsd

__all__ = [
    "LESION_CHALLENGES",
    "connected_lesions",
    "dice_per_class",
    "dice_per_region",
    "dice_score",
    "hausdorff95",
    "hd95_per_region",
    "lesion_wise",
    "matched_instances",
    "mean_dice_per_region",
    "nsd",
    "sensitivity",
    "specificity",
]
