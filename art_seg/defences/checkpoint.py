"""Training checkpoints: written atomically, read with ``torch.load(..., weights_only=True)``, checked against
the model.

A checkpoint is one ``.pt`` file holding a plain dict (tensors, numbers, strings, lists and dicts only, so that
``weights_only=True`` loads it and no pickled code ever runs):

- ``"format"``: :data:`CHECKPOINT_FORMAT`;
- ``"model"``: the model's ``state_dict``; ``"architecture"``: the model class name and its ``config`` (art_seg
  models) or ``None``;
- ``"optimizer"``: the optimizer's ``state_dict`` or ``None``;
- ``"epoch"``: epochs completed; ``"config"``: what determines the run, which a resume must match (the
  trainer's settings, optimizer hyper-parameters, segmenter settings, batch size, data fingerprints); ``"state"``:
  the trainer's own state (history, best score, ...);
- ``"segmenter"``: the :class:`~art_seg.estimators.PyTorchSegmenter` settings needed to rebuild it
  (:func:`segmenter_settings`), or ``None``.

:func:`load_segmenter` rebuilds a ready-to-attack segmenter from a checkpoint of an art_seg model.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from art_seg._checks import check_choice, check_finite, check_type
from art_seg._files import atomic_write
from art_seg.data.regions import RegionSpec
from art_seg.estimators import PyTorchSegmenter
from art_seg.models import UNet2D, UNet3D

CHECKPOINT_FORMAT = "art_seg.checkpoint/1"
MODELS = {"UNet3D": UNet3D, "UNet2D": UNet2D}
#: the entries of ``"segmenter"`` (:func:`segmenter_settings`) and their types
SEGMENTER_SETTINGS: dict[str, type | tuple[type, ...]] = {
    "loss": str,
    "input_shape": list,
    "nb_classes": int,
    "activation": str,
    "clip_values": (list, type(None)),
    "preprocessing": (list, type(None)),
}
#: entries added with region models and deep supervision, and the value a checkpoint written before them implies
LATER_SETTINGS: dict[str, tuple[tuple[type, ...], Any]] = {
    "regions": ((dict, type(None)), None),
    "deep_supervision": ((str, list, type(None)), "auto"),
}


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: damaged, not an art_seg checkpoint, malformed, of another
    architecture or run, or holding non-finite weights. The message names the file and what is wrong."""


