"""Training checkpoints: written atomically, read with ``torch.load(..., weights_only=True)``, checked against
the model.

A checkpoint is one ``.pt`` file holding a plain dict (tensors, numbers, strings, lists and dicts only, so that
``weights_only=True`` loads it and no pickled code ever runs):

- ``"format"``: :data:`CHECKPOINT_FORMAT`;
- ``"model"``: the model's ``state_dict``; ``"architecture"``: the model class name and its ``config`` (art_seg
  models) or ``None``;
- ``"optimizer"``: the optimizer's ``state_dict`` or ``None``;
- ``"epoch"``: epochs completed; ``"config"``: the trainer's settings; ``"state"``: the trainer's own state
  (history, best score, ...);
- ``"segmenter"``: the :class:`~art_seg.estimators.PyTorchSegmenter` settings needed to rebuild it
  (:func:`segmenter_settings`), or ``None``.

:func:`load_segmenter` rebuilds a ready-to-attack segmenter from a checkpoint of an art_seg model.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from art_seg._checks import check_choice, check_finite, check_type
from art_seg.estimators import PyTorchSegmenter
from art_seg.models import UNet2D, UNet3D

CHECKPOINT_FORMAT = "art_seg.checkpoint/1"
MODELS = {"UNet3D": UNet3D, "UNet2D": UNet2D}


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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the file is damaged or not an art_seg checkpoint, or its model holds a NaN or Inf
            value (names the file, and the parameter).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises RuntimeError, pickle.UnpicklingError, EOFError, ...
        raise CheckpointError(f"checkpoint {str(path)!r} is damaged or not a torch file: {error}") from error
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"{str(path)!r} is not an art_seg checkpoint (format {found!r}, expected {CHECKPOINT_FORMAT!r})"
        )
    for name, tensor in payload["model"].items():
        try:
            check_finite(f"checkpoint {str(path)!r} parameter {name!r}", tensor)
        except ValueError as error:
            raise CheckpointError(f"{error}; it was saved from a diverged run") from None
    return payload


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
        FileNotFoundError, ValueError: see :func:`read_checkpoint`; ``ValueError`` also for a checkpoint of
            another architecture, naming what differs.
    """
    check_type("model", model, torch.nn.Module)
    device = next(iter(model.parameters()), torch.empty(0)).device
    payload = read_checkpoint(path, map_location=device)
    problems = _architecture_differences(payload, model)
    if problems:
        raise ValueError(f"checkpoint {str(path)!r} is from another architecture: {'; '.join(problems)}")
    model.load_state_dict(payload["model"])
    if optimizer is not None:
        if payload["optimizer"] is None:
            raise ValueError(f"checkpoint {str(path)!r} holds no optimizer state to resume from")
        optimizer.load_state_dict(payload["optimizer"])
    return payload


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
    """A segmenter's constructor settings as plain data (loss by name only; preprocessing as mean and std).

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
    return {
        "loss": segmenter.loss,
        "input_shape": list(segmenter.input_shape),
        "nb_classes": segmenter.nb_classes,
        "activation": segmenter.activation,
        "clip_values": None if clip is None else [np.asarray(c).ravel().tolist() for c in clip],
        "preprocessing": None
        if standardisation is None
        else [np.asarray(standardisation.mean).ravel().tolist(), np.asarray(standardisation.std).ravel().tolist()],
    }


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
    settings, arch = payload.get("segmenter"), payload["architecture"]
    if settings is None:
        raise ValueError(
            f"checkpoint {str(path)!r} holds no segmenter settings; it cannot be rebuilt by load_segmenter"
        )
    if arch.get("class") not in MODELS or arch.get("config") is None:
        raise ValueError(
            f"checkpoint {str(path)!r} holds a {arch.get('class')!r}; load_segmenter rebuilds {list(MODELS)}"
        )
    model = MODELS[arch["class"]].from_config(_checked_config(payload, path))
    clip = settings["clip_values"]
    preprocessing = settings["preprocessing"]
    segmenter = PyTorchSegmenter(
        model,
        settings["loss"],
        input_shape=tuple(settings["input_shape"]),
        nb_classes=settings["nb_classes"],
        activation=settings["activation"],
        clip_values=None if clip is None else tuple(_scalar_or_array(c) for c in clip),
        preprocessing=None if preprocessing is None else tuple(_scalar_or_array(p) for p in preprocessing),
        optimizer=None if learning_rate is None else torch.optim.Adam(model.parameters(), lr=learning_rate),
        device_type=device_type,
    )
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


def _scalar_or_array(values: list[float]) -> float | np.ndarray:
    return float(values[0]) if len(values) == 1 else np.asarray(values, dtype=np.float32)
