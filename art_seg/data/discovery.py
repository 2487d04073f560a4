"""Find BraTS subjects under a folder, whatever the challenge year's file naming.

Supported layouts (``.nii`` or ``.nii.gz``, upper or lower case, any folder depth):

==========  =====================================================================  ==============
layout      example                                                                label values
==========  =====================================================================  ==============
brats2018   ``HGG/Brats18_2013_2_1/Brats18_2013_2_1_t1ce.nii.gz`` (2017 to 2019)   ``{0, 1, 2, 4}``
brats2020   ``BraTS20_Training_001/BraTS20_Training_001_flair.nii.gz``             ``{0, 1, 2, 4}``
brats2021   ``BraTS2021_00000/BraTS2021_00000_t2.nii.gz``                           ``{0, 1, 2, 4}``
brats2023   ``BraTS-GLI-00000-000/BraTS-GLI-00000-000-t2f.nii.gz`` (t1n t1c t2w t2f)  ``{0, 1, 2, 3}``
==========  =====================================================================  ==============

Modalities are named ``t1``, ``t1ce``, ``t2``, ``flair`` everywhere in ``art_seg``; the 2023 names ``t1n``,
``t1c``, ``t2w``, ``t2f`` are read as those. A folder whose file names follow none of these patterns is ignored;
a subject that lacks a modality, and a folder that cannot be listed, are errors (skipped with a warning in batch
mode); a subject without a segmentation (a validation set) is kept with ``seg=None``, for prediction.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from art_seg._checks import check_choice, check_type

__all__ = [
    "DEFAULT_MODALITIES",
    "MODALITIES",
    "MODALITY_ALIASES",
    "Subject",
    "SubjectError",
    "find_subjects",
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

_FILE_RE = re.compile(r"^(?P<sid>.+?)[_-](?P<mod>t1ce|t1n|t1c|t1|t2w|t2f|t2|flair|seg)\.nii(?:\.gz)?$", re.IGNORECASE)
_LAYOUT_RES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("brats2023", re.compile(r"^BraTS-[A-Z]+-\d+-\d+$", re.IGNORECASE)),
    ("brats2021", re.compile(r"^BraTS2021_\d+$", re.IGNORECASE)),
    ("brats2020", re.compile(r"^BraTS20_(Training|Validation|Testing)_\d+$", re.IGNORECASE)),
    ("brats2018", re.compile(r"^Brats1[789]_", re.IGNORECASE)),
)
_SUFFIXES_2023 = frozenset({"t1n", "t1c", "t2w", "t2f"})


class SubjectError(ValueError):
    """A BraTS subject folder is incomplete, ambiguous or unreadable, or every subject was skipped (the message
    names the folders and the problems)."""


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


@dataclass(frozen=True)
class Subject:
    """One BraTS case: where its files are and how they are named.

    Attributes:
        id: the subject identifier, e.g. ``"BraTS20_Training_001"``.
        paths: modality name -> file, in channel order (e.g. ``{"t1": ..., "t1ce": ..., "t2": ..., "flair": ...}``).
        seg: the segmentation file, or ``None`` (validation sets).
        layout: ``"brats2018"``, ``"brats2020"``, ``"brats2021"``, ``"brats2023"`` or ``"unknown"`` (names that
            match the modality suffixes but no known id pattern).
        label_convention: ``"brats2023"`` (values ``{0, 1, 2, 3}``) for the 2023 layout, else ``"brats2018"``
            (values ``{0, 1, 2, 4}``); see :mod:`art_seg.data.labels`.
        group: the parent folder name when it is a BraTS grade folder (``"HGG"``/``"LGG"``), else ``None``.
    """

    id: str
    paths: dict[str, Path] = field(hash=False)
    seg: Path | None = None
    layout: str = "unknown"
    label_convention: str = "brats2018"
    group: str | None = None

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


def _layout(subject_id: str, suffixes: set[str]) -> str:
    for name, pattern in _LAYOUT_RES:
        if pattern.match(subject_id):
            return name
    return "brats2023" if suffixes & _SUFFIXES_2023 else "unknown"


def _build_subject(
    folder: Path, subject_id: str, files: dict[str, list[Path]], suffixes: set[str], modalities: tuple[str, ...]
) -> Subject:
    where = folder / subject_id
    doubles = {m: sorted(p.name for p in ps) for m, ps in files.items() if len(ps) > 1}
    if doubles:
        raise SubjectError(f"{where}: more than one file for a modality: {doubles}")
    missing = [m for m in modalities if m not in files]
    if missing:
        found = sorted(p.name for ps in files.values() for p in ps)
        raise SubjectError(f"{where}: missing modality {missing}; found {found}")
    layout = _layout(subject_id, suffixes)
    group = folder.parent.name if folder.parent.name.upper() in ("HGG", "LGG") else None
    return Subject(
        id=subject_id,
        paths={m: files[m][0] for m in modalities},
        seg=files["seg"][0] if "seg" in files else None,
        layout=layout,
        label_convention="brats2023" if layout == "brats2023" else "brats2018",
        group=group,
    )


def find_subjects(
    root: str | os.PathLike,
    modalities: Sequence[str] = DEFAULT_MODALITIES,
    *,
    require_seg: bool = False,
    on_error: str = "skip",
) -> list[Subject]:
    """Discover BraTS subjects under ``root`` (searched recursively), sorted by id.

    Files are grouped by folder and by the id before the modality suffix, so both one folder per subject and
    flat folders work. Only file names are checked here; contents are validated when loading.

    Args:
        root: folder holding BraTS data (e.g. ``MICCAI_BraTS2020_TrainingData``).
        modalities: channel order, default ``("t1", "t1ce", "t2", "flair")``; any non-empty subset in any order
            (2023 names are accepted). Files of other modalities are ignored.
        require_seg: treat a subject without a segmentation as an error (for training).
        on_error: ``"skip"`` warns (naming the subject or folder and the problem) and goes on with the others;
            ``"raise"`` raises the first :class:`SubjectError`.

    Returns:
        The subjects, sorted by id.

    Raises:
        FileNotFoundError: if ``root`` is not a folder.
        SubjectError: with ``on_error="raise"``, for a subject missing a modality or segmentation, with two
            files for one modality or two subjects with one id, or a folder that cannot be listed (permission);
            always, if no subject is left: saying how many subject folders were skipped and why, or that none
            was found.

    Example:
        >>> import tempfile
        >>> from art_seg.data import make_brats_phantom
        >>> root = tempfile.mkdtemp()
        >>> _ = make_brats_phantom(root, n_subjects=2, shape=(32, 32, 24))
        >>> subjects = find_subjects(root)
        >>> subjects[0].id, list(subjects[0].paths), subjects[0].seg.name
        ('BraTS20_Training_001', ['t1', 't1ce', 't2', 'flair'], 'BraTS20_Training_001_seg.nii.gz')
    """
    check_type("root", root, (str, os.PathLike))
    modalities = normalize_modalities(modalities)
    check_type("require_seg", require_seg, bool)
    check_choice("on_error", on_error, ON_ERROR)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"root must be an existing folder, got {str(root)!r}")

    subjects: list[Subject] = []
    seen: dict[str, Subject] = {}
    skipped: list[str] = []

    def fail(message: str, what: str = "subject") -> None:
        if on_error == "raise":
            raise SubjectError(message)
        skipped.append(message)
        warnings.warn(f"skipping {what}: {message}", stacklevel=3)

    def unreadable(err: OSError) -> None:  # os.walk's onerror: a folder it cannot list
        fail(f"{err.filename}: cannot read this folder ({type(err).__name__}: {err.strerror or err})", "folder")

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        dirnames.sort()
        folder = Path(dirpath)
        groups: dict[str, dict[str, list[Path]]] = {}
        suffixes: dict[str, set[str]] = {}
        unmatched: list[str] = []
        for filename in sorted(filenames):
            if filename.startswith("."):
                continue
            match = _FILE_RE.match(filename)
            if match is None:
                if re.search(r"\.nii(\.gz)?$", filename, re.IGNORECASE):
                    unmatched.append(filename)
                continue
            sid, suffix = match.group("sid"), match.group("mod").lower()
            groups.setdefault(sid, {}).setdefault(MODALITY_ALIASES[suffix], []).append(folder / filename)
            suffixes.setdefault(sid, set()).add(suffix)
        # BraTS 2020 ships BraTS20_Training_355 with its label map misnamed (W39_1998.09.19_Segm.nii).
        segs = [f for f in unmatched if "seg" in f.lower()]
        if len(groups) == 1 and len(segs) == 1:
            (files,) = groups.values()
            if "seg" not in files:
                files["seg"] = [folder / segs[0]]
        for sid in sorted(groups):
            try:
                subject = _build_subject(folder, sid, groups[sid], suffixes[sid], modalities)
                if require_seg and subject.seg is None:
                    raise SubjectError(f"{folder / sid}: no segmentation file (require_seg=True)")
                if sid in seen:
                    raise SubjectError(
                        f"{folder / sid}: subject id {sid!r} also found in {seen[sid].folder}; ids must be unique"
                    )
            except SubjectError as err:
                fail(str(err))
                continue
            seen[sid] = subject
            subjects.append(subject)
    if not subjects and skipped:
        raise SubjectError(f"{root}: no BraTS subject left: {skipped_summary(skipped, 'subject folder')}")
    if not subjects:
        raise SubjectError(f"{root}: no BraTS subjects found (expected files such as <id>_flair.nii.gz)")
    return sorted(subjects, key=lambda s: s.id)
