"""What every ``art-seg`` command shares: common options, device and seed set-up, data and model loading."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from art_seg import distributed
from art_seg._checks import check_number
from art_seg.data import Subject, find_subjects, make_brats_phantom
from art_seg.defences import load_segmenter
from art_seg.estimators import PyTorchSegmenter
from art_seg._files import atomic_write_files
from art_seg.evaluation.attack_specs import AttackSpec, attack_spec
from art_seg.evaluation.scoring import region_channels

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


def subjects_or_phantom(args: argparse.Namespace, folder: Path) -> list[Subject]:
    """The BraTS subjects under ``--data``, or (without it) a phantom made once in ``folder``."""
    if getattr(args, "data", None):
        subjects = find_subjects(args.data)
        if not subjects:
            raise CommandError(f"no BraTS subjects found under --data {args.data!r}")
        return subjects
    marker = folder / "phantom.json"
    settings = {"n_subjects": args.subjects, "shape": list(args.shape), "seed": args.seed}
    if not marker.is_file() or json.loads(marker.read_text()) != settings:
        make_brats_phantom(folder, n_subjects=args.subjects, shape=tuple(args.shape), seed=args.seed)
        write_json(marker, settings)  # written last: the phantom is complete
    return find_subjects(folder)


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


def load_model(path: str | Path, device_type: str) -> tuple[PyTorchSegmenter, int]:
    """The segmenter of a ``model.pt`` and the multiple its input sizes must have (``2 ** depth``).

    The segmenter is the one :func:`~art_seg.defences.load_segmenter` rebuilds, with the activation and region
    spec the file holds; the commands score and write its predictions through them, so a model whose predictions
    cannot be scored on the BraTS regions (a sigmoid model with several channels and no region spec) is refused
    here, before any work.

    Raises:
        FileNotFoundError: no file.
        ValueError: the file is damaged or not an art_seg model, its content is malformed (a missing or mistyped
            entry), or its predictions cannot be scored on the BraTS regions, naming the file.
    """
    try:
        segmenter, checkpoint = load_segmenter(path, device_type=device_type)
        depth = int(checkpoint["architecture"]["config"].get("depth", 4))
    except (KeyError, TypeError, AttributeError, IndexError) as error:
        problem = f"missing entry {error.args[0]!r}" if isinstance(error, KeyError) else str(error)
        raise ValueError(f"model {str(path)!r} is not a usable art_seg model: {problem}") from error
    try:
        region_channels(segmenter)
    except ValueError as error:
        raise ValueError(f"model {str(path)!r}: {error}") from None
    return segmenter, 2**depth


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    """``--window`` (sliding-window size) and ``--autocast`` for commands that run a trained model."""
    group = parser.add_argument_group("inference")
    group.add_argument("--window", type=int, default=None, help="sliding-window size in voxels (default: whole)")
    group.add_argument("--autocast", choices=("bfloat16", "float16"), default=None, help="mixed-precision forward")


def load_inference_model(
    path: str | Path, device_type: str, args: argparse.Namespace
) -> tuple[PyTorchSegmenter, int]:
    """:func:`load_model`, with the sliding window and autocast chosen on the command line
    (:func:`add_inference_arguments`) set on the segmenter."""
    from art_seg.estimators import SlidingWindow

    segmenter, multiple = load_model(path, device_type)
    window = None if args.window is None else SlidingWindow(roi_size=args.window)
    segmenter.set_params(sliding_window=window, autocast=args.autocast)
    return segmenter, multiple
