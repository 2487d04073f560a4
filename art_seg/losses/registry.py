"""Turn a loss given by name or as a callable into one per-sample loss function.

Estimators and attacks take ``loss="ce" | "dice" | "generalized_dice" | "dice_ce" | "margin"`` or any callable
``(logits, target) -> scalar tensor``. Both become a :data:`PerSampleLoss`: a function
``(logits, target, voxel_weights) -> (N,)`` that gives each sample's loss computed on that sample alone,
so that input gradients do not depend on how samples are batched: the gradient of the sum of the ``(N,)``
vector with respect to sample ``i`` is the gradient of sample ``i``'s loss alone.

Named losses, and callables that take a ``reduction`` keyword (art_seg's attack losses: SegPGD, CosPGD, the
APGD losses), are evaluated once per batch with ``reduction="none"``; only a callable without one (an opaque
``(logits, target) -> scalar``) is evaluated sample by sample.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial

import torch

from art_seg._checks import check_choice
from art_seg.losses.cross_entropy import cross_entropy_loss
from art_seg.losses.dice import soft_dice_loss
from art_seg.losses.dice_ce import dice_ce_loss
from art_seg.losses.generalized_dice import generalized_dice_loss
from art_seg.losses.margin import logit_margin_loss

PerSampleLoss = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]

LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "ce": cross_entropy_loss,
    "dice": soft_dice_loss,
    "generalized_dice": generalized_dice_loss,
    "dice_ce": dice_ce_loss,
    "margin": logit_margin_loss,
}


def per_sample_loss(loss: str | Callable[..., torch.Tensor], *, activation: str) -> PerSampleLoss:
    """Resolve ``loss`` to a function returning one loss per sample.

    Args:
        loss: a name from :data:`LOSSES` (built with ``activation`` and per-sample reduction), or a callable.
            A callable with a ``reduction`` keyword is called once on the whole batch with ``reduction="none"``
            and must return ``(N,)``, each entry computed from its own sample (as art_seg's losses do). Any
            other callable ``loss(logits, target) -> scalar tensor`` is evaluated on each sample alone
            (``logits[i:i+1]``, ``target[i:i+1]``). A callable that accepts a ``voxel_weights`` keyword
            receives the (batch's or sample's) weights.
        activation: ``"softmax"`` or ``"sigmoid"``, used by named losses.

    Returns:
        ``f(logits (N, K, *spatial), target, voxel_weights (N, *spatial) | None) -> (N,)``.

    Raises:
        ValueError: unknown loss name; (when called) a batched callable whose result is not ``(N,)``, or a
            per-sample one whose result is not a scalar tensor.
        TypeError: ``loss`` is neither a string nor callable.
    """
    if isinstance(loss, str):
        check_choice("loss", loss, LOSSES)
        named = partial(LOSSES[loss], activation=activation, reduction="none")
        return lambda logits, target, voxel_weights: named(logits, target, voxel_weights=voxel_weights)
    if not callable(loss):
        raise TypeError(f"loss must be one of {tuple(LOSSES)} or a callable (logits, target) -> scalar, got {loss!r}")
    takes_weights = _accepts_keyword(loss, "voxel_weights")
    if _accepts_keyword(loss, "reduction", var_keyword=False):
        return _batched(loss, takes_weights)

    def per_sample(logits: torch.Tensor, target: torch.Tensor, voxel_weights: torch.Tensor | None) -> torch.Tensor:
        if voxel_weights is not None and not takes_weights:
            raise ValueError(f"voxel_weights were given but the loss {loss!r} takes no voxel_weights keyword")
        values = []
        for i in range(logits.shape[0]):
            kwargs = {} if voxel_weights is None else {"voxel_weights": voxel_weights[i : i + 1]}
            value = loss(logits[i : i + 1], target[i : i + 1], **kwargs)
            if not isinstance(value, torch.Tensor) or value.numel() != 1:
                raise ValueError(f"loss {loss!r} must return a scalar tensor, got {value!r}")
            values.append(value.reshape(()))
        return torch.stack(values)

    return per_sample


def _batched(loss: Callable[..., torch.Tensor], takes_weights: bool) -> PerSampleLoss:
    """``loss`` called once per batch with ``reduction="none"``, its ``(N,)`` result checked."""

    def per_sample(logits: torch.Tensor, target: torch.Tensor, voxel_weights: torch.Tensor | None) -> torch.Tensor:
        if voxel_weights is not None and not takes_weights:
            raise ValueError(f"voxel_weights were given but the loss {loss!r} takes no voxel_weights keyword")
        kwargs = {} if voxel_weights is None else {"voxel_weights": voxel_weights}
        values = loss(logits, target, reduction="none", **kwargs)
        if not isinstance(values, torch.Tensor) or values.shape != (logits.shape[0],):
            raise ValueError(
                f"loss {loss!r} takes a reduction keyword, so reduction='none' must give one value per sample "
                f"({logits.shape[0]},), got {values!r}"
            )
        return values

    return per_sample


def _accepts_keyword(fn: Callable[..., object], name: str, var_keyword: bool = True) -> bool:
    """Whether ``fn`` takes the keyword ``name`` (or, with ``var_keyword``, any keyword through ``**kwargs``)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.name == name and p.kind is not inspect.Parameter.POSITIONAL_ONLY
        or var_keyword and p.kind is inspect.Parameter.VAR_KEYWORD
        for p in parameters
    )
