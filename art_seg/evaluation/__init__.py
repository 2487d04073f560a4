"""Robustness evaluation: attack sweeps with resumable, fingerprinted results, the study-style report and plots,
the gradient-masking check, and the one way a prediction is scored per region (softmax and region models), with
any metric set (Dice, HD95, NSD, the BraTS challenges' lesion-wise and instance metrics)."""

from art_seg.evaluation.attack_specs import ATTACK_NAMES, AttackSpec, attack_spec
from art_seg.evaluation.fingerprints import model_fingerprint
from art_seg.evaluation.gradient_masking import MaskingCheck, gradient_masking_check
from art_seg.evaluation.markdown import study_table
from art_seg.evaluation.metric_report import LesionEffect, lesion_effects, metric_summaries
from art_seg.evaluation.metric_sets import CHALLENGES, METRICS
from art_seg.evaluation.plots import plot_overlay, plot_robustness_curves
from art_seg.evaluation.report import write_report
from art_seg.evaluation.robust_dice import WORST_CASE, robust_summaries
from art_seg.evaluation.scoring import (
    mean_region_dice,
    model_regions,
    region_channels,
    region_dice,
    region_hd95,
    region_masks,
)
from art_seg.evaluation.robustness import (
    EvaluationSample,
    RobustnessEvaluator,
    grid_diagonal,
    read_results,
    samples_from_arrays,
    samples_from_subjects,
)
from art_seg.evaluation.summary import ConditionSummary, summarise

__all__ = [
    "ATTACK_NAMES",
    "AttackSpec",
    "CHALLENGES",
    "ConditionSummary",
    "EvaluationSample",
    "LesionEffect",
    "METRICS",
    "MaskingCheck",
    "RobustnessEvaluator",
    "WORST_CASE",
    "attack_spec",
    "gradient_masking_check",
    "grid_diagonal",
    "lesion_effects",
    "mean_region_dice",
    "metric_summaries",
    "model_fingerprint",
    "model_regions",
    "plot_overlay",
    "plot_robustness_curves",
    "read_results",
    "region_channels",
    "region_dice",
    "region_hd95",
    "region_masks",
    "robust_summaries",
    "samples_from_arrays",
    "samples_from_subjects",
    "study_table",
    "summarise",
    "write_report",
]
