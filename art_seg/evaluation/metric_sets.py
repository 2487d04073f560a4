"""The metrics a robustness evaluation can record per region, and how one sample's region masks are scored.

Metric names (:data:`METRICS`), each recorded in a row under its own key as ``{region: value}``:

====================  =========================================================================================
``dice``              whole-volume Dice (always recorded; the study table's metric)
``hd95``              whole-volume HD95 in mm, MedPy's pooled definition, the sample's ``hd95_penalty`` when a
                      region is empty on one side
``hd95-surfels``      whole-volume HD95 in mm, DeepMind's surface-element definition (BraTS 2023/2024)
``nsd``               surface Dice at ``nsd_tolerance`` mm (DeepMind's surface elements)
``lesion-dice``       lesion-wise Dice: BraTS 2023/2024 rules of ``challenge`` (GLI, SSA, PED, MEN, MET,
                      :func:`~art_seg.metrics.lesion_wise`), or with ``challenge="2025"`` the mean Dice of the
                      matched instances (:func:`~art_seg.metrics.matched_instances`)
``lesion-hd95``       lesion-wise HD95 in mm, the same way (374 mm per missed or false lesion; 373 in 2025)
``lesion-f1``         lesion detection F1 ``2 TP / (2 TP + FP + FN)``
``lesion-nsd``        mean NSD of the matched instances (``challenge="2025"`` only)
====================  =========================================================================================

Nothing on either side (no lesion in the truth above the challenge's volume threshold and none predicted) scores
as perfect in every metric: Dice, NSD and F1 1, HD95 0, as BraTS 2023/2024 do for lesion-wise Dice and HD95 (the
2025 tools report NaN there; a NaN could not enter the paired tests).

Whenever a lesion metric is chosen a row also holds ``"lesions": {region: {"found": [0 or 1 per ground-truth
lesion], "false": number of false-positive lesions}}``, ground-truth lesions in a fixed order (that of the truth's
components), so that an attacked row can be compared lesion by lesion with its clean row
(:func:`~art_seg.evaluation.metric_report.lesion_effects`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from art_seg._checks import check_choice, check_number
from art_seg.metrics import LESION_CHALLENGES, dice_score, hausdorff95, lesion_wise, matched_instances, nsd

__all__ = [
    "CHALLENGES",
    "CHALLENGE_METRICS",
    "METRICS",
    "MetricInfo",
    "check_metrics",
    "has_lesion_metric",
    "score_masks",
]

#: ``challenge`` values: the BraTS 2023/2024 lesion-wise presets, and ``"2025"`` (instance matching).
CHALLENGES = (*LESION_CHALLENGES, "2025")


@dataclass(frozen=True)
class MetricInfo:
    """How a metric reads: its label in tables, unit (``""`` for a score in [0, 1]) and best value."""

    label: str
    unit: str
    higher_is_better: bool

    @property
    def bounded(self) -> bool:
        """Whether the metric is a score in ``[0, 1]`` (else a distance in mm, ``>= 0``)."""
        return self.unit == ""


#: The metrics a challenge ranks on, beside whole-volume Dice: ``art-seg evaluate --challenge``'s default set.
CHALLENGE_METRICS: dict[str, tuple[str, ...]] = {
    **{name: ("dice", "lesion-dice", "lesion-hd95") for name in LESION_CHALLENGES},
    "2025": ("dice", "lesion-dice", "lesion-hd95", "lesion-nsd", "lesion-f1"),
}

#: Every metric a run can record, in report order.
METRICS: dict[str, MetricInfo] = {
    "dice": MetricInfo("Dice", "", True),
    "lesion-dice": MetricInfo("lesion Dice", "", True),
    "hd95": MetricInfo("HD95", "mm", False),
    "hd95-surfels": MetricInfo("HD95 (surfels)", "mm", False),
    "lesion-hd95": MetricInfo("lesion HD95", "mm", False),
    "nsd": MetricInfo("NSD", "", True),
    "lesion-nsd": MetricInfo("lesion NSD", "", True),
    "lesion-f1": MetricInfo("lesion F1", "", True),
}
_LESION = ("lesion-dice", "lesion-hd95", "lesion-f1", "lesion-nsd")


def check_metrics(metrics: Sequence[str], challenge: str) -> tuple[str, ...]:
    """``metrics`` as a tuple in :data:`METRICS` order, ``"dice"`` first and always in.

    Raises:
        ValueError: an unknown metric or challenge, a repeated metric, or ``"lesion-nsd"`` without
            ``challenge="2025"``.
    """
    if isinstance(metrics, str) or not isinstance(metrics, Sequence):
        raise ValueError(f"metrics must be a sequence of metric names from {tuple(METRICS)}, got {metrics!r}")
    for metric in metrics:
        check_choice("metrics item", metric, METRICS)
    if len(set(metrics)) != len(metrics):
        raise ValueError(f"metrics must not repeat a name, got {list(metrics)}")
    check_choice("challenge", challenge, CHALLENGES)
    if "lesion-nsd" in metrics and challenge != "2025":
        raise ValueError(f"metric 'lesion-nsd' needs challenge='2025' (instance matching), got {challenge!r}")
    chosen = {"dice", *metrics}
    return tuple(name for name in METRICS if name in chosen)


def has_lesion_metric(metrics: Sequence[str]) -> bool:
    """Whether ``metrics`` asks for a lesion metric (and so for the rows' ``"lesions"`` record)."""
    return any(metric in _LESION for metric in metrics)


def _lesion_scores(pred: np.ndarray, truth: np.ndarray, spacing: Any, challenge: str) -> dict[str, Any]:
    """One region's lesion metrics and record, both-empty as perfect (see the module docstring)."""
    if challenge != "2025":
        s = lesion_wise(pred, truth, spacing=spacing, challenge=challenge)["mask"]
        count = 2 * s["tp"] + s["fp"] + s["fn"]
        f1 = 2 * s["tp"] / count if count else 1.0
        scores = {"lesion-dice": s["dice"], "lesion-hd95": s["hd95"], "lesion-f1": f1}
        return {"scores": scores, "record": {"found": [int(f) for f in s["lesion_found"]], "false": s["fp"]}}
    s = matched_instances(pred, truth, spacing=spacing)["mask"]
    nothing = s["tp"] + s["fp"] + s["fn"] == 0
    scores = {
        "lesion-dice": 1.0 if nothing else s["dice"],
        "lesion-hd95": 0.0 if nothing else s["hd95"],
        "lesion-f1": 1.0 if nothing else s["f1"],
        "lesion-nsd": 1.0 if nothing else s["nsd"],
    }
    return {"scores": scores, "record": {"found": [int(i["matched"]) for i in s["instances"]], "false": s["fp"]}}


def score_masks(
    masks: Mapping[str, tuple[np.ndarray, np.ndarray]],
    metrics: Sequence[str],
    *,
    challenge: str = "GLI",
    spacing: Sequence[float] | None = None,
    hd95_penalty: float | None = None,
    nsd_tolerance: float = 1.0,
) -> dict[str, Any]:
    """Every chosen metric of one sample's region masks, as the row entries of a robustness evaluation.

    Args:
        masks: ``{region: (predicted mask, true mask)}``, bool ``(*spatial)``
            (:func:`~art_seg.evaluation.scoring.region_masks`).
        metrics: checked metric names (:func:`check_metrics`).
        challenge: lesion rules, one of :data:`CHALLENGES`.
        spacing: voxel size in mm per spatial axis (``None``: 1 mm).
        hd95_penalty: ``"hd95"`` of a region empty on one side (``None``: the grid's diagonal).
        nsd_tolerance: tolerance of ``"nsd"`` in mm.

    Returns:
        ``{metric: {region: value}}`` for each metric, plus ``"lesions": {region: {"found": [...], "false": n}}``
        when a lesion metric is chosen. Values are plain floats (ints in ``"lesions"``).
    """
    check_number("nsd_tolerance", nsd_tolerance, low=0)
    entries: dict[str, Any] = {metric: {} for metric in metrics}
    lesions = {}
    for region, (pred, truth) in masks.items():
        if "dice" in entries:
            entries["dice"][region] = dice_score(pred, truth)
        if "hd95" in entries:
            entries["hd95"][region] = hausdorff95(pred, truth, spacing, empty_penalty=hd95_penalty)
        if "hd95-surfels" in entries:
            entries["hd95-surfels"][region] = hausdorff95(
                pred, truth, spacing, empty_penalty=hd95_penalty, method="surfels"
            )
        if "nsd" in entries:
            entries["nsd"][region] = nsd(pred, truth, spacing=spacing, tolerance=nsd_tolerance)
        if has_lesion_metric(metrics):
            scored = _lesion_scores(pred, truth, spacing, challenge)
            for metric, value in scored["scores"].items():
                if metric in entries:
                    entries[metric][region] = float(value)
            lesions[region] = scored["record"]
    if lesions:
        entries["lesions"] = lesions
    return entries
