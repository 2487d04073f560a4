"""Lesion-wise Dice and HD95 under the BraTS 2023/2024 rules (the challenges' ranking metrics).

The rules of the BraTS 2023 reference code (``metrics.py`` / ``eval.py`` of github.com/rachitsaluja/BraTS-2023-
Metrics, by Rachit Saluja et al., used for GLI, SSA, PED, MEN and MET in 2023 and 2024), per region:

1. ground-truth lesions are the fully connected components (26-connectivity in 3-D) of the ground truth after
   merging: the ground truth is dilated ``iterations`` times by the 18-neighbourhood
   (``generate_binary_structure(ndim, 2)``), and ground-truth components that fall into one connected component
   of the dilation are one lesion;
2. predicted lesions are the fully connected components of the prediction;
3. a predicted lesion belongs to (is a true positive for) every ground-truth lesion whose own dilation (same
   structure and iterations) it touches; the lesion's Dice and HD95 compare the lesion with the union of its
   predicted lesions; HD95 is DeepMind's surface-element HD95 (``hd95_method="surfels"``, see
   :func:`~art_seg.metrics.hausdorff95`);
4. a ground-truth lesion with no predicted lesion is a false negative: Dice 0, HD95 ``penalty`` (374 mm); a
   predicted lesion that belongs to no ground-truth lesion is a false positive, scored Dice 0 and HD95 374;
5. ground-truth lesions of volume ``<= min_volume`` mm^3 are left out (neither scored nor counted); predicted
   lesions touching them are not false positives;
6. the lesion-wise score is the sum of the lesion scores over (TP + FN + FP) lesions. With nothing to score
   (no ground-truth lesion above the threshold and no false positive, e.g. both masks empty) Dice is 1.0 and
   HD95 0.0.

Challenge presets (:data:`LESION_CHALLENGES`): GLI, SSA, PED: 3 dilations, 50 mm^3; MEN: 1 dilation, 50 mm^3;
MET: 1 dilation, 2 mm^3. The volume threshold is compared with the volume in mm^3 (voxel count times the
voxel volume), as in the reference; BraTS volumes are 1 mm isotropic, where it is a voxel count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from art_seg._checks import check_choice, check_number
from art_seg.data.regions import RegionSpec
from art_seg.metrics._inputs import ArrayLike, Regions, region_masks
from art_seg.metrics.distance import hausdorff95
from art_seg.metrics.overlap import dice_score
from art_seg.metrics.surface import SURFACE_METHODS, Spacing, as_spacing

__all__ = ["LESION_CHALLENGES", "LesionRules", "connected_lesions", "lesion_wise"]

#: HD95 in mm given to a missed or false-positive lesion by the BraTS 2023/2024 code.
LESION_PENALTY = 374.0


@dataclass(frozen=True)
class LesionRules:
    """One challenge's lesion-wise settings: ``iterations`` dilations of the ground truth, lesions of volume
    ``<= min_volume`` mm^3 left out."""

    iterations: int
    min_volume: float


#: The BraTS 2023/2024 challenges' settings (the reference code's ``get_challenge_parameters``).
LESION_CHALLENGES: dict[str, LesionRules] = {
    "GLI": LesionRules(3, 50.0),
    "SSA": LesionRules(3, 50.0),
    "PED": LesionRules(3, 50.0),
    "MEN": LesionRules(1, 50.0),
    "MET": LesionRules(1, 2.0),
}


def connected_lesions(mask: np.ndarray, connectivity: int | None = None) -> tuple[np.ndarray, int]:
    """Connected components of a boolean mask: ``(labels int32 of mask's shape, 1..n; number n)``.

    ``connectivity`` is scipy's (1 = face neighbours ... ``mask.ndim`` = all neighbours, 26 in 3-D, the default).
    """
    structure = ndimage.generate_binary_structure(mask.ndim, mask.ndim if connectivity is None else connectivity)
    labels, count = ndimage.label(mask, structure=structure)
    return labels.astype(np.int32, copy=False), int(count)


def _dilate(mask: np.ndarray, iterations: int) -> np.ndarray:
    structure = ndimage.generate_binary_structure(mask.ndim, min(2, mask.ndim))
    return ndimage.binary_dilation(mask, structure=structure, iterations=iterations)


def _box(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    """Bounding box of a non-empty mask grown by ``margin`` voxels, clipped to the array."""
    box = []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        box.append(slice(max(hits[0] - margin, 0), hits[-1] + margin + 1))
    return tuple(box)


def _lesion_scores(
    pred: np.ndarray,
    truth: np.ndarray,
    spacing: tuple[float, ...],
    rules: LesionRules,
    penalty: float,
    hd95_method: str,
) -> dict[str, object]:
    """The lesion-wise scores of one region's masks (see the module docstring)."""
    voxel_volume = float(np.prod(spacing))
    pred_labels, nb_pred = connected_lesions(pred)
    truth_labels = np.where(truth, connected_lesions(_dilate(truth, rules.iterations))[0], 0)
    nb_truth = int(truth_labels.max(initial=0))
    matched_pred: set[int] = set()
    lesions = []  # (volume mm^3, dice, hd95, found)
    for lesion in range(1, nb_truth + 1):
        lesion_mask = truth_labels == lesion
        box = _box(lesion_mask, rules.iterations)
        near = _dilate(lesion_mask[box], rules.iterations)
        hits = np.unique(pred_labels[box][near])
        hits = hits[hits != 0]
        matched_pred.update(hits.tolist())
        volume = np.count_nonzero(lesion_mask) * voxel_volume
        if hits.size == 0:
            lesions.append((volume, 0.0, penalty, False))
            continue
        found = np.isin(pred_labels, hits)
        hd95 = hausdorff95(found, lesion_mask, spacing, method=hd95_method)
        lesions.append((volume, dice_score(found, lesion_mask), hd95, True))
    scored = [lesion for lesion in lesions if lesion[0] > rules.min_volume]
    nb_fp = nb_pred - len(matched_pred)
    count = len(scored) + nb_fp
    pred_volumes = np.bincount(pred_labels.ravel(), minlength=nb_pred + 1)[1:] * voxel_volume
    return {
        "dice": sum(lesion[1] for lesion in scored) / count if count else 1.0,
        "hd95": (sum(lesion[2] for lesion in scored) + penalty * nb_fp) / count if count else 0.0,
        "tp": sum(lesion[3] for lesion in scored),
        "fn": sum(not lesion[3] for lesion in scored),
        "fp": nb_fp,
        "nb_truth_lesions": len(scored),
        "nb_small_lesions": len(lesions) - len(scored),
        "nb_pred_lesions": nb_pred,
        "truth_volumes": [lesion[0] for lesion in scored],
        "lesion_dice": [lesion[1] for lesion in scored],
        "lesion_hd95": [lesion[2] for lesion in scored],
        "lesion_found": [lesion[3] for lesion in scored],
        "pred_volumes": pred_volumes.tolist(),
    }


def lesion_wise(
    pred: ArrayLike,
    truth: ArrayLike,
    *,
    spacing: Spacing = None,
    challenge: str = "GLI",
    regions: Regions | str | RegionSpec | None = None,
    penalty: float = LESION_PENALTY,
    hd95_method: str = "surfels",
) -> dict[str, dict[str, object]]:
    """BraTS 2023/2024 lesion-wise Dice and HD95 per region (rules in the module docstring).

    Args:
        pred: predicted integer class-index map (``(D, H, W)``, any number of axes), or boolean mask(s): see
            ``regions``.
        truth: ground truth of the same shape and kind.
        spacing: voxel size in mm (``None``: 1 mm; a number; or one per spatial axis).
        challenge: ``"GLI"``, ``"SSA"``, ``"PED"``, ``"MEN"`` or ``"MET"`` (:data:`LESION_CHALLENGES`).
        regions: for label maps, ``None`` (BraTS WT, TC, ET), a mapping ``name -> classes``, a preset name or a
            :class:`~art_seg.data.regions.RegionSpec`; for boolean inputs, ``None`` (one mask, reported as
            ``"mask"``) or a spec / preset name (inputs ``(R, *spatial)``, one mask per region).
        penalty: HD95 in mm of a missed or false-positive lesion (374 in BraTS).
        hd95_method: ``"surfels"`` (DeepMind, the reference's) or ``"voxels"`` (MedPy).

    Returns:
        ``{region: {...}}`` in region order, each with ``dice`` and ``hd95`` (the lesion-wise scores), ``tp``,
        ``fn`` (ground-truth lesions above the volume threshold found / missed), ``fp`` (predicted lesions
        touching no ground-truth lesion's dilation), ``nb_truth_lesions`` (scored), ``nb_small_lesions`` (left
        out), ``nb_pred_lesions``, ``truth_volumes``, ``lesion_dice``, ``lesion_hd95`` and ``lesion_found`` (per
        scored lesion, in mm^3, mm and bool, lesions numbered in the order of the ground truth's components, the
        same for any prediction) and ``pred_volumes`` (per predicted lesion, mm^3). Empty cases: both masks
        empty -> Dice 1, HD95 0, no lesion; truth empty, prediction not -> every predicted lesion is a false
        positive, Dice 0, HD95 ``penalty``; prediction empty, truth not -> every lesion is missed, Dice 0, HD95
        ``penalty``; only lesions under the threshold and no false positive -> Dice 1, HD95 0.

    Raises:
        ValueError: an unknown challenge or HD95 method, a negative penalty, or bad inputs (as
            :func:`~art_seg.metrics.dice_per_region`); ``hd95_method="surfels"`` needs 2 or 3 spatial axes.

    Example:
        >>> truth = np.zeros((12, 12, 12), np.int64); truth[2:7, 2:7, 2:7] = 2
        >>> pred = np.zeros_like(truth); pred[3:8, 2:7, 2:7] = 2; pred[10, 10, 10] = 2
        >>> scores = lesion_wise(pred, truth)["WT"]
        >>> round(scores["dice"], 3), scores["hd95"], scores["tp"], scores["fp"]
        (0.4, 187.5, 1, 1)
    """
    check_choice("challenge", challenge, LESION_CHALLENGES)
    check_number("penalty", penalty, low=0)
    check_choice("hd95_method", hd95_method, SURFACE_METHODS)
    masks = region_masks(pred, truth, regions)
    ndim = next(iter(masks.values()))[0].ndim
    if ndim == 0:
        raise ValueError("pred and truth must have at least one spatial axis, got shape ()")
    spacing = as_spacing(spacing, ndim)
    rules = LESION_CHALLENGES[challenge]
    return {
        name: _lesion_scores(p, t, spacing, rules, float(penalty), hd95_method) for name, (p, t) in masks.items()
    }