def architecture(model: torch.nn.Module) -> dict[str, Any]:
    """What identifies a model's architecture: its class name and, for art_seg models, its ``config`` dict."""
    config = getattr(model, "config", None)
    return {"class": type(model).__name__, "config": dict(config) if isinstance(config, dict) else None}


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    epoch: int = 0,
    config: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
    segmenter: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically: to a temporary file in the same folder, then renamed over ``path``.

    An interrupted write leaves at most a stray ``.tmp`` file, never a truncated ``path``. ``segmenter``: the
    estimator's settings from :func:`segmenter_settings`, so that :func:`load_segmenter` can rebuild it.

    Returns:
        ``path`` as a ``Path``.
    """
    check_type("model", model, torch.nn.Module)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "architecture": architecture(model),
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "epoch": int(epoch),
        "config": dict(config or {}),
        "state": dict(state or {}),
        "segmenter": segmenter,
    }
    atomic_write(path, lambda handle: torch.save(payload, handle))
    return path


def read_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` and check its layout (the module docstring's keys and types).

    Raises:
        FileNotFoundError: no file at ``path``.
        OSError: the file cannot be opened (permissions).
        CheckpointError: the file is damaged, not an art_seg checkpoint, holds pickled objects that are not plain
            data, lacks a key or holds one of the wrong type, or its model holds a NaN or Inf value; one line
            naming the file and what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    with open(path, "rb") as file:  # an OSError opening it (permissions) is not the content's fault
        try:
            payload = torch.load(file, map_location=map_location, weights_only=True)
        except Exception as error:  # RuntimeError, pickle.UnpicklingError, EOFError, OSError on a bad zip, ...
            raise CheckpointError(f"checkpoint {str(path)!r} {_load_failure(error)}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"{str(path)!r} is not an art_seg checkpoint (format {found!r}, expected {CHECKPOINT_FORMAT!r})"
        )
    architecture = checked_entry(payload, "architecture", dict, path)
    checked_entry(architecture, "class", str, path, "architecture.")
    checked_entry(architecture, "config", (dict, type(None)), path, "architecture.")
    state = checked_entry(payload, "model", dict, path)
    for name in state:
        tensor = checked_entry(state, name, torch.Tensor, path, "model.")
        try:
            check_finite(f"checkpoint {str(path)!r} parameter {name!r}", tensor)
        except ValueError as error:
            raise CheckpointError(f"{error}; it was saved from a diverged run") from None
    checked_entry(payload, "optimizer", (dict, type(None)), path)
    if checked_entry(payload, "epoch", int, path) < 0:
        raise CheckpointError(f"checkpoint {str(path)!r} is malformed: 'epoch' must be >= 0, got {payload['epoch']}")
    for key in ("config", "state"):
        checked_entry(payload, key, dict, path)
    checked_entry(payload, "segmenter", (dict, type(None)), path)
    return payload


def checked_entry(
    mapping: dict[str, Any], key: str, types: type | tuple[type, ...], path: str | os.PathLike[str], where: str = ""
) -> Any:
    """``mapping[key]``, an entry of the checkpoint at ``path`` that must be present and of ``types``.

    ``where`` prefixes the key in messages (``"segmenter."``); a bool counts as neither int nor float.

    Raises:
        CheckpointError: ``"checkpoint 'PATH' is malformed: it lacks 'segmenter.loss'"`` or ``"... 'epoch' must be
            int, got str"``.
    """
    name = f"{where}{key}"
    if key not in mapping:
        raise CheckpointError(f"checkpoint {str(path)!r} is malformed: it lacks {name!r}")
    value = mapping[key]
    types = types if isinstance(types, tuple) else (types,)
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        wanted = " or ".join("None" if t is type(None) else t.__name__ for t in types)
        raise CheckpointError(
            f"checkpoint {str(path)!r} is malformed: {name!r} must be {wanted}, got {type(value).__name__}"
        )
    return value


def _load_failure(error: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` failed, in one line, without torch's advice to retry unsafely."""
    text = str(error)
    refused = re.search(r"WeightsUnpickler error: ([^\n]*)", text)
    if refused:
        reason = refused.group(1).split(". ")[0].strip().rstrip(".")
        return (
            f"holds a pickled object that is not plain data ({reason}); art_seg reads checkpoints with "
            f"weights_only=True and runs no code from them"
        )
    first = text.strip().splitlines()[0].split(". ")[0].strip().rstrip(".") if text.strip() else ""
    return f"is damaged or not a torch file: {first or type(error).__name__}"


def load_checkpoint(
    path: str | os.PathLike[str],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
) -> dict[str, Any]:
    """Load a checkpoint's weights into ``model`` (and its state into ``optimizer``), checking the architecture first.

    Nothing is loaded unless the checkpoint's model class, ``config`` and every parameter name and shape match.

    Returns:
        The checkpoint dict (``"epoch"``, ``"config"``, ``"state"``, ...).

    Raises:
        FileNotFoundError, OSError, CheckpointError: see :func:`read_checkpoint`; :class:`CheckpointError` also
            for a checkpoint of another architecture (naming what differs) or an optimizer state that does not fit
            ``optimizer``.
    """
    check_type("model", model, torch.nn.Module)
    payload = read_checkpoint(path, map_location=model_device(model))
    apply_checkpoint(payload, path, model, optimizer)
    return payload


def model_device(model: torch.nn.Module) -> torch.device:
    """Where ``model``'s parameters live (the CPU for a model without parameters)."""
    return next(iter(model.parameters()), torch.empty(0)).device


