"""L-inf and L2 perturbation budgets in torch: steepest-ascent steps, projections and random starts.

A budget (``eps`` or ``eps_step``) is a scalar or one value per channel, in the units of the input
(z-scored intensity for art_seg's BraTS pipeline). Inside the loops it is a tensor broadcastable to
``(N, C, *spatial)``: 0-d for a scalar, ``(1, C, 1, ...)`` per channel.

The balls:

- ``norm=inf``: ``|delta[n, c, v]| <= eps[c]`` for every voxel;
- ``norm=2`` with a scalar ``eps``: ``||delta[n]||_2 <= eps`` over each sample's whole perturbation (as in ART);
- ``norm=2`` with per-channel ``eps``: ``||delta[n, c]||_2 <= eps[c]`` for each sample and channel.

An L2 step is normalised over the same axes as its ball, so an L2 attack's ``eps`` and ``eps_step`` have one
shape (both scalars or both per channel); the attacks check this.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

NORMS = (np.inf, "inf", 2)


def canonical_norm(norm: Any) -> float:
    """``np.inf`` for ``np.inf`` or ``"inf"``, ``2.0`` for 2; a ``ValueError`` naming the value otherwise."""
    if isinstance(norm, str) and norm == "inf":
        return np.inf
    if isinstance(norm, (int, float, np.number)) and not isinstance(norm, bool) and float(norm) in (np.inf, 2.0):
        return float(norm)
    raise ValueError(f"norm must be np.inf, 'inf' or 2, got {norm!r}")


def check_budget(name: str, value: Any, nb_channels: int, *, positive: bool = False) -> float | np.ndarray:
    """Validate a scalar or per-channel budget; return a float or a float64 array of shape ``(C,)``.

    Raises:
        TypeError: not a real number or a sequence of them.
        ValueError: negative (or zero where ``positive``), not finite, or not ``nb_channels`` values.
    """
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number, list, tuple, np.ndarray)):
        raise TypeError(f"{name} must be a number or {nb_channels} per-channel numbers, got {value!r}")
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        result: float | np.ndarray = float(array)
    elif array.shape == (nb_channels,):
        result = array
    else:
        raise ValueError(f"{name} must be a scalar or {nb_channels} per-channel values, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite, got {value!r}")
    if (array < 0).any() or (positive and (array == 0).any()):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return result


def budget_tensor(budget: float | np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """A budget as a tensor broadcastable to ``like`` ``(N, C, *spatial)``, on its device and in its dtype."""
    t = torch.as_tensor(np.asarray(budget), device=like.device, dtype=like.dtype)
    return t if t.ndim == 0 else t.reshape(1, -1, *([1] * (like.ndim - 2)))


def _l2_dims(budget: torch.Tensor, ndim: int) -> tuple[int, ...]:
    """Axes an L2 norm runs over: the whole sample for a scalar budget, each channel for a per-channel one."""
    return tuple(range(1 if budget.ndim == 0 else 2, ndim))


def steepest_step(grad: torch.Tensor, norm: float, step: torch.Tensor) -> torch.Tensor:
    """The step of size ``step`` that increases a linear function with gradient ``grad`` the most.

    L-inf: ``step * sign(grad)``; L2: ``step * grad / ||grad||_2`` (zero where the gradient is zero).
    """
    if norm == np.inf:
        return step * grad.sign()
    length = grad.square().sum(dim=_l2_dims(step, grad.ndim), keepdim=True).sqrt()
    return step * grad / torch.where(length > 0, length, torch.ones_like(length))


def project(delta: torch.Tensor, norm: float, eps: torch.Tensor) -> torch.Tensor:
    """Euclidean projection of ``delta`` onto the ``eps`` ball of ``norm`` (see the module docstring)."""
    if norm == np.inf:
        return torch.maximum(torch.minimum(delta, eps), -eps)
    length = delta.square().sum(dim=_l2_dims(eps, delta.ndim), keepdim=True).sqrt()
    return delta * torch.clamp(eps / torch.where(length > 0, length, torch.ones_like(length)), max=1.0)


def random_start(
    shape: torch.Size, norm: float, eps: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """A perturbation drawn uniformly from the ``eps`` ball, from ``generator`` (``None``: torch's global one)."""
    if norm == np.inf:
        unit = torch.rand(shape, generator=generator, device=eps.device, dtype=eps.dtype) * 2 - 1
        return unit * eps
    dims = _l2_dims(eps, len(shape))
    direction = torch.randn(shape, generator=generator, device=eps.device, dtype=eps.dtype)
    direction = direction / direction.square().sum(dim=dims, keepdim=True).sqrt().clamp_min(1e-12)
    size = int(np.prod([shape[d] for d in dims]))
    radius_shape = [s if d not in dims else 1 for d, s in enumerate(shape)]
    radius = torch.rand(radius_shape, generator=generator, device=eps.device, dtype=eps.dtype) ** (1.0 / size)
    return direction * radius * eps
