"""What every ``art-seg`` command shares: common options, device and seed set-up, data and model loading."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from art_seg import distributed
from art_seg._checks import check_number
from art_seg.data import DEFAULT_MODALITIES, Subject, find_subjects, make_brats_phantom
from art_seg.defences import load_segmenter
from art_seg.estimators import PyTorchSegmenter
from art_seg._files import atomic_write_files
from art_seg.evaluation.attack_specs import AttackSpec, attack_spec
from art_seg.evaluation.scoring import region_channels
from art_seg.integrations import load_model_folder, model_kind

DEVICES = ("auto", "cpu", "cuda")


class CommandError(Exception):
    """A command-line value that cannot be used (a usage error): ``art-seg <command>: error: ...``, exit status 2."""


@contextmanager
def checking_arguments() -> Iterator[None]:
    """Report the ``ValueError`` or ``TypeError`` of checks on command-line values as a :class:`CommandError`."""
    try:
        yield
    except (ValueError, TypeError) as error:
        raise CommandError(str(error)) from error


def checked_attack_specs(
    names: Iterable[str], eps: Iterable[float], iterations: int, *, eps_option: str = "--eps"
) -> list[AttackSpec]:
    """The :class:`~art_seg.evaluation.attack_specs.AttackSpec` of each attack name with ``iterations`` steps,
    after checking every eps (> 0, z-scored units): a :class:`CommandError` names the first bad value (an unknown
    attack, iterations below 1, or an eps named as ``eps_option``)."""
    with checking_arguments():
        specs = [attack_spec(name, iterations=iterations) for name in names]
        for value in eps:
            check_number(eps_option, value, low=0, low_inclusive=False)
    return specs


def add_common_arguments(parser: argparse.ArgumentParser, *, output: str) -> None:
    """``--device``, ``--seed``, ``--output``, ``--threads`` and ``--quiet``."""
    group = parser.add_argument_group("common options")
    group.add_argument("--output", "-o", default=output, help=f"output folder (default: {output})")
    group.add_argument("--device", choices=DEVICES, default="auto", help="auto: CUDA when available, else CPU")
    group.add_argument("--seed", type=int, default=0, help="seed of everything random (default: 0)")
    group.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    group.add_argument("--quiet", "-q", action="store_true", help="no progress bars")


def setup(args: argparse.Namespace) -> str:
    """Join a torchrun process group if launched by one; apply ``--threads`` and ``--seed``; return the
    ``device_type`` (``"cpu"`` or ``"gpu"``) for estimators."""
    distributed.init_from_env()
    if args.seed < 0:
        raise CommandError(f"--seed must be >= 0, got {args.seed}")
    if args.threads is not None:
        if args.threads < 1:
            raise CommandError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise CommandError("--device cuda was asked for but torch sees no CUDA device (torch.cuda.is_available())")
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    return "gpu" if use_cuda else "cpu"


def subjects_or_phantom(
    args: argparse.Namespace, folder: Path, modalities: tuple[str, ...] | None = None
) -> list[Subject]:
    """The BraTS subjects under ``--data``, or (without it) a phantom made once in ``folder``; with
    ``modalities`` (default ``t1, t1ce, t2, flair``) as channels."""
    if getattr(args, "data", None):
        subjects = find_subjects(args.data, modalities=modalities)
        if not subjects:
            raise CommandError(f"no BraTS subjects found under --data {args.data!r}")
        return subjects
    marker = folder / "phantom.json"
    settings = {"n_subjects": args.subjects, "shape": list(args.shape), "seed": args.seed}
    if not marker.is_file() or json.loads(marker.read_text()) != settings:
        make_brats_phantom(folder, n_subjects=args.subjects, shape=tuple(args.shape), seed=args.seed)
        write_json(marker, settings)  # written last: the phantom is complete
    return find_subjects(folder, modalities=modalities)


def add_phantom_arguments(parser: argparse.ArgumentParser, subjects: int) -> None:
    """``--data`` (a BraTS folder) or the phantom's size."""
    group = parser.add_argument_group("data")
    group.add_argument("--data", default=None, help="a folder of BraTS subjects (default: the synthetic phantom)")
    group.add_argument("--subjects", type=int, default=subjects, help=f"phantom subjects (default: {subjects})")
    group.add_argument(
        "--shape",
        type=int,
        nargs=3,
        default=(48, 48, 32),
        metavar=("D", "H", "W"),
        help="phantom grid in voxels (default: 48 48 32)",
    )


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as indented JSON, atomically (an ``OSError`` names ``path``)."""
    atomic_write_files({path: (json.dumps(value, indent=2) + "\n").encode("utf-8")})


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--folds`` and ``--checkpoint``, for ``--model`` given as an nnU-Net trained-model folder."""
    group = parser.add_argument_group("nnU-Net models (--model a trained-model folder)")
    group.add_argument("--folds", nargs="+", default=None, help="folds to average: numbers and/or 'all' (default: 0)")
    group.add_argument(
        "--checkpoint", default=None, help="checkpoint file name in each fold folder (default: checkpoint_final.pth)"
    )


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    """``--folds`` and ``--checkpoint`` as :func:`load_model` keywords (``None`` when not given).

    Raises:
        CommandError: a fold that is neither a number ``>= 0`` nor ``all``.
    """
    folds = getattr(args, "folds", None)
    if folds is not None:
        bad = [f for f in folds if f != "all" and not (f.isdigit() and f.isascii())]
        if bad:
            raise CommandError(f"--folds must be fold numbers or 'all', got {bad[0]!r}")
        folds = [f if f == "all" else int(f) for f in folds]
    return {"folds": folds, "checkpoint": getattr(args, "checkpoint", None)}


