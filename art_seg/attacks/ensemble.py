"""A worst-case ensemble: run several attacks, keep per sample the adversarial example that hurts most (SEA-style)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from art.attacks.attack import EvasionAttack

from art_seg._checks import check_type
from art_seg.attacks.base import SegmentationAttack, run_attack
from art_seg.attacks.scores import foreground_dice
from art_seg.estimators.conversion import as_tensor


class WorstCaseEnsemble(EvasionAttack):
    """Run every attack of a list; per sample keep the example with the lowest Dice against ``y`` (untargeted), or
    the highest Dice against the target ``y`` (targeted: every member targeted).

    Dice is each sample's mean over foreground classes of the hard prediction (empty in both: 1). The ensemble's
    Dice is therefore at most each member's, sample by sample (Croce et al. 2024 evaluate this way). Members may
    be art_seg's or ART's attacks, all built on the same estimator; a member that ignores masks gets none.

    Attributes:
        chosen_: after ``generate``, the index of the member kept for each sample ``(N,)``.
        scores_: the Dice of every member on every sample ``(len(attacks), N)``.

    Example:
        >>> ensemble = WorstCaseEnsemble([IterativeFGSM(seg, eps=0.1), SegPGD(seg, eps=0.1)])  # doctest: +SKIP
        >>> x_adv = ensemble.generate(x, y)  # doctest: +SKIP
    """

    attack_params = EvasionAttack.attack_params + ["attacks"]
    _estimator_requirements = SegmentationAttack._estimator_requirements

    def __init__(self, attacks: Sequence[EvasionAttack]) -> None:
        attacks = list(attacks) if isinstance(attacks, (list, tuple)) else attacks
        if not isinstance(attacks, list) or not attacks:
            raise ValueError(f"attacks must be a non-empty list of ART evasion attacks, got {attacks!r}")
        for i, attack in enumerate(attacks):
            check_type(f"attacks[{i}]", attack, EvasionAttack)
        estimator = attacks[0].estimator
        for i, attack in enumerate(attacks[1:], start=1):
            if attack.estimator is not estimator:
                raise ValueError(
                    f"attacks[{i}] ({type(attack).__name__}) is built on another estimator than attacks[0]"
                )
        targeted = {bool(a.targeted) for a in attacks}
        if len(targeted) != 1:
            raise ValueError("attacks must be all targeted or all untargeted, got a mix")
        super().__init__(estimator=estimator)
        self.attacks = attacks
        self._targeted = targeted.pop()
        self.chosen_: np.ndarray | None = None
        self.scores_: np.ndarray | None = None

    def generate(self, x: Any, y: Any = None, mask: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        """Attack ``x`` ``(N, C, *spatial)`` with every member; return the worst case per sample (``x``'s kind).

        Args:
            y: true labels (untargeted) or the target map (targeted); required.
            mask: where the perturbation may go, passed to every member.
        """
        if y is None:
            raise ValueError("y is required: WorstCaseEnsemble scores members by Dice against y")
        estimator = self.estimator
        labels = estimator.label_tensor(y, estimator.check_labels(y, x), x.shape[2:])
        candidates = (
            as_tensor(run_attack(attack, x, y, mask), device=estimator.device, dtype=estimator.dtype)
            for attack in self.attacks
        )
        best, all_scores = worst_per_sample(candidates, dice_scorer(estimator, labels), targeted=self.targeted)
        self.scores_ = all_scores.cpu().numpy()
        self.chosen_ = (all_scores.argmax(0) if self.targeted else all_scores.argmin(0)).cpu().numpy()
        if isinstance(x, torch.Tensor):
            return best.to(device=x.device, dtype=x.dtype)
        return best.cpu().numpy().astype(x.dtype, copy=False)

    def _check_params(self) -> None:
        return None


def dice_scorer(estimator: Any, labels: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x (N, C, *spatial) -> (N,)``: each sample's mean foreground Dice of the estimator's hard prediction
    against ``labels`` (class indices or maps, on the estimator's device), as the ensembles score members."""

    def score(x: torch.Tensor) -> torch.Tensor:
        return foreground_dice(estimator.predict(x, logits=True), labels, estimator.activation)

    return score


def worst_per_sample(
    candidates: Iterable[torch.Tensor], score: Callable[[torch.Tensor], torch.Tensor], *, targeted: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample, the candidate with the lowest score (untargeted) or the highest (targeted); the first wins ties.

    Args:
        candidates: adversarial batches ``(N, C, *spatial)``, one per attack, consumed one at a time.
        score: ``batch -> (N,)``, e.g. :func:`dice_scorer`.
        targeted: keep the highest score instead of the lowest.

    Returns:
        The chosen batch and every candidate's scores ``(M, N)``.
    """
    best, best_score, scores = None, None, []
    for x_t in candidates:
        value = score(x_t)
        scores.append(value)
        if best is None:
            best, best_score = x_t.clone(), value
            continue
        better = value > best_score if targeted else value < best_score
        best = torch.where(better.view(-1, *[1] * (x_t.ndim - 1)), x_t, best)
        best_score = torch.where(better, value, best_score)
    if best is None:
        raise ValueError("candidates must hold at least one batch")
    return best, torch.stack(scores)
