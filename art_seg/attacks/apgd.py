"""APGD for segmentation (Croce and Hein 2020; the segmentation losses of Croce et al., SEA, ECCV 2024).

ART's ``AutoProjectedGradientDescent`` demands a classifier and checks probabilities over whole samples; this is the
same algorithm on per-voxel outputs: step size ``2 eps`` halved at checkpoints when progress stalls, momentum 0.75,
and the best point (highest loss) kept per sample; with SEA's options (Croce, Singh and Hein 2024, reference code
github.com/nmndeep/robust-segmentation, ``semseg/utils/attacker.py``, ``apgd_train`` and ``apgd_largereps``): a
tracked loss other than the attacked one, and the progressive reduction of the radius.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import torch

from art_seg._checks import check_choice, check_number, check_type
from art_seg.attacks.base import SegmentationAttack
from art_seg.attacks.norms import budget_tensor, project, random_start, steepest_step
from art_seg.attacks.scores import foreground_dice
from art_seg.attacks.sea_losses import js_loss, masked_spherical_loss
from art_seg.attacks.segpgd import segpgd_loss
from art_seg.attacks.voxel_losses import decision_cross_entropy, decision_mean, decision_targets, still_correct
from art_seg.losses import logit_margin_loss, per_sample_loss

APGD_LOSSES = (
    "ce", "masked_ce", "dlr", "segpgd", "js", "masked_spherical", "spherical",
    "dice", "generalized_dice", "dice_ce", "margin", "own",
)  # fmt: skip
UNTARGETED_ONLY = ("masked_ce", "dlr", "segpgd")
PROGRESSIVE_RADIUS = ((0.3, 2.0), (0.3, 1.5), (0.4, 1.0))  # SEA: share of the iterations, radius in units of eps
SELECTIONS = ("loss", "dice")


def masked_ce_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    activation: str = "softmax",
    voxel_weights: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy of the decisions still correct (detached mask), averaged over all decisions.

    ``"softmax"``: the cross-entropy of the voxels still classified right; ``"sigmoid"``: the binary
    cross-entropy of the voxel-channels still on the right side of 0 (see :mod:`art_seg.attacks.voxel_losses`,
    which also says what ``reduction`` does).
    """
    targets = decision_targets(target, logits, activation)
    correct = still_correct(logits, targets, activation)
    values = correct * decision_cross_entropy(logits, targets, activation)
    return decision_mean(values, logits, voxel_weights, reduction)