def apply_checkpoint(
    payload: dict[str, Any],
    path: str | os.PathLike[str],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
) -> None:
    """Load a checkpoint already read by :func:`read_checkpoint` from ``path`` into ``model`` (and ``optimizer``),
    as :func:`load_checkpoint` does: nothing is loaded unless the architecture and the optimizer state fit."""
    check_architecture(payload, model, path)
    if optimizer is not None:
        if payload["optimizer"] is None:
            raise CheckpointError(f"checkpoint {str(path)!r} holds no optimizer state to resume from")
        try:  # torch checks the parameter groups before it changes anything
            optimizer.load_state_dict(payload["optimizer"])
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise CheckpointError(
                f"checkpoint {str(path)!r} optimizer state does not fit the {type(optimizer).__name__} optimizer: "
                f"{type(error).__name__}: {error}"
            ) from None
    model.load_state_dict(payload["model"])


def check_architecture(payload: dict[str, Any], model: torch.nn.Module, path: str | os.PathLike[str]) -> None:
    """Raise :class:`CheckpointError` unless the checkpoint ``payload`` (read from ``path``) holds ``model``'s
    architecture: its class, ``config`` and every parameter name and shape."""
    problems = _architecture_differences(payload, model)
    if problems:
        raise CheckpointError(f"checkpoint {str(path)!r} is from another architecture: {'; '.join(problems)}")


