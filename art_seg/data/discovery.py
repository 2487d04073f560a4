"""Find BraTS subjects under a folder, whatever the challenge year's file naming (or a dataset described by a
``dataset.json``).

Supported layouts (``.nii`` or ``.nii.gz``, upper or lower case, any folder depth):

=========  ========================================================================  ================
layout     example                                                                   label convention
=========  ========================================================================  ================
brats2018  ``HGG/Brats18_2013_2_1/Brats18_2013_2_1_t1ce.nii.gz`` (2017 to 2019)      ``brats2018``
brats2020  ``BraTS20_Training_001/BraTS20_Training_001_flair.nii.gz``                ``brats2018``
brats2021  ``BraTS2021_00000/BraTS2021_00000_t2.nii.gz``                             ``brats2018``
brats2023  ``BraTS-GLI-00000-000/BraTS-GLI-00000-000-t2f.nii.gz`` (t1n t1c t2w t2f)  ``brats2023``
brats2024  ``BraTS-GLI-00005-100/BraTS-GLI-00005-100-t1c.nii.gz`` (post-treatment)   ``brats2024``
=========  ========================================================================  ================

Modalities are named ``t1``, ``t1ce``, ``t2``, ``flair`` everywhere in ``art_seg``; the 2023 names ``t1n``,
``t1c``, ``t2w``, ``t2f`` are read as those. A folder whose file names follow none of these patterns is ignored;
a subject that lacks a modality, and a folder that cannot be listed, are errors (skipped with a warning in batch
mode); a subject without a segmentation (a validation set) is kept with ``seg=None``, for prediction.

BraTS 2023 and the BraTS 2024 post-treatment glioma (GLI) data share one file naming; they differ in the labels
(2024 adds 4 = resection cavity, five classes). The 2024 GLI cases are the post-treatment time points, numbered
from 100 (``BraTS-GLI-00005-100``, ``-101``, ...), the 2023 ones ``-000``/``-001``. So the convention is chosen
per search: ``"brats2024"`` for every GLI case found when at least one of them is a post-treatment time point
(one class count for the whole data set, so that one model and one writer serve it), else ``"brats2023"``; the
other 2023-style challenges (SSA, MET, MEN, PED) keep ``"brats2023"``. ``label_convention=`` chooses it
instead, for every subject found.

A folder holding a ``dataset.json`` is an nnU-Net v2 raw dataset or a Medical Segmentation Decathlon task: see
:mod:`art_seg.data.dataset_folders` (channel names and labels come from that file).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from art_seg._checks import check_type
from art_seg.data.dataset_folders import find_dataset_subjects
from art_seg.data.labels import LabelConvention, get_convention
from art_seg.data.subject import (
    DEFAULT_MODALITIES,
    MODALITY_ALIASES,
    SkipLog,
    Subject,
    SubjectError,
    normalize_modalities,
)

__all__ = ["find_subjects"]

_FILE_RE = re.compile(r"^(?P<sid>.+?)[_-](?P<mod>t1ce|t1n|t1c|t1|t2w|t2f|t2|flair|seg)\.nii(?:\.gz)?$", re.IGNORECASE)
_LAYOUT_RES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("brats2024", re.compile(r"^BraTS-GLI-\d+-[1-9]\d\d$", re.IGNORECASE)),
    ("brats2023", re.compile(r"^BraTS-[A-Z]+-\d+-\d+$", re.IGNORECASE)),
    ("brats2021", re.compile(r"^BraTS2021_\d+$", re.IGNORECASE)),
    ("brats2020", re.compile(r"^BraTS20_(Training|Validation|Testing)_\d+$", re.IGNORECASE)),
    ("brats2018", re.compile(r"^Brats1[789]_", re.IGNORECASE)),
)
_GLI_RE = re.compile(r"^BraTS-GLI-", re.IGNORECASE)
_SUFFIXES_2023 = frozenset({"t1n", "t1c", "t2w", "t2f"})
#: The label convention of each layout (the GLI rule of the module docstring may turn 2023 into 2024).
_LAYOUT_CONVENTION = {"brats2023": "brats2023", "brats2024": "brats2024"}


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
        label_convention=_LAYOUT_CONVENTION.get(layout, "brats2018"),
        group=group,
    )


def _gli_rule(subjects: list[Subject]) -> list[Subject]:
    """Every GLI case gets ``"brats2024"`` when one of them is a post-treatment time point (module docstring)."""
    if not any(s.layout == "brats2024" for s in subjects):
        return subjects
    return [replace(s, label_convention="brats2024") if _GLI_RE.match(s.id) else s for s in subjects]


def find_subjects(
    root: str | os.PathLike,
    modalities: Sequence[str] | None = None,
    *,
    require_seg: bool = False,
    on_error: str = "skip",
    label_convention: str | LabelConvention | None = None,
) -> list[Subject]:
    """Discover BraTS subjects under ``root`` (searched recursively), sorted by id.

    Files are grouped by folder and by the id before the modality suffix, so both one folder per subject and
    flat folders work. Only file names are checked here; contents are validated when loading. A ``root`` holding
    a ``dataset.json`` is read as an nnU-Net raw dataset or a Decathlon task instead
    (:func:`~art_seg.data.dataset_folders.find_dataset_subjects`, training and test cases).

    Args:
        root: folder holding BraTS data (e.g. ``MICCAI_BraTS2020_TrainingData``), or a dataset folder with a
            ``dataset.json``.
        modalities: channel order, default ``("t1", "t1ce", "t2", "flair")`` (for a ``dataset.json`` folder:
            its channels, BraTS MR series in that order); any non-empty subset in any order (2023 names are
            accepted). Files of other modalities are ignored.
        require_seg: treat a subject without a segmentation as an error (for training).
        on_error: ``"skip"`` warns (naming the subject or folder and the problem) and goes on with the others;
            ``"raise"`` raises the first :class:`SubjectError`.
        label_convention: the label convention of every subject found (a registered name or a
            :class:`~art_seg.data.labels.LabelConvention`); default: chosen by the layout (table above; the GLI
            rule for 2023-style names), or by the ``dataset.json``.

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
    check_type("require_seg", require_seg, bool)
    log = SkipLog(on_error)
    if label_convention is not None:
        get_convention(label_convention, "label_convention")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"root must be an existing folder, got {str(root)!r}")
    if (root / "dataset.json").is_file():
        return find_dataset_subjects(
            root, modalities, require_seg=require_seg, on_error=on_error, label_convention=label_convention
        )
    modalities = normalize_modalities(DEFAULT_MODALITIES if modalities is None else modalities)

    subjects: list[Subject] = []
    seen: dict[str, Subject] = {}

    def unreadable(err: OSError) -> None:  # os.walk's onerror: a folder it cannot list
        log.fail(f"{err.filename}: cannot read this folder ({type(err).__name__}: {err.strerror or err})", "folder")

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
                log.fail(str(err))
                continue
            seen[sid] = subject
            subjects.append(subject)
    if not subjects:
        raise log.nothing_left(root, "BraTS subject", "expected files such as <id>_flair.nii.gz")
    if label_convention is None:
        subjects = _gli_rule(subjects)
    else:
        subjects = [replace(s, label_convention=label_convention) for s in subjects]
    return sorted(subjects, key=lambda s: s.id)
