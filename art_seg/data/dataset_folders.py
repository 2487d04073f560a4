"""Find the cases of a dataset folder described by a ``dataset.json``: an nnU-Net v2 raw dataset or a Medical
Segmentation Decathlon task.

- nnU-Net v2 (``DatasetXXX_Name/``): ``imagesTr/<case>_0000<file_ending>`` ... ``_000K`` (one file per channel,
  numbered as in ``channel_names``), ``labelsTr/<case><file_ending>``, ``imagesTs/`` without labels (a
  ``labelsTs/`` next to it is used when present). Cases are the file names less ``_XXXX<file_ending>``, as in
  nnU-Net.
- The Decathlon (``TaskXX_Name/``): the cases listed in ``"training"`` (image and label) and ``"test"`` (image
  only); one file per case, 4-D ``(x, y, z, C)`` with the channels of ``"modality"`` on its 4th axis (3-D for one
  channel).

Each case becomes a :class:`~art_seg.data.Subject` (layout ``"nnunet"`` or ``"msd"``) that
:func:`~art_seg.data.load_subject`, :func:`~art_seg.data.iter_subjects` and :class:`~art_seg.data.BraTSDataset`
read like any other: channels in ``art_seg``'s order (``t1, t1ce, t2, flair`` when the channel names are the
BraTS MR series, else the file order) and labels in ``art_seg``'s classes, both as described in
:mod:`art_seg.data.dataset_json`; ``write_prediction`` writes predictions back in the dataset's own label values
on the case's grid.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

from art_seg._checks import check_choice, check_type
from art_seg.data.dataset_json import DatasetDescription, read_dataset_json
from art_seg.data.labels import LabelConvention, get_convention
from art_seg.data.subject import SkipLog, Subject, SubjectError

__all__ = ["SPLITS", "find_dataset_subjects"]

#: ``split`` choices: the training cases, the test cases, or both.
SPLITS = ("train", "test", "all")
_FOLDERS = {"train": (("imagesTr", "labelsTr"),), "test": (("imagesTs", "labelsTs"),)}


def _nnunet_cases(
    root: Path, desc: DatasetDescription, split: str, channels: tuple[tuple[str, int], ...], log: SkipLog
) -> list[tuple[str, dict[str, Path], Path | None]]:
    """``(case, modality -> file, label or None)`` per complete case of an nnU-Net v2 raw dataset."""
    ending = desc.file_ending
    pattern = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})" + re.escape(ending) + "$")
    n = len(desc.channel_names)
    cases = []
    for split_name in ("train", "test") if split == "all" else (split,):
        ((images, labels),) = _FOLDERS[split_name]
        folder = root / images
        if not folder.is_dir():
            if split_name == "train" and split != "all":
                raise SubjectError(f"{folder}: no such folder (an nnU-Net raw dataset keeps its cases in {images}/)")
            continue
        found: dict[str, dict[int, Path]] = {}
        for entry in sorted(os.listdir(folder)):
            if entry.startswith(".") or not entry.endswith(ending):
                continue
            match = pattern.match(entry)
            if match is None:
                log.fail(f"{folder / entry}: not named <case>_XXXX{ending} (nnU-Net's channel number)", "file", 4)
                continue
            found.setdefault(match.group("case"), {})[int(match.group("channel"))] = folder / entry
        if split_name == "train" and len(found) != desc.num_training:
            warnings.warn(
                f"{desc.path}: numTraining is {desc.num_training} but {folder} holds {len(found)} cases",
                stacklevel=3,
            )
        for case, files in found.items():
            if sorted(files) != list(range(n)):
                names = sorted(p.name for p in files.values())
                log.fail(
                    f"{folder / case}: channel files {names}, but {desc.path} declares {n} channel(s) "
                    f"{list(desc.channel_names)} (files _0000 to _{n - 1:04d})",
                    stacklevel=4,
                )
                continue
            label = root / labels / f"{case}{ending}"
            cases.append((case, {m: files[k] for m, k in channels}, label if label.is_file() else None))
    return cases


def _msd_cases(desc: DatasetDescription, split: str, log: SkipLog) -> list[tuple[str, Path, Path | None]]:
    """``(case, image, label or None)`` per listed case of a Decathlon task whose files exist."""
    listed = [(image, label) for image, label in desc.training] if split in ("train", "all") else []
    listed += [(image, None) for image in desc.test] if split in ("test", "all") else []
    cases = []
    for image, label in listed:
        case = re.sub(r"\.nii(\.gz)?$", "", image.name, flags=re.IGNORECASE)
        missing = [str(p) for p in (image, label) if p is not None and not p.is_file()]
        if missing:
            split_files = image.with_name(f"{case}_0000.nii.gz").is_file()
            hint = " (an nnU-Net v1 dataset, one file per channel: not supported)" if split_files else ""
            log.fail(f"{desc.path}: case {case}: listed file(s) not found: {missing}{hint}", stacklevel=4)
            continue
        cases.append((case, image, label))
    return cases


def find_dataset_subjects(
    root: str | os.PathLike,
    modalities: Sequence[str] | None = None,
    *,
    split: str = "all",
    require_seg: bool = False,
    on_error: str = "skip",
    label_convention: str | LabelConvention | None = None,
) -> list[Subject]:
    """Discover the cases of an nnU-Net v2 raw dataset or a Decathlon task (``root/dataset.json``), sorted by id.

    Only the ``dataset.json`` and file names are checked here; file contents (shapes, the 4-D channel count,
    label values) are validated when loading.

    Args:
        root: the dataset folder (``Dataset137_BraTS2021``, ``Task01_BrainTumour``).
        modalities: channel order; default ``t1, t1ce, t2, flair`` (those present) when the channel names are
            BraTS MR series, else the file order (see
            :meth:`~art_seg.data.dataset_json.DatasetDescription.select_channels`).
        split: ``"train"`` (training cases with labels), ``"test"`` (test cases, ``seg=None``) or ``"all"``.
        require_seg: treat a case without a label file as an error.
        on_error: ``"skip"`` warns (naming the case or file and the problem) and goes on; ``"raise"`` raises.
        label_convention: override the convention read from ``dataset.json`` (a registered name or a
            :class:`~art_seg.data.labels.LabelConvention`).

    Returns:
        The subjects (layout ``"nnunet"`` or ``"msd"``), sorted by id.

    Raises:
        SubjectError: a bad ``dataset.json`` (always; see :func:`~art_seg.data.dataset_json.read_dataset_json`),
            no ``imagesTr/`` for ``split="train"``; with ``on_error="raise"``, a case whose channel files differ
            from ``channel_names``, a file not named ``<case>_XXXX<file_ending>``, a listed file that does not
            exist, a missing label with ``require_seg``, a repeated case id; always, if no case is left.
        FileNotFoundError: ``root`` is not a folder.
        UserWarning: ``numTraining`` differs from the number of training cases found.

    Example:
        >>> subjects = find_dataset_subjects("Task01_BrainTumour", split="train")  # doctest: +SKIP
        >>> subjects[0].id, subjects[0].modalities, subjects[0].label_convention  # doctest: +SKIP
        ('BRATS_001', ('t1', 't1ce', 't2', 'flair'), 'msd_brats')
    """
    check_type("root", root, (str, os.PathLike))
    check_choice("split", split, SPLITS)
    check_type("require_seg", require_seg, bool)
    log = SkipLog(on_error)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"root must be an existing folder, got {str(root)!r}")
    desc = read_dataset_json(root / "dataset.json")
    convention = desc.label_convention if label_convention is None else label_convention
    get_convention(convention, "label_convention")
    channels = desc.select_channels(modalities)
    subjects: dict[str, Subject] = {}
    if desc.format == "nnunet":
        found = [
            (case, Subject(id=case, paths=files, seg=label, layout="nnunet", label_convention=convention))
            for case, files, label in _nnunet_cases(root, desc, split, channels, log)
        ]
    else:
        count = len(desc.channel_names)
        index = {m: (k, count) for m, k in channels} if count > 1 else {}
        found = [
            (
                case,
                Subject(
                    id=case,
                    paths={m: image for m, _ in channels},
                    seg=label,
                    layout="msd",
                    label_convention=convention,
                    volume_index=index,
                ),
            )
            for case, image, label in _msd_cases(desc, split, log)
        ]
    for case, subject in found:
        if require_seg and subject.seg is None:
            log.fail(f"{subject.folder / case}: no label file (require_seg=True)")
        elif case in subjects:
            log.fail(f"{subject.folder / case}: case id {case!r} also found in {subjects[case].folder}")
        else:
            subjects[case] = subject
    if not subjects:
        raise log.nothing_left(root, "case", f"split={split!r}; {desc.path.name} format {desc.format!r}")
    return [subjects[case] for case in sorted(subjects)]
