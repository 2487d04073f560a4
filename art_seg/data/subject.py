"""The subject record every discovery function returns, its modality names, and skip-or-raise bookkeeping.

A :class:`Subject` says where one case's files are; :func:`~art_seg.data.load_subject` reads it, whatever the
layout it was found in (BraTS folders, an nnU-Net raw dataset, the Medical Segmentation Decathlon).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from art_seg._checks import check_choice, check_type
from art_seg.data.labels import LabelConvention

__all__ = [
    "DEFAULT_MODALITIES",
    "MODALITIES",
    "MODALITY_ALIASES",
    "ON_ERROR",
    "SkipLog",
    "Subject",
    "SubjectError",
    "normalize_modalities",
    "skipped_summary",
]

#: The four BraTS MR series, in ``art_seg``'s default channel order.
DEFAULT_MODALITIES: tuple[str, ...] = ("t1", "t1ce", "t2", "flair")
MODALITIES: frozenset[str] = frozenset(DEFAULT_MODALITIES)
#: File-name suffixes of each year, mapped to ``art_seg`` modality names (``"seg"`` is the label map).
MODALITY_ALIASES: dict[str, str] = {
    "t1": "t1",
    "t1ce": "t1ce",
    "t2": "t2",
    "flair": "flair",
    "seg": "seg",
    "t1n": "t1",
    "t1c": "t1ce",
    "t2w": "t2",
    "t2f": "flair",
}
ON_ERROR = ("skip", "raise")


class SubjectError(ValueError):
    """A subject folder is incomplete, ambiguous or unreadable, a dataset description is wrong, or every subject
    was skipped (the message names the folders or files and the problems)."""


def skipped_summary(reasons: Sequence[str], what: str, shown: int = 3) -> str:
    """``"N <what>s were skipped: <the first reasons>"``, for the error raised when nothing is left to use.

    Example:
        >>> skipped_summary(["a: empty file", "b: missing modality"], "subject folder")
        '2 subject folders were skipped: a: empty file; b: missing modality'
    """
    n = len(reasons)
    counted = f"1 {what} was" if n == 1 else f"{n} {what}s were"
    more = f"; and {n - shown} more" if n > shown else ""
    return f"{counted} skipped: " + "; ".join(reasons[:shown]) + more


class SkipLog:
    """The problems met while discovering subjects: each warns and is recorded (``on_error="skip"``) or raises
    :class:`SubjectError` at once (``on_error="raise"``).

    Args:
        on_error: ``"skip"`` or ``"raise"``.
    """

    def __init__(self, on_error: str) -> None:
        check_choice("on_error", on_error, ON_ERROR)
        self.on_error = on_error
        self.reasons: list[str] = []

    def fail(self, message: str, what: str = "subject", stacklevel: int = 3) -> None:
        """Raise ``SubjectError(message)`` or warn ``"skipping <what>: <message>"`` and record it."""
        if self.on_error == "raise":
            raise SubjectError(message)
        self.reasons.append(message)
        warnings.warn(f"skipping {what}: {message}", stacklevel=stacklevel)

    def nothing_left(self, root: str | os.PathLike, kind: str, expected: str) -> SubjectError:
        """The error for a search that kept no subject: how many were skipped and why, or what was expected."""
        if self.reasons:
            return SubjectError(f"{root}: no {kind} left: {skipped_summary(self.reasons, 'subject folder')}")
        return SubjectError(f"{root}: no {kind}s found ({expected})")


@dataclass(frozen=True)
class Subject:
    """One case: where its files are and how they are named.

    Attributes:
        id: the subject identifier, e.g. ``"BraTS20_Training_001"``.
        paths: modality name -> file, in channel order (e.g. ``{"t1": ..., "t1ce": ..., "t2": ..., "flair": ...}``).
            Modality names are ``art_seg``'s (``t1``, ``t1ce``, ``t2``, ``flair``) for BraTS MR series, else a
            dataset's own channel names (see :mod:`art_seg.data.dataset_json`).
        seg: the segmentation file, or ``None`` (validation and test sets).
        layout: ``"brats2018"``, ``"brats2020"``, ``"brats2021"``, ``"brats2023"``, ``"brats2024"`` (BraTS
            2024 post-treatment glioma), ``"nnunet"`` (an nnU-Net v2 raw dataset), ``"msd"`` (the Medical
            Segmentation Decathlon) or ``"unknown"`` (names that match the modality suffixes but no known id
            pattern).
        label_convention: how the segmentation's values map to classes: a registered name (``"brats2018"``,
            ``"brats2023"``, ``"brats2024"``, ``"msd_brats"``) or a :class:`~art_seg.data.labels.LabelConvention`
            (a dataset's own labels); see :mod:`art_seg.data.labels`.
        group: the parent folder name when it is a BraTS grade folder (``"HGG"``/``"LGG"``), else ``None``.
        volume_index: for modalities stored in a 4-D file (the Decathlon's one file per case): modality ->
            ``(index, count)``, the volume on the file's 4th axis and how many volumes the file must hold.
            Empty for 3-D files.
    """

    id: str
    paths: dict[str, Path] = field(hash=False)
    seg: Path | None = None
    layout: str = "unknown"
    label_convention: str | LabelConvention = "brats2018"
    group: str | None = None
    volume_index: dict[str, tuple[int, int]] = field(default_factory=dict, hash=False)

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modality names in channel order."""
        return tuple(self.paths)

    @property
    def folder(self) -> Path:
        """The folder of the first modality file."""
        return next(iter(self.paths.values())).parent

    @property
    def has_seg(self) -> bool:
        """Whether a segmentation file was found."""
        return self.seg is not None


def normalize_modalities(modalities: Sequence[str]) -> tuple[str, ...]:
    """Check a modality order and map 2023 names (``t1n``, ``t1c``, ``t2w``, ``t2f``) to ``art_seg`` names.

    Raises:
        ValueError: for an unknown or repeated modality, or an empty sequence.
    """
    if isinstance(modalities, str):
        raise TypeError(f"modalities must be a sequence of names, got the string {modalities!r}")
    names = []
    for name in modalities:
        check_type("modality", name, str)
        canonical = MODALITY_ALIASES.get(name.lower())
        if canonical is None or canonical == "seg":
            raise ValueError(f"unknown modality {name!r}; expected names from {sorted(MODALITY_ALIASES)} except 'seg'")
        names.append(canonical)
    if not names:
        raise ValueError("modalities must name at least one modality, got an empty sequence")
    if len(set(names)) != len(names):
        raise ValueError(f"modalities must not repeat, got {tuple(modalities)}")
    return tuple(names)
