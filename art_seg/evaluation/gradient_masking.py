"""A gradient-masking check for defended segmenters: attack them where masked gradients cannot hide.

Defensive distillation in particular makes the deployed softmax saturate, so cross-entropy gradients vanish and
gradient attacks look weak although the model is not robust (Carlini and Wagner 2016; Athalye et al. 2018). Two
standard checks, reported next to the plain white-box attack:

- the same attack with a logit-margin loss (``loss="margin"``), whose gradient does not saturate;
- a transfer attack: adversarial examples made on an undefended reference model, evaluated on the defended one.

A transfer attack that beats the white-box one is the signature of masked gradients; either check beating the
plain attack means the plain figure overstates the model's robustness.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from art.attacks.attack import EvasionAttack

from art_seg._checks import check_number, check_type
from art_seg.estimators import PyTorchSegmenter
from art_seg.evaluation.scoring import model_regions, region_channels, region_dice

__all__ = ["MaskingCheck", "gradient_masking_check"]

#: ``(estimator, loss) -> attack``: builds the attack under test on an estimator, with a loss (``None``: its own).
AttackFactory = Callable[[PyTorchSegmenter, Any], EvasionAttack]


@dataclass(frozen=True)
class MaskingCheck:
    """Per-sample Dice (mean over foreground classes or regions) of a defended model under each way of attacking it.

    Attributes:
        clean: on clean input, ``(N,)``.
        white_box: under the attack with the model's own loss.
        margin: under the same attack with the logit-margin loss.
        transfer: under the reference model's adversarial examples (``None`` without a reference).
        tolerance: mean-Dice gap by which transfer must beat white-box to flag masking.
    """

    clean: np.ndarray
    white_box: np.ndarray
    margin: np.ndarray
    transfer: np.ndarray | None
    tolerance: float

    @property
    def strongest(self) -> np.ndarray:
        """Per sample, the lowest Dice over the white-box, margin and transfer attacks (the honest figure)."""
        rows = [self.white_box, self.margin] + ([self.transfer] if self.transfer is not None else [])
        return np.min(rows, axis=0)

    @property
    def overstatement(self) -> float:
        """How much the plain white-box attack overstates robustness: its mean Dice minus the strongest's."""
        return float(self.white_box.mean() - self.strongest.mean())

    @property
    def masking_suspected(self) -> bool:
        """Whether the transfer attack beats the white-box one by more than ``tolerance`` (the signature of masked
        gradients: a black-box attack should not be stronger than a white-box one). ``False`` without a transfer.

        A margin attack stronger than a cross-entropy one is common on any model and is not taken as a sign of
        masking; it is reported in :attr:`overstatement`.
        """
        return self.transfer is not None and bool(self.white_box.mean() - self.transfer.mean() > self.tolerance)

    def rows(self) -> list[tuple[str, float]]:
        """``(condition, mean Dice)`` for a table."""
        rows = [("clean", self.clean), ("white-box", self.white_box), ("white-box, margin loss", self.margin)]
        if self.transfer is not None:
            rows.append(("transfer from reference", self.transfer))
        rows.append(("strongest of the above", self.strongest))
        return [(name, float(values.mean())) for name, values in rows]


def gradient_masking_check(
    defended: PyTorchSegmenter,
    make_attack: AttackFactory,
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    *,
    reference: PyTorchSegmenter | None = None,
    regions: Mapping[str, Sequence[int]] | None = None,
    mask: np.ndarray | torch.Tensor | None = None,
    tolerance: float = 0.05,
) -> MaskingCheck:
    """Attack ``defended`` plainly, with the logit-margin loss and (given ``reference``) by transfer.

    Args:
        defended: the defended model (for example a distilled student).
        make_attack: ``(estimator, loss) -> attack``, e.g.
            ``lambda est, loss: IterativeFGSM(est, eps=0.3, eps_step=0.075, max_iter=10, loss=loss)``; called
            with ``loss=None`` (the model's own), ``"margin"``, and on ``reference`` for the transfer attack.
        x: images ``(N, C, *spatial)``; y: class-index label maps ``(N, *spatial)`` (also for a region model:
            the estimator turns them into its region masks for the attacks, and its region spec for scoring).
        reference: an undefended model of the same task and input shape to transfer from; it may be of another
            kind than ``defended`` (a softmax reference for a region model, for instance).
        regions: score each sample by its mean Dice over these regions (``{name: class indices}``, e.g.
            :data:`art_seg.data.REGION_CLASSES` for WT, TC, ET), scored as in :mod:`art_seg.evaluation.scoring`
            (a region model on its channels, whatever their order); ``None``: the defended model's own
            (:func:`~art_seg.evaluation.scoring.model_regions`: each foreground class of a softmax model, each
            region of a region model).
        mask: where the attacks may perturb (shaped like ``x``, e.g. the brain), passed to every ``generate``.
        tolerance: mean-Dice gap by which the transfer attack must beat the white-box one for
            :attr:`MaskingCheck.masking_suspected`.

    Returns:
        A :class:`MaskingCheck` of per-sample Dice values (a region empty in both prediction and truth scores 1).

    Raises:
        TypeError: a bad ``defended``, ``reference`` or ``make_attack``.
        ValueError: a reference of another input shape, a negative ``tolerance``, or a defended model that cannot
            be scored on ``regions`` (see :func:`~art_seg.evaluation.scoring.region_channels`).
    """
    check_type("defended", defended, PyTorchSegmenter)
    if not callable(make_attack):
        raise TypeError(f"make_attack must be a callable (estimator, loss) -> attack, got {make_attack!r}")
    if reference is not None:
        check_type("reference", reference, PyTorchSegmenter)
        if reference.input_shape != defended.input_shape:
            raise ValueError(
                f"reference has input_shape {reference.input_shape}, the defended model {defended.input_shape}"
            )
    check_number("tolerance", tolerance, low=0)
    regions = model_regions(defended) if regions is None else regions
    region_channels(defended, regions)  # raises now if the defended model cannot be scored on them

    def dice(x_in: Any) -> np.ndarray:
        pairs = zip(defended.predict_labels(x_in), y)
        return np.array([np.mean(list(region_dice(defended, p, t, regions).values())) for p, t in pairs])

    def attacked(estimator: PyTorchSegmenter, loss: Any) -> np.ndarray:
        attack = make_attack(estimator, loss)
        check_type("make_attack(...)", attack, EvasionAttack)
        if attack.estimator is not estimator:
            raise ValueError(f"make_attack must build the attack on the estimator it is given, got {attack!r}")
        return dice(attack.generate(x, y) if mask is None else attack.generate(x, y, mask=mask))

    return MaskingCheck(
        clean=dice(x),
        white_box=attacked(defended, None),
        margin=attacked(defended, "margin"),
        transfer=None if reference is None else attacked(reference, None),
        tolerance=float(tolerance),
    )