def load_model(
    path: str | Path,
    device_type: str,
    *,
    folds: list[int | str] | None = None,
    checkpoint: str | None = None,
) -> tuple[PyTorchSegmenter, dict[str, Any]]:
    """The segmenter of ``--model`` and how subjects must be loaded for it.

    ``path`` is recognised by :func:`~art_seg.integrations.model_kind`: an art_seg ``model.pt`` (rebuilt by
    :func:`~art_seg.defences.load_segmenter` with the activation and region spec the file holds), an nnU-Net
    trained-model folder (``load_nnunet`` with ``folds`` and ``checkpoint``) or a MONAI bundle folder
    (``load_bundle``). The commands score and write predictions through the segmenter, so a model whose
    predictions cannot be scored on the BraTS regions (a sigmoid model with several channels and no region spec)
    is refused here, before any work.

    Returns:
        The segmenter and the data loading it needs: ``{"multiple": m}`` (every spatial size a multiple of ``m``:
        ``2 ** depth`` for art_seg's UNet, the bundle's ``"m*n"``, 1 for nnU-Net), plus ``"margin"`` where the
        model's tool crops differently (nnU-Net: 0, its non-zero bounding box) and ``"modalities"`` where the
        model takes other channels than ``t1, t1ce, t2, flair``; see :func:`subject_options`.

    Raises:
        FileNotFoundError: nothing at ``path``.
        CommandError: ``folds`` or ``checkpoint`` for a model that is not an nnU-Net folder; the tool a folder
            needs is not installed.
        ValueError: a folder of no known kind (naming the path and what was expected), a damaged file or one
            that is not an art_seg model, a malformed entry, predictions that cannot be scored on the BraTS
            regions, naming the path.
    """
    kind = model_kind(path)
    given = [f"--{name}" for name, value in (("folds", folds), ("checkpoint", checkpoint)) if value is not None]
    if given and kind != "nnunet":
        what = "an art_seg checkpoint file" if kind == "art_seg" else "a MONAI bundle folder"
        raise CommandError(f"{' and '.join(given)} apply to nnU-Net model folders; --model {str(path)!r} is {what}")
    if kind == "art_seg":
        segmenter, loading = _load_art_seg_model(path, device_type)
    else:
        try:
            segmenter = load_model_folder(path, folds=folds, checkpoint=checkpoint, device=device_type)
        except ImportError as error:
            raise CommandError(f"--model {str(path)!r}: {error}") from error
        loading = dict(getattr(segmenter.model, "subject_loading", {"multiple": 1}))
        modalities = getattr(segmenter.model, "modalities", None)
        if modalities is not None and tuple(modalities) != DEFAULT_MODALITIES:
            loading["modalities"] = tuple(modalities)
    try:
        region_channels(segmenter)
    except ValueError as error:
        raise ValueError(f"model {str(path)!r}: {error}") from None
    return segmenter, loading