def dlr_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    activation: str = "softmax",
    voxel_weights: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Voxel-averaged difference-of-logits ratio ``-(z_y - max_{j != y} z_j) / (z_(1) - z_(3) + 1e-12)``.

    ``z_(1) >= z_(2) >= z_(3)`` are the sorted logits of the voxel. Scale invariant, so saturated softmax
    (distillation) cannot hide it.

    Two-class decisions: the ratio needs three logits. With two, any shift- and scale-invariant function of a
    voxel's logits depends on the sign of ``z_1 - z_0`` alone, so the ratio is ``+-1`` everywhere with no usable
    gradient (a binary model would look fully robust). For them the loss is the ratio's numerator, the logit
    margin (:func:`~art_seg.losses.logit_margin_loss`), averaged over voxels (and channels):

    - softmax with ``K = 2``: ``max_{j != y} z_j - z_y``;
    - ``"sigmoid"`` (each region channel a yes/no decision, the two-class softmax of logits ``(0, z)``):
      ``(1 - 2 t_k) z_k`` per channel, ``t`` the multi-hot target thresholded at 0.5, positive on the wrong
      side of 0.

    APGD keeps the property the ratio is there for: multiplying every logit by ``c > 0`` (a temperature)
    scales each sample's loss and gradient by ``c``, which changes neither the steps (sign or unit L2) nor
    which iterate has the higher loss. What the margin lacks is the per-voxel normalisation: voxels with large
    logits weigh more in the mean.
    """
    targets = decision_targets(target, logits, activation)
    if activation == "sigmoid" or logits.shape[1] == 2:
        return logit_margin_loss(
            logits, targets, activation=activation, voxel_weights=voxel_weights, reduction=reduction
        )
    labels = targets.unsqueeze(1)
    true = logits.gather(1, labels).squeeze(1)
    others = logits.scatter(1, labels, -torch.inf).amax(dim=1)
    ranked = logits.sort(dim=1, descending=True).values
    ratio = -(true - others) / (ranked[:, 0] - ranked[:, 2] + 1e-12)
    return decision_mean(ratio, logits, voxel_weights, reduction)


_LOSS_FUNCTIONS: dict[str, Any] = {
    "masked_ce": masked_ce_loss,
    "dlr": dlr_loss,
    "segpgd": segpgd_loss,
    "js": js_loss,
    "masked_spherical": masked_spherical_loss,
    "spherical": partial(masked_spherical_loss, masked=False),
    "own": None,
}


class AutoPGDSegmentation(SegmentationAttack):
    """APGD (auto-PGD) on a segmenter, untargeted or targeted.

    Per sample, with budget ``N = max_iter`` and checkpoints ``w_j = ceil(p_j N)`` (``p_0 = 0``, ``p_1 = 0.22``,
    ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``): step ``eta = 2 eps`` (per channel), steepest-ascent step then
    momentum ``x_{k+1} = P(x_k + 0.75 (z_{k+1} - x_k) + 0.25 (x_k - x_{k-1}))``; at a checkpoint, if fewer than
    ``rho = 0.75`` of the steps since the last one raised the tracked loss, or the step size and best tracked loss
    did not change, the step is halved and the search restarts from the best point (highest tracked loss).
    Returns that point, or with ``select="dice"`` the iterate whose hard prediction has the lowest Dice.

    Cost: a run of ``N`` iterations evaluates ``N`` gradients (one forward+backward each: the start point's and
    every iterate's but the last, whose gradient is never used) and ``N + 1`` forwards for the tracked loss and the
    Dice; a restart reuses the best point's stored gradient, as Croce and Hein's code does.

    Args:
        estimator: a :class:`~art_seg.estimators.PyTorchSegmenter`, softmax or sigmoid (regions).
        norm: ``np.inf`` or ``2``. eps: budget, scalar or per channel, in input units (z-scored intensity).
        max_iter: iterations ``N`` (over all stages when ``progressive_radius``).
        loss: the loss whose gradient is ascended: ``"ce"`` (cross-entropy; binary cross-entropy per region
            channel for sigmoid), ``"masked_ce"`` (cross-entropy of still-correct voxels only; for sigmoid, of
            still-correct voxel-channels), ``"dlr"`` (voxel-averaged difference-of-logits ratio; for two classes
            and for sigmoid channels its numerator, the logit margin: see :func:`dlr_loss`), ``"segpgd"`` (SegPGD's
            loss, :func:`~art_seg.attacks.segpgd.segpgd_loss`, the weight of fooled decisions rising as
            ``(k + 1) / (2 N_s)`` over the ``N_s`` iterations of each stage, as SEA's reference does), ``"js"``
            (Jensen-Shannon divergence to the one-hot label, :func:`~art_seg.attacks.sea_losses.js_loss`),
            ``"masked_spherical"`` (:func:`~art_seg.attacks.sea_losses.masked_spherical_loss`), ``"spherical"``
            (the same unmasked), another name of :data:`art_seg.losses.LOSSES` (``"dice"``, ``"dice_ce"``, ...),
            or ``"own"``: the estimator's loss.
        random_start: start from a uniform point of the ball (as APGD does) or from ``x``.
        batch_size, seed, verbose: as in :class:`~art_seg.attacks.IterativeFGSM`.
        targeted: ``y`` is the target map and the loss is descended toward it (the masked spherical loss then
            masks the decisions not yet at the target). Not for ``"masked_ce"``, ``"dlr"`` and ``"segpgd"``, which
            have no targeted form.
        track_loss: the loss whose value picks the best point and drives the step-size halving (a name as for
            ``loss``; ``None``: ``loss`` itself). SEA tracks cross-entropy for masked CE and SegPGD, whose values
            fall as decisions flip or whose weights change with the iteration, and the unmasked spherical loss
            for the masked one.
        progressive_radius: SEA's schedule: the iterations split 3:3:4 into stages of radius ``2 eps``,
            ``1.5 eps`` and ``eps``, each stage a fresh APGD run (step size, checkpoints) from the previous
            stage's best point projected on the smaller ball; only the last stage's ball bounds the result.
        select: which point is returned (and, with ``progressive_radius``, starts the next stage): ``"loss"``, the
            one with the highest tracked loss (APGD), or ``"dice"``, the iterate whose hard prediction has the
            lowest mean foreground Dice against ``y`` (the highest against the target when ``targeted``; the
            score of :class:`~art_seg.attacks.WorstCaseEnsemble`; the later iterate on ties), as SEA's reference
            keeps the iterate of lowest pixel accuracy. The step-size control still follows the tracked loss.
    """

    attack_params = [p for p in SegmentationAttack.attack_params if p != "loss"] + [
        "max_iter",
        "apgd_loss",
        "random_start",
        "targeted",
        "track_loss",
        "progressive_radius",
        "select",
    ]

    def __init__(
        self,
        estimator: Any,
        norm: Any = np.inf,
        eps: Any = 0.1,
        max_iter: int = 10,
        loss: str = "ce",
        random_start: bool = False,
        batch_size: int = 8,
        seed: int | None = None,
        verbose: bool = False,
        targeted: bool = False,
        track_loss: str | None = None,
        progressive_radius: bool = False,
        select: str = "loss",
    ) -> None:
        self.max_iter = max_iter
        self.apgd_loss = loss
        self.random_start = random_start
        self.track_loss = track_loss
        self.progressive_radius = progressive_radius
        self.select = select
        check_type("targeted", targeted, bool)
        super().__init__(estimator, norm=norm, eps=eps, loss=None, batch_size=batch_size, seed=seed, verbose=verbose)
        self._targeted = targeted
        self._check_params()

    def _check_params(self) -> None:
        super()._check_params()
        check_number("max_iter", self.max_iter, low=1, integer=True)
        check_choice("loss", self.apgd_loss, APGD_LOSSES)
        if self.track_loss is not None:
            check_choice("track_loss", self.track_loss, APGD_LOSSES)
        check_type("random_start", self.random_start, bool)
        check_type("progressive_radius", self.progressive_radius, bool)
        check_choice("select", self.select, SELECTIONS)
        if self.targeted:
            for name, value in (("loss", self.apgd_loss), ("track_loss", self.track_loss)):
                if value in UNTARGETED_ONLY:
                    raise ValueError(
                        f"{name}={value!r} has no targeted form; targeted APGD takes none of {UNTARGETED_ONLY}"
                    )

    def checkpoints(self, iterations: int | None = None) -> list[int]:
        """Iterations at which the step size may be halved, for a run of ``iterations`` (default ``max_iter``)."""
        n = self.max_iter if iterations is None else iterations
        p = [0.0, 0.22]
        while p[-1] < 1:
            p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
        return sorted({int(np.ceil(round(q * n, 6))) for q in p[1:] if q <= 1})

    def stages(self) -> list[tuple[int, float]]:
        """``(iterations, radius in units of eps)`` of each stage: one stage at ``eps`` unless
        ``progressive_radius``; stages that would get no iteration (``max_iter < 4``) are dropped."""
        if not self.progressive_radius:
            return [(self.max_iter, 1.0)]
        first = [int(share * self.max_iter) for share, _ in PROGRESSIVE_RADIUS[:-1]]
        counts = [*first, self.max_iter - sum(first)]
        return [(n, factor) for n, (_, factor) in zip(counts, PROGRESSIVE_RADIUS) if n > 0]

    def _loss_spec(self, name: str, k: int, iterations: int) -> Any:
        """The loss ``name`` for the estimator at iteration ``k`` of a stage of ``iterations`` (``None``: its own)."""
        function = _LOSS_FUNCTIONS.get(name, name)
        if not callable(function):
            return function
        kwargs: dict[str, Any] = {"activation": self.estimator.activation}
        if name == "segpgd":
            kwargs["weight"] = k / (2 * iterations)
        if name == "masked_spherical":
            kwargs["targeted"] = self.targeted
        return partial(function, **kwargs)

    def _perturb(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        mask: torch.Tensor | None,
        voxel_weights: torch.Tensor | None,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        eps = budget_tensor(self.eps, x)
        x_best = None
        for iterations, factor in self.stages():
            radius = eps * factor
            if x_best is None:
                x_start = x if not self.random_start else x + random_start(x.shape, self.norm, radius, generator)
            else:
                x_start = x_best
            x_best = self._run(x, x_start, y, mask, voxel_weights, radius, iterations)
        return x_best, torch.full((x.shape[0],), self.max_iter, dtype=torch.long, device=x.device)

    def _run(
        self,
        x: torch.Tensor,
        x_start: torch.Tensor,
        y: torch.Tensor,
        mask: torch.Tensor | None,
        voxel_weights: torch.Tensor | None,
        eps: torch.Tensor,
        iterations: int,
    ) -> torch.Tensor:
        """One APGD run of ``iterations`` in the ``eps`` ball around ``x`` from ``x_start``: the point ``select``
        picks."""
        estimator, track = self.estimator, self.apgd_loss if self.track_loss is None else self.track_loss
        shape = (-1, *[1] * (x.ndim - 1))
        sign = -1.0 if self.targeted else 1.0

        def keep(x_new: torch.Tensor) -> torch.Tensor:
            x_new = self._clip(x + project(x_new - x, self.norm, eps))
            return x_new if mask is None else torch.where(mask, x_new, x)

        def loss_and_grad(x_at: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            """The signed tracked loss, the gradient (inside ``mask``) and the signed Dice (lower: better attack);
            the last iterate's gradient, never used, is not computed (zeros), as in the reference."""
            if k < iterations:
                grad = self._loss_gradient(x_at, y, voxel_weights, loss=self._loss_spec(self.apgd_loss, k, iterations))
            else:
                grad = torch.zeros_like(x_at)
            logits = estimator.predict(x_at, logits=True, batch_size=x.shape[0])
            spec = self._loss_spec(track, k, iterations)
            values = per_sample_loss(estimator.loss if spec is None else spec, activation=estimator.activation)(
                logits, y, voxel_weights
            )
            dice = foreground_dice(logits, y, estimator.activation)
            return sign * values.to(x.dtype), grad if mask is None else grad * mask, sign * dice

        x_k = keep(x_start)
        f_k, g_k, d_k = loss_and_grad(x_k, 0)
        x_best, f_best, g_best = x_k, f_k.clone(), g_k
        x_low, d_low = x_k, d_k  # the iterate of lowest signed Dice, returned with select="dice"
        scale = torch.full((x.shape[0],), 2.0, dtype=x.dtype, device=x.device)  # eta = scale * eps
        x_prev = x_k
        checkpoints, last = self.checkpoints(iterations), 0
        increases = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        scale_at_last, best_at_last = scale.clone(), f_best.clone()
        for k in self._progress(range(iterations), desc="iterations", leave=False):
            step = scale.view(shape) * eps
            z = keep(x_k + steepest_step(g_k, self.norm, step))
            alpha = 1.0 if k == 0 else 0.75
            x_next = keep(x_k + alpha * (z - x_k) + (1 - alpha) * (x_k - x_prev))
            f_next, g_next, d_next = loss_and_grad(x_next, k + 1)
            increases += (f_next > f_k).long()
            better = f_next > f_best
            x_best = torch.where(better.view(shape), x_next, x_best)
            f_best = torch.where(better, f_next, f_best)
            g_best = torch.where(better.view(shape), g_next, g_best)
            lower = d_next <= d_low
            x_low = torch.where(lower.view(shape), x_next, x_low)
            d_low = torch.where(lower, d_next, d_low)
            x_prev, x_k, f_k, g_k = x_k, x_next, f_next, g_next
            if k + 1 in checkpoints:
                stalled = increases < 0.75 * (k + 1 - last)
                stalled |= (scale == scale_at_last) & (f_best == best_at_last)
                scale_at_last, best_at_last = scale.clone(), f_best.clone()
                scale = torch.where(stalled, scale / 2, scale)
                restart = stalled.view(shape)  # halved samples restart from their best point and its gradient
                x_k = torch.where(restart, x_best, x_k)
                x_prev = torch.where(restart, x_best, x_prev)
                f_k = torch.where(stalled, f_best, f_k)
                g_k = torch.where(restart, g_best, g_k)
                increases.zero_()
                last = k + 1
        return x_low if self.select == "dice" else x_best