def _architecture_differences(payload: dict[str, Any], model: torch.nn.Module) -> list[str]:
    saved, current = payload["architecture"], architecture(model)
    problems = [
        f"{key} {saved.get(key)!r} != model's {current[key]!r}"
        for key in ("class", "config")
        if saved.get(key) != current[key]
    ]
    state, expected = payload["model"], model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing:
        problems.append(f"missing parameters {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        problems.append(f"unexpected parameters {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
    shapes = [
        f"{name} {tuple(state[name].shape)} != {tuple(value.shape)}"
        for name, value in expected.items()
        if name in state and tuple(state[name].shape) != tuple(value.shape)
    ]
    if shapes:
        problems.append(f"shape mismatches {shapes[:5]}{' ...' if len(shapes) > 5 else ''}")
    return problems


def segmenter_settings(segmenter: PyTorchSegmenter) -> dict[str, Any]:
    """A segmenter's constructor settings as plain data (loss by name only; preprocessing as mean and std; a
    region spec as the dict of its fields; deep supervision as its name, ``None`` or a list of weights).

    Raises:
        ValueError: the loss is a callable, or preprocessing defences are set (they cannot be stored as data).
    """
    check_type("segmenter", segmenter, PyTorchSegmenter)
    if not isinstance(segmenter.loss, str):
        raise ValueError(f"only a segmenter with a named loss can be saved for load_segmenter, got {segmenter.loss!r}")
    if segmenter.preprocessing_defences or segmenter.postprocessing_defences:
        raise ValueError("a segmenter with preprocessing or postprocessing defences cannot be saved for load_segmenter")
    standardisation = segmenter.preprocessing
    clip = segmenter.clip_values
    regions = segmenter.regions
    return {
        "loss": segmenter.loss,
        "input_shape": list(segmenter.input_shape),
        "nb_classes": segmenter.nb_classes,
        "activation": segmenter.activation,
        "clip_values": None if clip is None else [np.asarray(c).ravel().tolist() for c in clip],
        "preprocessing": None
        if standardisation is None
        else [np.asarray(standardisation.mean).ravel().tolist(), np.asarray(standardisation.std).ravel().tolist()],
        "regions": None if regions is None else plain(dataclasses.asdict(regions)),
        "deep_supervision": plain(segmenter.deep_supervision),
    }


def plain(value: Any) -> Any:
    """A setting as checkpoint-safe plain data: numbers, strings, ``None``, lists (tuples, arrays and tensors
    become lists), dicts of those; anything else as its ``repr``."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return np.asarray(value if not isinstance(value, torch.Tensor) else value.detach().cpu()).tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return repr(value)


def load_segmenter(
    path: str | os.PathLike[str], *, device_type: str = "cpu", learning_rate: float | None = None
) -> tuple[PyTorchSegmenter, dict[str, Any]]:
    """Rebuild a :class:`PyTorchSegmenter` (architecture, weights, settings) from a checkpoint of an art_seg model.

    Args:
        path: a checkpoint written with ``segmenter=`` settings (every art_seg trainer's and the CLI's are).
        device_type: ``"cpu"`` or ``"gpu"``.
        learning_rate: give the segmenter an Adam optimizer with this learning rate (for further training).

    Returns:
        ``(segmenter, checkpoint)``; the model in eval mode.

    The architecture config is checked before the model is built (:meth:`~art_seg.models.UNet3D.check_config`:
    ``depth <= 10``, at most ``2**28`` parameters) and must describe no more parameters than the file holds
    weight values, so a crafted config cannot make it allocate a large network.

    Raises:
        FileNotFoundError: no file. ValueError (:class:`CheckpointError`): damaged, not an art_seg checkpoint, no
            segmenter settings, a model class art_seg cannot rebuild, or an architecture config out of bounds or
            not matching the weights (naming the key).
    """
    check_choice("device_type", device_type, ("cpu", "gpu"))
    payload = read_checkpoint(path)
    settings, arch = payload["segmenter"], payload["architecture"]
    if settings is None:
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds no segmenter settings; it cannot be rebuilt by load_segmenter"
        )
    for key, types in SEGMENTER_SETTINGS.items():
        checked_entry(settings, key, types, path, "segmenter.")
    later = {
        key: checked_entry(settings, key, types, path, "segmenter.") if key in settings else default
        for key, (types, default) in LATER_SETTINGS.items()
    }
    if arch["class"] not in MODELS or arch["config"] is None:
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds a {arch['class']!r}; load_segmenter rebuilds {list(MODELS)}"
        )
    model = MODELS[arch["class"]].from_config(_checked_config(payload, path))
    clip = settings["clip_values"]
    preprocessing = settings["preprocessing"]
    try:
        segmenter = PyTorchSegmenter(
            model,
            settings["loss"],
            input_shape=tuple(settings["input_shape"]),
            nb_classes=settings["nb_classes"],
            activation=settings["activation"],
            clip_values=None if clip is None else tuple(_scalar_or_array("clip_values", c) for c in clip),
            preprocessing=None
            if preprocessing is None
            else tuple(_scalar_or_array("preprocessing", p) for p in preprocessing),
            optimizer=None if learning_rate is None else torch.optim.Adam(model.parameters(), lr=learning_rate),
            device_type=device_type,
            regions=None if later["regions"] is None else RegionSpec(**later["regions"]),
            deep_supervision=later["deep_supervision"],
        )
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint {str(path)!r} segmenter settings: {error}") from None
    load_checkpoint(path, segmenter.model)
    segmenter.model.eval()
    return segmenter, payload


def _checked_config(payload: dict[str, Any], path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint's architecture config, checked without building the model: valid for its class, within
    the models' size bounds, and describing no more parameters than the file holds weight values.

    Raises:
        CheckpointError: naming the file and the key.
    """
    name, config = payload["architecture"]["class"], payload["architecture"]["config"]
    try:
        count = MODELS[name].check_config(config)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint {str(path)!r} architecture config: {error}") from None
    stored = sum(int(tensor.numel()) for tensor in payload["model"].values())
    if count > stored:
        raise CheckpointError(
            f"checkpoint {str(path)!r} architecture config describes a {name} of {count:,} parameters but holds "
            f"only {stored:,} weight values: the config does not match the weights"
        )
    return config


def _scalar_or_array(name: str, values: Any) -> float | np.ndarray:
    """A stored list of per-channel values (:func:`segmenter_settings`) as a scalar or a float32 array."""
    if not isinstance(values, list) or not values or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    ):
        raise ValueError(f"{name} must hold lists of numbers, got {values!r}")
    return float(values[0]) if len(values) == 1 else np.asarray(values, dtype=np.float32)
