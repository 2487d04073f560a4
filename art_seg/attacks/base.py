"""``SegmentationAttack``: what art_seg's white-box evasion attacks share.

A subclass only writes ``_perturb``, the attack loop for one batch of device tensors. This base class does
the rest: ART's declared requirements and parameter checks, validation of ``x``, ``y``, ``mask`` and
``voxel_weights`` before any work starts, batching, the attack's random generator, progress bars, clipping to
the estimator's ``clip_values``, and returning numpy for numpy input and tensors for tensor input.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import numpy as np
import torch
from art.attacks.attack import EvasionAttack
from art.estimators.estimator import BaseEstimator, LossGradientsMixin
from art.estimators.pytorch import PyTorchEstimator
from tqdm.auto import tqdm

from art_seg._checks import check_finite, check_number, check_type
from art_seg.attacks.norms import canonical_norm, check_budget
from art_seg.attacks.scores import hard_labels
from art_seg.estimators.conversion import (
    ArrayLike,
    as_tensor,
    check_array_type,
    check_input,
    check_voxel_weights,
)
from art_seg.estimators.segmenter import SegmenterMixin
from art_seg.losses.registry import per_sample_loss

T = TypeVar("T")


class SegmentationAttack(EvasionAttack, abc.ABC):
    """Base class of art_seg's Lp-bounded white-box attacks on a segmentation estimator.

    Args:
        estimator: a :class:`~art_seg.estimators.PyTorchSegmenter` (any ``PyTorchEstimator`` with
            ``LossGradientsMixin`` and :class:`~art_seg.estimators.SegmenterMixin`).
        norm: ``np.inf`` (or ``"inf"``) or ``2``; see :mod:`art_seg.attacks.norms` for the balls.
        eps: perturbation budget, a scalar or one value per input channel, in input units (z-scored
            intensity for art_seg's BraTS pipeline).
        loss: the loss the attack ascends (or descends, when targeted): ``None`` for the estimator's own, a
            name (``"ce"``, ``"dice"``, ``"generalized_dice"``, ``"dice_ce"``, ``"margin"``) or a callable
            ``(logits, target) -> scalar``.
        batch_size: samples attacked together.
        seed: seed of the attack's own random generator (random starts). The generator is made once per attack
            from the seed and advances across ``generate`` calls, so successive calls (the batches and epochs of
            a trainer) get new random starts and a fresh attack with the same seed replays them; setting
            ``seed`` again restarts the sequence. ``None``: random starts draw from torch's global generator
            (``torch.manual_seed`` makes them repeatable). An attack draws nothing when it uses no randomness.
        verbose: show progress bars over batches and iterations.
    """

    attack_params = EvasionAttack.attack_params + ["norm", "eps", "loss", "batch_size", "seed", "verbose"]
    _estimator_requirements = (BaseEstimator, LossGradientsMixin, PyTorchEstimator, SegmenterMixin)

    def __init__(
        self,
        estimator: Any,
        *,
        norm: Any,
        eps: Any,
        loss: Any,
        batch_size: int,
        seed: int | None,
        verbose: bool,
    ) -> None:
        super().__init__(estimator=estimator)
        self.norm = norm
        self.eps = eps
        self.loss = loss
        self.batch_size = batch_size
        self.seed = seed
        self.verbose = verbose
        self.iterations_: np.ndarray | None = None

    def _check_params(self) -> None:
        super()._check_params()
        channels = self.estimator.input_shape[0]
        self.norm = canonical_norm(self.norm)
        self.eps = check_budget("eps", self.eps, channels)
        if self.loss is not None:
            per_sample_loss(self.loss, activation=self.estimator.activation)
        check_number("batch_size", self.batch_size, low=1, integer=True)
        if self.seed is not None:
            check_number("seed", self.seed, low=0, integer=True)
        check_type("verbose", self.verbose, bool)

    # ------------------------------------------------------------------ generate
    def generate(  # type: ignore[override]
        self,
        x: ArrayLike,
        y: ArrayLike | None = None,
        mask: ArrayLike | None = None,
        voxel_weights: ArrayLike | None = None,
        **kwargs: Any,
    ) -> ArrayLike:
        """Adversarial examples for ``x``.

        Args:
            x: images ``(N, C, *spatial)``, numpy or torch, inside the estimator's ``clip_values``.
            y: labels: the true labels for an untargeted attack (``None``: the model's own prediction, as hard
                labels), the target map for a targeted one (required). Class indices ``(N, *spatial)`` or soft
                maps ``(N, K, *spatial)``.
            mask: where the perturbation may be non-zero (non-zero entries), broadcastable to ``x``, e.g. the
                brain ``(N, 1, *spatial)``; voxels outside it are returned bit for bit unchanged.
            voxel_weights: which voxels the loss counts, a non-negative map broadcastable to ``(N, *spatial)``,
                e.g. the tumour only.

        Returns:
            ``x_adv`` with the shape, kind (numpy or tensor) and floating dtype of ``x``; tensors on ``x``'s
            device (ART's rule; the attack loop itself runs on the estimator's device). ``self.iterations_``
            then holds the gradient steps each sample used.

        Raises:
            TypeError, ValueError: bad ``x``, ``y``, ``mask`` or ``voxel_weights`` (named, with the offending
                shape or value), or ``x`` outside ``clip_values``; raised before any work starts.
        """
        estimator = self.estimator
        check_input(x, nb_channels=estimator.input_shape[0], nb_spatial_dims=len(estimator.input_shape) - 1)
        batch_shape = (x.shape[0], *x.shape[2:])
        if y is None and self.targeted:
            raise ValueError(f"{type(self).__name__} is targeted: pass the target label map as y")
        form = None if y is None else estimator.check_labels(y, x)
        if mask is not None:
            _check_mask(mask, tuple(x.shape))
        if voxel_weights is not None:
            check_voxel_weights(voxel_weights, batch_shape=batch_shape)
        self._check_inside_clip_values(x)

        generator = self._random_generator()
        n = x.shape[0]
        self.iterations_ = np.zeros(n, dtype=np.int64)
        outputs = []
        for start in self._progress(range(0, n, self.batch_size), desc=type(self).__name__):
            part = slice(start, start + self.batch_size)
            x_batch = as_tensor(x[part], device=estimator.device, dtype=estimator.dtype)
            if y is None:
                y_batch = self._predicted_labels(x_batch)
            else:
                y_batch = estimator.label_tensor(y[part], form, batch_shape[1:])
            mask_batch = None if mask is None else _expanded(mask, x.shape)[part].to(estimator.device) != 0
            weights_batch = None
            if voxel_weights is not None:
                weights = _expanded(voxel_weights, batch_shape)[part]
                weights_batch = weights.to(device=estimator.device, dtype=estimator.dtype)
            x_adv, steps = self._perturb(x_batch, y_batch, mask_batch, weights_batch, generator)
            self.iterations_[part] = steps.cpu().numpy()
            outputs.append(x_adv.detach())
        x_adv = torch.cat(outputs)
        if isinstance(x, torch.Tensor):
            return x_adv.to(device=x.device, dtype=x.dtype if x.is_floating_point() else x_adv.dtype)
        x_adv_np = x_adv.cpu().numpy()
        return x_adv_np.astype(x.dtype, copy=False) if np.issubdtype(x.dtype, np.floating) else x_adv_np

    @abc.abstractmethod
    def _perturb(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        mask: torch.Tensor | None,
        voxel_weights: torch.Tensor | None,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attack one batch: return ``x_adv`` and the gradient steps each sample used ``(N,)``.

        ``x (N, C, *spatial)`` and ``y`` are on the estimator's device; ``mask`` is a bool tensor of ``x``'s
        shape or ``None``; ``voxel_weights`` is ``(N, *spatial)`` or ``None``; ``generator`` is the one to draw
        random numbers from (``None``: torch's global generator).
        """

    @property
    def seed(self) -> int | None:
        """Seed of the attack's random generator; setting it (again) restarts the random sequence."""
        return self._seed

    @seed.setter
    def seed(self, value: int | None) -> None:
        self._seed = value
        self._generator: torch.Generator | None = None

    def _random_generator(self) -> torch.Generator | None:
        """The attack's generator on the estimator's device, made from :attr:`seed` at first use and advancing
        across calls; ``None`` without a seed."""
        if self.seed is None:
            return None
        device = self.estimator.device
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(self.seed)
        return self._generator

    # ------------------------------------------------------------------ helpers for subclasses
    def _loss_gradient(
        self, x_adv: torch.Tensor, y: torch.Tensor, voxel_weights: torch.Tensor | None, loss: Any = None
    ) -> torch.Tensor:
        """Gradient of the attack loss (``loss``, default :attr:`loss`), negated for targeted attacks, so that
        ascending it is the attack."""
        loss = self.loss if loss is None else loss
        grad = self.estimator.loss_gradient(x_adv, y, voxel_weights=voxel_weights, loss=loss)
        return -grad if self.targeted else grad

    def _clip(self, x_adv: torch.Tensor) -> torch.Tensor:
        """Clamp to the estimator's ``clip_values`` (scalar or per-channel), if it has any."""
        if self.estimator.clip_values is None:
            return x_adv
        low, high = self._clip_tensors(x_adv)
        return torch.maximum(torch.minimum(x_adv, high), low)

    def _clip_tensors(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The estimator's ``clip_values`` (arrays broadcastable to one sample) as tensors like ``like``."""
        return tuple(torch.as_tensor(v, device=like.device, dtype=like.dtype) for v in self.estimator.clip_values)

    def _progress(self, iterable: Iterable[T], desc: str, leave: bool = True) -> Iterator[T]:
        return iter(tqdm(iterable, desc=desc, leave=leave, disable=not self.verbose))

    def _predicted_labels(self, x: torch.Tensor) -> torch.Tensor:
        """The model's own prediction as hard labels (soft self-labels would give cross-entropy no gradient)."""
        probabilities = self.estimator.predict(x, batch_size=self.batch_size)
        if self.estimator.activation == "softmax":
            return probabilities.argmax(dim=1)
        return hard_labels(probabilities, "sigmoid", from_logits=False).to(probabilities.dtype)

    def _check_inside_clip_values(self, x: ArrayLike) -> None:
        if self.estimator.clip_values is None:
            return
        values = as_tensor(x)
        values = values if values.is_floating_point() else values.double()
        low, high = self._clip_tensors(values)
        if bool((values < low).any()) or bool((values > high).any()):
            raise ValueError(
                f"x holds values in [{float(values.min())}, {float(values.max())}] outside the estimator's "
                f"clip_values; the eps ball and the clip box would not meet. Clip x first or widen clip_values."
            )


def _check_mask(mask: ArrayLike, x_shape: tuple[int, ...]) -> None:
    check_array_type("mask", mask)
    try:
        fits = np.broadcast_shapes(tuple(mask.shape), x_shape) == x_shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to x's shape {x_shape}")
    check_finite("mask", mask)


def _expanded(values: ArrayLike, shape: tuple[int, ...]) -> torch.Tensor:
    """A zero-copy view of ``values`` broadcast to ``shape``."""
    return as_tensor(values).expand(shape)


def run_attack(attack: EvasionAttack, x: ArrayLike, y: ArrayLike | None, mask: ArrayLike | None = None) -> ArrayLike:
    """``attack.generate`` for any ART evasion attack, returning ``x``'s kind.

    art_seg's attacks get tensors as they are (the loop stays on the device); ART's own get numpy (their boundary)
    and the result goes back to ``x``'s device and dtype.
    """
    kwargs = {} if mask is None else {"mask": mask}
    if isinstance(attack, SegmentationAttack) or not isinstance(x, torch.Tensor):
        return attack.generate(x, y, **kwargs)

    def host(value: Any) -> Any:
        return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value

    kwargs = {k: host(v) for k, v in kwargs.items()}
    x_adv = attack.generate(host(x), host(y), **kwargs)
    return torch.as_tensor(x_adv, device=x.device, dtype=x.dtype)
