"""Adapters to other tools' trained models, each returning a :class:`~art_seg.estimators.PyTorchSegmenter` whose
predictions are the tool's own. The tools are imported lazily, inside the loaders, so that the core install stays
light: ``art_seg.integrations.nnunet.load_nnunet`` needs ``nnunetv2`` (``pip install art-seg[nnunet]``),
``art_seg.integrations.monai.load_bundle`` needs MONAI (``pip install art-seg[monai]``).

:func:`model_kind` tells a model from the contents of its path, and :func:`load_model_folder` loads an nnU-Net or
MONAI model folder with the loader of its kind (what ``art-seg --model`` does):

================  ==========================================================================================
kind              path
================  ==========================================================================================
``"art_seg"``     a file: an art_seg checkpoint (``art_seg.defences.load_segmenter``)
``"nnunet"``      a folder holding ``plans.json``, ``dataset.json`` and ``fold_*/`` folders (an nnU-Net v2
                  trained-model folder)
``"monai"``       a folder holding ``configs/inference.json`` (a MONAI bundle)
================  ==========================================================================================
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from art_seg._checks import check_type
from art_seg.estimators import PyTorchSegmenter

__all__ = ["MODEL_KINDS", "load_model_folder", "model_kind"]

MODEL_KINDS = ("art_seg", "nnunet", "monai")
#: What a model path may be, for error messages.
EXPECTED = (
    "an art_seg checkpoint file (model.pt), an nnU-Net trained-model folder (plans.json, dataset.json, fold_X/) "
    "or a MONAI bundle folder (configs/inference.json)"
)


def model_kind(path: str | os.PathLike) -> str:
    """The kind of model at ``path``, from what is there (see the module docstring); nothing is loaded.

    Raises:
        FileNotFoundError: nothing at ``path``.
        ValueError: a folder that is neither an nnU-Net trained-model folder nor a MONAI bundle (one line naming
            the path and what was expected).

    Example:
        >>> model_kind("runs/demo/model.pt")  # doctest: +SKIP
        'art_seg'
    """
    check_type("path", path, (str, os.PathLike))
    path = Path(path)
    if path.is_file():
        return "art_seg"
    if not path.is_dir():
        raise FileNotFoundError(f"model {str(path)!r} does not exist (expected {EXPECTED})")
    if (path / "configs" / "inference.json").is_file():
        return "monai"
    if (path / "plans.json").is_file() and (path / "dataset.json").is_file():
        if any(child.is_dir() for child in path.glob("fold_*")):
            return "nnunet"
        raise ValueError(f"model {str(path)!r} has plans.json and dataset.json but no fold_X/ folder with a "
                         f"trained fold (expected {EXPECTED})")  # fmt: skip
    raise ValueError(f"model {str(path)!r} is a folder of none of the known kinds (expected {EXPECTED})")


def load_model_folder(
    path: str | os.PathLike,
    *,
    folds: Iterable[int | str] | int | str | None = None,
    checkpoint: str | None = None,
    device: str | None = None,
) -> PyTorchSegmenter:
    """Load an nnU-Net trained-model folder (:func:`art_seg.integrations.nnunet.load_nnunet`) or a MONAI bundle
    folder (:func:`art_seg.integrations.monai.load_bundle`), recognised by :func:`model_kind`.

    Args:
        path: the folder.
        folds: nnU-Net folds (numbers and/or ``"all"``); ``None``: ``load_nnunet``'s default (fold 0).
        checkpoint: the nnU-Net checkpoint file name in each fold folder; ``None``: ``load_nnunet``'s default
            (``checkpoint_final.pth``).
        device: ``None`` or ``"gpu"`` (CUDA when available, else the CPU) or ``"cpu"``.

    Raises:
        FileNotFoundError: nothing at ``path``.
        ValueError: ``path`` is a file (an art_seg checkpoint: load it with ``art_seg.defences.load_segmenter``)
            or a folder of no known kind; ``folds`` or ``checkpoint`` given for a MONAI bundle; and what the
            loader raises.
        ImportError: the tool the folder needs is not installed.
    """
    kind = model_kind(path)
    if kind == "art_seg":
        raise ValueError(f"model {str(path)!r} is a file, not a model folder: load an art_seg checkpoint with "
                         "art_seg.defences.load_segmenter")  # fmt: skip
    if kind == "monai":
        given = [name for name, value in (("folds", folds), ("checkpoint", checkpoint)) if value is not None]
        if given:
            raise ValueError(f"{' and '.join(given)} apply to nnU-Net model folders; {str(path)!r} is a MONAI bundle")
        from art_seg.integrations.monai import load_bundle

        return load_bundle(path, device=device)
    from art_seg.integrations.nnunet import load_nnunet

    options = {name: value for name, value in (("folds", folds), ("checkpoint", checkpoint)) if value is not None}
    return load_nnunet(path, device=device, **options)