def _load_art_seg_model(path: str | Path, device_type: str) -> tuple[PyTorchSegmenter, dict[str, Any]]:
    try:
        segmenter, checkpoint = load_segmenter(path, device_type=device_type)
        depth = int(checkpoint["architecture"]["config"].get("depth", 4))
    except (KeyError, TypeError, AttributeError, IndexError) as error:
        problem = f"missing entry {error.args[0]!r}" if isinstance(error, KeyError) else str(error)
        raise ValueError(f"model {str(path)!r} is not a usable art_seg model: {problem}") from error
    return segmenter, {"multiple": 2**depth}


def common_loading(loadings: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The data loading every model of an ``evaluate`` run accepts: the least common multiple of their
    multiples; their margins and modalities, which must agree where given.

    Raises:
        CommandError: two models that need different margins or modalities (evaluate them in separate runs).
    """
    loadings = list(loadings)
    merged: dict[str, Any] = {"multiple": math.lcm(*(loading.get("multiple", 1) for loading in loadings))}
    for key in ("margin", "modalities"):
        values = {loading[key] for loading in loadings if key in loading}
        if len(values) > 1:
            raise CommandError(f"the models need subjects loaded with different {key} ({sorted(values)}); "
                               "evaluate them in separate runs")  # fmt: skip
        if values:
            merged[key] = values.pop()
    return merged


def subject_options(loading: dict[str, Any]) -> dict[str, Any]:
    """The :func:`~art_seg.data.load_subject` keywords of a :func:`load_model` loading (margin, multiple)."""
    return {key: loading[key] for key in ("margin", "multiple") if key in loading}


def find_model_subjects(folder: str | Path, loading: dict[str, Any]) -> list[Subject]:
    """The subjects under ``folder``, with the modalities the loading names (``t1, t1ce, t2, flair`` by default)."""
    return find_subjects(folder, modalities=loading.get("modalities"))


def check_spacing(segmenter: PyTorchSegmenter, spacing: Iterable[float], shape: Iterable[int]) -> None:
    """Refuse data that the model's tool would have resampled before predicting (nnU-Net models:
    ``NnUNetModel.check_spacing``); nothing for other models.

    Args:
        spacing: the data's voxel size in mm, per spatial axis.
        shape: the loaded image's spatial shape.
    """
    check = getattr(segmenter.model, "check_spacing", None)
    if check is not None:
        check(tuple(spacing), tuple(shape))


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    """``--window`` (sliding-window size) and ``--autocast`` for commands that run a trained model."""
    group = parser.add_argument_group("inference")
    group.add_argument(
        "--window",
        type=int,
        default=None,
        help="sliding-window size in voxels (default: the model's own: nnU-Net's patch, a bundle's roi_size; whole "
        "volumes for art_seg models)",
    )
    group.add_argument("--autocast", choices=("bfloat16", "float16"), default=None, help="mixed-precision forward")


def apply_inference_arguments(segmenter: Any, args: argparse.Namespace) -> None:
    """Set the sliding window and autocast chosen on the command line on a loaded segmenter.

    ``--window N`` sets the window size: a model that came with its tool's window (nnU-Net, a MONAI bundle) keeps
    its overlap, blending and placement; without ``--window`` the model's own window (or none) stays.
    """
    from art_seg.estimators import SlidingWindow

    window = segmenter.sliding_window
    if args.window is not None:
        window = dataclasses.replace(window, roi_size=args.window) if window else SlidingWindow(roi_size=args.window)
    segmenter.set_params(sliding_window=window, autocast=args.autocast)
