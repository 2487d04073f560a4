"""Fingerprints of what determines a result row: a segmenter (weights and inference settings), an attack (its
class and parameters) and a sample (its arrays), so that a resumed run can tell rows that are still valid from
rows made with other inputs.

A fingerprint is a :func:`digest`: 16 hex digits of SHA-256 over a canonical encoding of plain values (JSON
numbers, strings, lists, mappings with their keys sorted) in which every array or tensor stands for its dtype,
shape and bytes (in C order, on the CPU). Equal content gives equal digests, whatever the objects, devices or
memory layouts; any change of a byte gives another.

What a segmenter's fingerprint holds (:func:`model_fingerprint`): the model's class and state_dict (weights and
buffers), and the settings that change what it predicts: activation, number of classes, region spec (which region
each channel of a region model is), loss (attacks follow its gradient), clip values, preprocessing and its
defences, postprocessing defences, sliding window and autocast. Not the device, ``channels_last`` or
``torch.compile``: they change speed, not the computation (beyond floating-point rounding).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from art_seg.estimators import PyTorchSegmenter
from art_seg.evaluation.attack_specs import AttackSpec

__all__ = ["attack_fingerprint", "digest", "model_fingerprint", "scoring_fingerprint"]

#: attack parameters that do not change the perturbation
_IGNORED_PARAMS = frozenset({"estimator", "verbose", "summary_writer"})


def digest(value: Any) -> str:
    """16 hex digits of SHA-256 over ``value``: nested mappings, lists, tuples, JSON scalars, numpy arrays and
    scalars, and torch tensors (each array by dtype, shape and bytes).

    Raises:
        TypeError: a value of another type.

    Example:
        >>> digest({"eps": 0.1, "mask": np.ones(3, bool)}) == digest({"mask": np.ones(3, bool), "eps": 0.1})
        True
    """
    hasher = hashlib.sha256()
    _feed(hasher, value)
    return hasher.hexdigest()[:16]


def _feed(hasher: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().to("cpu").contiguous()
        hasher.update(f"tensor {tensor.dtype} {tuple(tensor.shape)};".encode())
        hasher.update(tensor.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(value, (np.ndarray, np.generic)):
        value = np.asarray(value)
        hasher.update(f"array {value.dtype.str} {value.shape};".encode())
        hasher.update(np.ascontiguousarray(value).reshape(-1).view(np.uint8))
    elif isinstance(value, Mapping):
        hasher.update(b"{")
        for key in sorted(value, key=str):
            _feed(hasher, str(key))
            _feed(hasher, value[key])
        hasher.update(b"}")
    elif isinstance(value, (list, tuple)):
        hasher.update(b"[")
        for item in value:
            _feed(hasher, item)
        hasher.update(b"]")
    elif value is None or isinstance(value, (bool, int, float, str)):
        hasher.update(json.dumps(value).encode() + b";")
    else:
        raise TypeError(f"cannot fingerprint a {type(value).__name__}: {value!r}")


def _plain(value: Any) -> Any:
    """``value`` as plain JSON values: arrays, tensors and numpy scalars as numbers and lists (an infinite or NaN
    number as ``"inf"``, ``"nan"``), dataclasses as mappings, and any other object (a callable, a device, a
    module) as its class's or function's qualified name, never its ``repr`` (which may hold a memory address)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # "inf", "nan": standard JSON has no such numbers
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return _plain(np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value).tolist())
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"class": _qualified(type(value)), **_plain(dataclasses.asdict(value))}
    if callable(value) and hasattr(value, "__qualname__"):
        return _qualified(value)
    return _qualified(type(value))


def _qualified(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"


def _operations(operations: Any) -> list[dict[str, Any]]:
    """ART pre- or postprocessors (one, a list or ``None``) by class and declared parameters."""
    if operations is None:
        return []
    if not isinstance(operations, (list, tuple)):
        operations = [operations]
    return [
        {"class": _qualified(type(op)), **{name: _plain(getattr(op, name, None)) for name in getattr(op, "params", ())}}
        for op in operations
    ]


def model_fingerprint(segmenter: PyTorchSegmenter) -> dict[str, Any]:
    """What determines a segmenter's predictions and gradients (see the module docstring), as plain values.

    Returns:
        ``{"architecture": class name, "weights": digest of the state_dict, "inference": {setting: value}}``;
        equal for two segmenters that compute the same function, whatever their devices.

    Example:
        >>> from art_seg.models import UNet3D
        >>> seg = PyTorchSegmenter(UNet3D(1, 2, base_filters=2, depth=1), input_shape=(1, 8, 8, 8), nb_classes=2,
        ...                        device_type="cpu")
        >>> sorted(model_fingerprint(seg)["inference"])[:3]
        ['activation', 'autocast', 'clip_values']
    """
    module = segmenter.model
    state = {key: v if isinstance(v, torch.Tensor) else _plain(v) for key, v in module.state_dict().items()}
    window = segmenter.sliding_window
    return {
        "architecture": _qualified(type(module)),
        "weights": digest(state),
        "inference": {
            "activation": segmenter.activation,
            "nb_classes": segmenter.nb_classes,
            "regions": _plain(segmenter.regions),
            "loss": _plain(segmenter.loss),
            "clip_values": _plain(segmenter.clip_values),
            "preprocessing": _operations(segmenter.preprocessing_operations),
            "postprocessing": _operations(segmenter.postprocessing_defences),
            "sliding_window": None if window is None else _plain(window),
            "autocast": segmenter.autocast,
        },
    }


def attack_fingerprint(spec: AttackSpec, estimator: PyTorchSegmenter, eps: float) -> dict[str, Any]:
    """The attack ``spec`` builds on ``estimator`` at ``eps``: its class and declared parameters (ART's
    ``attack_params``, less ``estimator``, ``verbose`` and ``summary_writer``), its target builder and whether it
    honours the mask, as plain values."""
    attack = spec.build(estimator, eps)
    names = [name for name in getattr(attack, "attack_params", ()) if name not in _IGNORED_PARAMS]
    return {
        "class": _qualified(type(attack)),
        "params": {name: _plain(getattr(attack, name, None)) for name in names},
        "target": _plain(spec.target),
        "masked": spec.masked,
    }


def scoring_fingerprint(metrics: Any, challenge: str, nsd_tolerance: float) -> dict[str, Any]:
    """What, beyond Dice and HD95, determines a row's scores: the metric set, and the settings the chosen metrics
    use (the lesion rules' ``challenge`` when a lesion metric is chosen, the NSD tolerance when an NSD is), as
    plain values. ``{}`` for a run that records only Dice and HD95, so that the setups of the runs of an art_seg
    without metric sets keep their digests (and their folders resume)."""
    metrics = [str(metric) for metric in metrics]
    extra = [metric for metric in metrics if metric not in ("dice", "hd95")]
    if not extra:
        return {}
    scoring: dict[str, Any] = {"metrics": metrics}
    if any(metric.startswith("lesion-") for metric in extra):
        scoring["challenge"] = challenge
    if "nsd" in extra:
        scoring["nsd_tolerance"] = float(nsd_tolerance)
    return scoring
