"""Iterative FGSM (i-FGSM; Kurakin et al. 2017), the study's iterative attack, for segmentation."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from art_seg._checks import check_number, check_type
from art_seg.attacks.base import SegmentationAttack
from art_seg.attacks.norms import budget_tensor, check_budget, project, random_start, steepest_step


class IterativeFGSM(SegmentationAttack):
    """i-FGSM: ``max_iter`` steepest-ascent steps of size ``eps_step`` on the attack loss, each followed by
    projection onto the ``eps`` ball around ``x`` and clipping to ``clip_values``.

    With ``norm=np.inf`` a step is ``eps_step * sign(grad)``, the study's attack; with ``norm=2`` it is
    ``eps_step * grad / ||grad||_2``. Without a random start and with the same loss, eps, step and
    iterations it computes what ART's ``BasicIterativeMethod`` (``ProjectedGradientDescent`` for ``norm=2``)
    computes, on the device and without numpy round trips; with ``random_start=True`` it is Madry's PGD.

    Args:
        estimator: a :class:`~art_seg.estimators.PyTorchSegmenter`.
        norm: ``np.inf`` or ``2``.
        eps: budget (scalar or per channel), in input units (z-scored intensity).
        eps_step: step size (scalar or per channel), same units; a step larger than ``eps`` warns. With
            ``norm=2`` it must have ``eps``'s shape (both scalars or both per channel), as in ART.
        max_iter: number of steps, at least 1.
        random_start: start from a uniform draw in the eps ball (seeded by ``seed``).
        loss: ``None`` (the estimator's loss), a loss name or a callable.
        batch_size: samples attacked together.
        seed: random generator seed.
        verbose: progress bars over batches and iterations.

    Example:
        >>> attack = IterativeFGSM(segmenter, eps=0.1, eps_step=0.02, max_iter=10)
        >>> x_adv = attack.generate(x, y, mask=brain_mask)
    """

    attack_params = SegmentationAttack.attack_params + ["eps_step", "max_iter", "random_start"]

    def __init__(
        self,
        estimator: Any,
        norm: Any = np.inf,
        eps: Any = 0.1,
        eps_step: Any = 0.02,
        max_iter: int = 10,
        random_start: bool = False,
        loss: Any = None,
        batch_size: int = 8,
        seed: int | None = None,
        verbose: bool = False,
    ) -> None:
        super().__init__(estimator, norm=norm, eps=eps, loss=loss, batch_size=batch_size, seed=seed, verbose=verbose)
        self.eps_step = eps_step
        self.max_iter = max_iter
        self.random_start = random_start
        self._check_params()

    def _check_params(self) -> None:
        super()._check_params()
        self.eps_step = check_budget("eps_step", self.eps_step, self.estimator.input_shape[0])
        if np.any((np.asarray(self.eps_step) == 0) & (np.asarray(self.eps) > 0)):
            raise ValueError(f"eps_step must be > 0 where eps > 0, got eps_step={self.eps_step}, eps={self.eps}")
        if self.norm == 2 and np.shape(self.eps) != np.shape(self.eps_step):
            raise ValueError(
                "norm=2 needs eps and eps_step of the same shape (both scalars: one ball per sample, or both per "
                "channel: one ball per channel), since the step is normalised over the axes the projection uses; "
                f"got eps of shape {np.shape(self.eps)} and eps_step of shape {np.shape(self.eps_step)}"
            )
        check_number("max_iter", self.max_iter, low=1, integer=True)
        check_type("random_start", self.random_start, bool)
        if np.any(np.asarray(self.eps_step) > np.asarray(self.eps)):
            warnings.warn(
                f"eps_step {self.eps_step} exceeds eps {self.eps}: every step is cut back by the projection",
                stacklevel=3,
            )

    def _perturb(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        mask: torch.Tensor | None,
        voxel_weights: torch.Tensor | None,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        eps, step = budget_tensor(self.eps, x), budget_tensor(self.eps_step, x)
        steps = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        x_adv = x
        if self.random_start:
            x_adv = self._keep_outside_mask(self._clip(x + random_start(x.shape, self.norm, eps, generator)), x, mask)
        for t in self._progress(range(self.max_iter), desc="iterations", leave=False):
            active = self._active(x_adv, y)
            if active is not None and not bool(active.any()):
                break
            grad = self._loss_gradient(x_adv, y, voxel_weights, loss=self._loss_at(t))
            if mask is not None:
                grad = grad * mask
            x_new = self._clip(x + project(x_adv + steepest_step(grad, self.norm, step) - x, self.norm, eps))
            x_new = self._keep_outside_mask(x_new, x, mask)
            if active is None:
                x_adv, steps = x_new, steps + 1
            else:
                x_adv = torch.where(active.view(-1, *[1] * (x.ndim - 1)), x_new, x_adv)
                steps = steps + active.long()
        return x_adv, steps

    def _loss_at(self, t: int) -> Any:
        """The attack loss of iteration ``t`` (0-based): :attr:`loss` unless a subclass schedules its own."""
        return self.loss

    def _active(self, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        """Samples still to be stepped ``(N,)`` bool, or ``None`` when every sample runs all iterations."""
        return None

    @staticmethod
    def _keep_outside_mask(x_new: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Voxels outside the perturbation mask keep their original values, bit for bit."""
        return x_new if mask is None else torch.where(mask, x_new, x)
