"""One-line argument checks shared by every layer (the kornia ``KORNIA_CHECK`` idea).

Each check raises ``ValueError`` or ``TypeError`` whose message names the argument and shows the
offending value, so that bad input fails early and says why.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def check_type(name: str, value: Any, types: type | tuple[type, ...]) -> None:
    """Raise ``TypeError`` unless ``value`` is an instance of ``types``."""
    if not isinstance(value, types):
        wanted = types.__name__ if isinstance(types, type) else " or ".join(t.__name__ for t in types)
        raise TypeError(f"{name} must be {wanted}, got {type(value).__name__} ({value!r})")


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    integer: bool = False,
) -> None:
    """Raise ``TypeError`` unless ``value`` is a real (or integral) number, ``ValueError`` unless it is in range.

    Booleans are rejected. ``low``/``high`` bound the value; ``None`` leaves that side open.
    """
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError(f"{name} must be {'an integer' if integer else 'a real number'}, got {value!r}")
    if not np.isfinite(float(value)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (value < low or (value == low and not low_inclusive)):
        raise ValueError(f"{name} must be {'>=' if low_inclusive else '>'} {low}, got {value!r}")
    if high is not None and (value > high or (value == high and not high_inclusive)):
        raise ValueError(f"{name} must be {'<=' if high_inclusive else '<'} {high}, got {value!r}")


def check_finite(name: str, array: np.ndarray | torch.Tensor) -> None:
    """Raise ``ValueError`` if a floating array or tensor holds NaN or Inf (names how many and where first)."""
    if isinstance(array, torch.Tensor):
        if not array.is_floating_point():
            return
        bad = ~torch.isfinite(array)
        if bool(bad.any()):
            first = tuple(int(i) for i in torch.nonzero(bad)[0].tolist())
            raise ValueError(
                f"{name} must be finite, got {int(bad.sum())} NaN/Inf value(s), first at index {first} "
                f"({array[first].item()!r})"
            )
        return
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.floating):
        return
    bad = ~np.isfinite(array)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} must be finite, got {int(bad.sum())} NaN/Inf value(s), first at index {first} "
            f"({array[first].item()!r})"
        )
