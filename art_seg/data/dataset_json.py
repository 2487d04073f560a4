"""Read a ``dataset.json`` (nnU-Net v2 raw datasets, Medical Segmentation Decathlon tasks) in ``art_seg``'s terms.

Two formats are read:

- nnU-Net v2 (``"channel_names"`` or the legacy ``"modality"``, with ``"file_ending"``)::

      {"channel_names": {"0": "T1", "1": "T1ce", "2": "T2", "3": "Flair"},
       "labels": {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]},
       "regions_class_order": [1, 2, 3], "numTraining": 1251, "file_ending": ".nii.gz"}

  Labels are ``name -> value`` (label-based, softmax) or ``name -> [values]`` (region-based, sigmoid: a region is
  the union of the listed values; the label files still hold single values). Images are
  ``imagesTr/<case>_0000<file_ending>`` ... one file per channel (see :mod:`art_seg.data.dataset_folders`).
- The Decathlon (and nnU-Net v1): ``{"modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
  "labels": {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"},
  "numTraining": 484, "training": [{"image": "./imagesTr/BRATS_001.nii.gz", "label": "./labelsTr/BRATS_001.nii.gz"}],
  "test": ["./imagesTs/BRATS_485.nii.gz"]}``: labels ``value -> name``, one file per case, 4-D ``(x, y, z, C)``
  when there are several channels.

Channels: names recognised as the BraTS MR series (case and punctuation ignored: ``T1``, ``T1w``, ``T1n`` -> ``t1``;
``T1ce``, ``T1c``, ``T1Gd``, ``T1-contrast``, ``T1post`` -> ``t1ce``; ``T2``, ``T2w`` -> ``t2``; ``FLAIR``,
``T2-FLAIR``, ``T2f`` -> ``flair``) become ``art_seg``'s modality names, and discovery orders them as ``art_seg``
does (``t1, t1ce, t2, flair``) whatever the file order. When any channel is not recognised (CT, ADC, ``"MRI"``) or
two share a series, the dataset's own channel names are kept, in file order.

Labels: a dataset whose labels are the BraTS tumour tissues is read into ``art_seg``'s classes (1 necrotic /
non-enhancing core, 2 edema, 3 enhancing tumour, 4 resection cavity) whatever its values: tissues are recognised
from the label names (edema, ED, SNFH; necrosis, non-enhancing, NCR, NET, NETC; enhancing, ET; resection cavity,
RC) or, region-based, from nested regions whole tumour > tumour core > enhancing tumour (the core is tumour core
minus enhancing, the edema whole tumour minus core). The values found are matched to a registered convention:
nnU-Net's BraTS conversion and MSD Task01 (1 edema, 2 necrosis, 3 enhancing) are ``"msd_brats"``, BraTS values
``"brats2018"``/``"brats2023"``/``"brats2024"``; other numberings get a :class:`~art_seg.data.labels.LabelConvention`
of their own with the BraTS classes. Any other dataset keeps its own labels as class indices: a
:class:`~art_seg.data.labels.LabelConvention` named after the dataset, values ``0 .. K-1`` (nnU-Net requires
consecutive labels), class names from the ``dataset.json``, regions its region-based labels.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from art_seg._checks import check_type
from art_seg.data.labels import CONVENTIONS, LabelConvention
from art_seg.data.subject import DEFAULT_MODALITIES, MODALITY_ALIASES, SubjectError, normalize_modalities

__all__ = ["DatasetDescription", "channel_modality", "read_dataset_json"]

#: Channel names (lower case, letters and digits only) -> ``art_seg`` modality.
CHANNEL_ALIASES: dict[str, str] = {
    **{name: m for name, m in MODALITY_ALIASES.items() if m != "seg"},
    "t1w": "t1",
    "t1native": "t1",
    "nativet1": "t1",
    "t1gd": "t1ce",
    "t1wgd": "t1ce",
    "t1wce": "t1ce",
    "t1gad": "t1ce",
    "t1post": "t1ce",
    "t1contrast": "t1ce",
    "ct1": "t1ce",
    "t2flair": "flair",
    "t2wflair": "flair",
}
NNUNET_KEYS = ("channel_names", "labels", "numTraining", "file_ending")
MSD_KEYS = ("modality", "labels", "numTraining", "training")
_TISSUE_ORDER = ("core", "edema", "enhancing", "cavity")  # art_seg class 1, 2, 3, 4


@dataclass(frozen=True)
class DatasetDescription:
    """A ``dataset.json`` read and checked, in ``art_seg``'s terms.

    Attributes:
        path: the ``dataset.json`` file.
        format: ``"nnunet"`` (one file per channel, ``<case>_XXXX<file_ending>``) or ``"msd"`` (one file per case).
        name: the dataset's ``"name"``, else its folder's name.
        channel_names: the channel names as written, in file order (channel ``k`` is ``_000k`` or volume ``k``).
        modalities: the name ``art_seg`` gives each file channel, in file order: ``t1``/``t1ce``/``t2``/``flair``
            when :attr:`brats_channels`, else ``channel_names`` (``<name>_<k>`` when names repeat).
        brats_channels: every channel is a distinct BraTS MR series.
        labels: ``((name, value or (values, ...)), ...)`` as written (MSD's ``value -> name`` turned around).
        label_convention: how label values map to ``art_seg`` classes (module docstring).
        brats_labels: the labels were recognised as the BraTS tumour tissues.
        regions_class_order: nnU-Net's ``regions_class_order`` (region-based datasets), else ``None``.
        num_training: ``numTraining``.
        file_ending: e.g. ``".nii.gz"``.
        training: Decathlon format: ``((image, label), ...)`` from ``"training"``; empty for nnU-Net.
        test: Decathlon format: images from ``"test"``; empty for nnU-Net.
    """

    path: Path
    format: str
    name: str
    channel_names: tuple[str, ...]
    modalities: tuple[str, ...]
    brats_channels: bool
    labels: tuple[tuple[str, int | tuple[int, ...]], ...]
    label_convention: str | LabelConvention
    brats_labels: bool
    regions_class_order: tuple[int, ...] | None
    num_training: int
    file_ending: str
    training: tuple[tuple[Path, Path], ...] = ()
    test: tuple[Path, ...] = ()

    @property
    def has_regions(self) -> bool:
        """Region-based labels (nnU-Net's rule: some label lists more than one value)."""
        return any(isinstance(v, tuple) and len(v) > 1 for _, v in self.labels)

    def select_channels(self, modalities: Sequence[str] | None = None) -> tuple[tuple[str, int], ...]:
        """``((modality, file channel index), ...)`` in ``art_seg``'s channel order.

        Args:
            modalities: channel order; ``None``: with :attr:`brats_channels` ``t1, t1ce, t2, flair`` (those
                present), else the file order. BraTS names (2023 names too) when :attr:`brats_channels`, else
                the dataset's channel names.

        Raises:
            SubjectError: a requested channel the dataset does not have (names the ``dataset.json``).
            ValueError: an unknown or repeated modality name.
        """
        index = {m: k for k, m in enumerate(self.modalities)}
        if modalities is None:
            order = [m for m in DEFAULT_MODALITIES if m in index] if self.brats_channels else list(self.modalities)
        elif self.brats_channels:
            order = list(normalize_modalities(modalities))
        else:
            if isinstance(modalities, str):
                raise TypeError(f"modalities must be a sequence of names, got the string {modalities!r}")
            order = list(modalities)
            if len(set(order)) != len(order) or not order:
                raise ValueError(f"modalities must be distinct channel names, got {tuple(modalities)}")
        missing = [m for m in order if m not in index]
        if missing:
            raise SubjectError(
                f"{self.path}: no channel {missing}; the channels are {list(self.modalities)} "
                f"(channel_names {list(self.channel_names)})"
            )
        return tuple((m, index[m]) for m in order)


def channel_modality(name: str) -> str | None:
    """The ``art_seg`` modality of a channel name (``"T1Gd"`` -> ``"t1ce"``), or ``None`` if not a BraTS series.

    Example:
        >>> [channel_modality(n) for n in ("FLAIR", "T1w", "t1gd", "T2w", "CT")]
        ['flair', 't1', 't1ce', 't2', None]
    """
    return CHANNEL_ALIASES.get(re.sub(r"[^a-z0-9]", "", name.lower()))


def _tissue(name: str) -> str | None:
    """BraTS tissue or region a label name stands for: WT, TC, core, edema, enhancing, cavity (or None)."""
    words = re.findall(r"[a-z]+", name.lower())
    text = " ".join(words)
    if text in ("whole tumor", "whole tumour", "wt"):
        return "WT"
    if text in ("tumor core", "tumour core", "tc"):
        return "TC"
    if "cavity" in words or text == "rc":
        return "cavity"
    if {"edema", "oedema", "ed", "snfh", "hyperintensity"} & set(words):
        return "edema"
    if re.search(r"\bnon ?enhanc|\bnecro", text) or {"ncr", "net", "netc"} & set(words):
        return "core"
    if re.search(r"\benhanc", text) or text == "et":
        return "enhancing"
    return None


def _brats_values(labels: Sequence[tuple[str, int | tuple[int, ...]]]) -> tuple[int, ...] | None:
    """The file value of each BraTS class (core, edema, enhancing[, cavity]) after background, or ``None``."""
    sets: dict[str, frozenset[int]] = {}
    for name, value in labels:
        if name == "background":
            continue
        kind = _tissue(name)
        if kind is None or kind in sets:
            return None
        sets[kind] = frozenset(value) if isinstance(value, tuple) else frozenset((value,))
    derived = dict(sets)
    if "TC" in sets and "enhancing" in sets:
        derived.setdefault("core", sets["TC"] - sets["enhancing"])
    if "WT" in sets and "TC" in sets:
        derived.setdefault("edema", sets["WT"] - sets["TC"])
    tissues = [t for t in _TISSUE_ORDER if t in derived]
    if tissues[:3] != list(_TISSUE_ORDER[:3]) or any(len(derived[t]) != 1 for t in tissues):
        return None
    values = tuple(next(iter(derived[t])) for t in tissues)
    every = {v for _, value in labels for v in (value if isinstance(value, tuple) else (value,))} - {0}
    nested = all(sets[a] <= sets[b] for a, b in (("enhancing", "TC"), ("TC", "WT")) if a in sets and b in sets)
    if len(set(values)) != len(values) or set(values) != every or not nested:
        return None
    return (0, *values)


def _convention(
    name: str, labels: Sequence[tuple[str, int | tuple[int, ...]]], where: Path
) -> tuple[str | LabelConvention, bool]:
    """``(label convention, brats_labels)`` for a dataset's labels (module docstring)."""
    brats = _brats_values(labels)
    if brats is not None:
        for registered in CONVENTIONS.values():
            if registered.values == brats:
                return registered.name, True
        template = CONVENTIONS["brats2024" if len(brats) == 5 else "brats2023"]
        return LabelConvention(name, brats, template.class_names, template.regions, f"{name} (BraTS tissues)"), True
    values = sorted({v for _, value in labels for v in (value if isinstance(value, tuple) else (value,))})
    if values != list(range(len(values))):
        raise SubjectError(
            f"{where}: label values must be consecutive integers 0, 1, 2, ... (as nnU-Net requires), got {values}"
        )
    names = {value: n for n, value in labels if not isinstance(value, tuple)}
    names.update({value[0]: n for n, value in labels if isinstance(value, tuple) and len(value) == 1})
    class_names = tuple(names.get(v, f"label_{v}") for v in values)
    regions = tuple((n, value) for n, value in labels if isinstance(value, tuple) and value != (0,))
    try:
        return LabelConvention(name, tuple(values), class_names, regions, f"{name}'s own labels"), False
    except ValueError as err:
        raise SubjectError(f"{where}: labels {dict(labels)} do not make a label convention: {err}") from err


def _integer(value: Any, what: str, where: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 0:
        raise SubjectError(f"{where}: {what} must be a non-negative integer, got {value!r}")
    return int(value)


def _channels(raw: Any, key: str, where: Path) -> tuple[str, ...]:
    if not isinstance(raw, Mapping) or not raw:
        raise SubjectError(f"{where}: {key!r} must map channel numbers to names, got {raw!r}")
    keys = sorted(raw, key=lambda k: int(k) if str(k).isdigit() else -1)
    if [str(k) for k in keys] != [str(k) for k in range(len(raw))]:
        raise SubjectError(f"{where}: {key!r} must number the channels 0, 1, 2, ... got keys {list(raw)}")
    names = tuple(raw[k] for k in keys)
    if not all(isinstance(n, str) for n in names):
        raise SubjectError(f"{where}: {key!r} names must be strings, got {names!r}")
    return names


def _labels(raw: Any, where: Path) -> tuple[tuple[str, int | tuple[int, ...]], ...]:
    """``((name, value or values), ...)`` from nnU-Net's ``name -> value`` or the Decathlon's ``value -> name``."""
    if not isinstance(raw, Mapping) or not raw:
        raise SubjectError(f"{where}: 'labels' must map names to values (or values to names), got {raw!r}")
    if all(isinstance(v, str) for v in raw.values()):  # the Decathlon: {"0": "background", ...}
        pairs = [(name, _integer(int(k) if str(k).isdigit() else k, f"label {k!r}", where)) for k, name in raw.items()]
        pairs = [(("background" if v == 0 else n), v) for n, v in pairs]
    else:
        pairs = []
        for name, value in raw.items():
            if isinstance(value, (list, tuple)):
                value = tuple(_integer(v, f"label {name!r}", where) for v in value)
                if not value:
                    raise SubjectError(f"{where}: label {name!r} lists no value")
            else:
                value = _integer(value, f"label {name!r}", where)
            pairs.append((name, value))
    labels = dict(pairs)
    if "ignore" in labels:
        raise SubjectError(f"{where}: nnU-Net's 'ignore' label (sparse annotation) is not supported by art_seg")
    if labels.get("background") != 0:
        raise SubjectError(f"{where}: 'labels' must give background the value 0, got {labels.get('background')!r}")
    return tuple(pairs)


def _listed(root: Path, entry: Any, what: str, where: Path) -> Path:
    if not isinstance(entry, str) or not entry:
        raise SubjectError(f"{where}: {what} must be a file path, got {entry!r}")
    return root / entry


def read_dataset_json(path: str | os.PathLike) -> DatasetDescription:
    """Read and check a ``dataset.json`` (nnU-Net v2 or Medical Segmentation Decathlon; module docstring).

    Args:
        path: the ``dataset.json`` file, or the folder holding it.

    Returns:
        A :class:`DatasetDescription`.

    Raises:
        SubjectError: naming the file: missing, not JSON, a required key missing (nnU-Net v2:
            ``channel_names``, ``labels``, ``numTraining``, ``file_ending``; the Decathlon: ``modality``,
            ``labels``, ``numTraining``, ``training``), a key of the wrong form, label values that are neither the
            BraTS tissues nor consecutive from 0, nnU-Net's ``ignore`` label, a ``file_ending`` other than
            ``.nii.gz``/``.nii``, nnU-Net's explicit ``"dataset"`` file lists (not supported).

    Example:
        >>> desc = read_dataset_json("Task01_BrainTumour")  # doctest: +SKIP
        >>> desc.modalities, desc.label_convention, desc.select_channels()  # doctest: +SKIP
        (('flair', 't1', 't1ce', 't2'), 'msd_brats', (('t1', 1), ('t1ce', 2), ('t2', 3), ('flair', 0)))
    """
    check_type("path", path, (str, os.PathLike))
    path = Path(path)
    if path.is_dir():
        path = path / "dataset.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SubjectError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SubjectError(f"{path}: cannot read as JSON ({type(err).__name__}: {err})") from err
    if not isinstance(data, dict):
        raise SubjectError(f"{path}: expected a JSON object, got {type(data).__name__}")
    is_nnunet = "channel_names" in data or "file_ending" in data
    required = ("labels", "numTraining", "file_ending") if is_nnunet else MSD_KEYS
    missing = [k for k in required if k not in data]
    if is_nnunet and "channel_names" not in data and "modality" not in data:
        missing.insert(0, "channel_names")
    if missing:
        if is_nnunet:
            needs = f"an nnU-Net v2 dataset.json needs {list(NNUNET_KEYS)}"
        else:
            needs = f"a Decathlon dataset.json needs {list(MSD_KEYS)} (an nnU-Net v2 one {list(NNUNET_KEYS)})"
        raise SubjectError(f"{path}: missing key(s) {missing}; {needs}")
    if is_nnunet and "dataset" in data:
        raise SubjectError(
            f"{path}: explicit 'dataset' file lists are not supported; art_seg reads imagesTr/, labelsTr/, imagesTs/"
        )
    channel_key = "channel_names" if "channel_names" in data else "modality"
    channel_names = _channels(data[channel_key], channel_key, path)
    recognised = [channel_modality(n) for n in channel_names]
    brats_channels = None not in recognised and len(set(recognised)) == len(recognised)
    unique = len(set(channel_names)) == len(channel_names)
    own = channel_names if unique else tuple(f"{n}_{k}" for k, n in enumerate(channel_names))
    name = data.get("name") if isinstance(data.get("name"), str) and data.get("name") else path.parent.name
    labels = _labels(data["labels"], path)
    convention, brats_labels = _convention(name, labels, path)
    file_ending = data.get("file_ending", ".nii.gz")
    if file_ending not in (".nii.gz", ".nii"):
        raise SubjectError(f"{path}: file_ending {file_ending!r} is not supported; art_seg reads .nii.gz and .nii")
    order = data.get("regions_class_order")
    if order is not None:
        if not isinstance(order, list) or not all(isinstance(v, int) for v in order):
            raise SubjectError(f"{path}: regions_class_order must be a list of integers, got {order!r}")
        order = tuple(order)
    training: list[tuple[Path, Path]] = []
    test: list[Path] = []
    if not is_nnunet:
        if not isinstance(data["training"], list):
            raise SubjectError(f"{path}: 'training' must be a list of {{'image': ..., 'label': ...}}")
        for k, entry in enumerate(data["training"]):
            if not isinstance(entry, Mapping) or "image" not in entry or "label" not in entry:
                raise SubjectError(f"{path}: training[{k}] must hold 'image' and 'label', got {entry!r}")
            training.append(
                (
                    _listed(path.parent, entry["image"], f"training[{k}]['image']", path),
                    _listed(path.parent, entry["label"], f"training[{k}]['label']", path),
                )
            )
        tests = data.get("test", [])
        if not isinstance(tests, list):
            raise SubjectError(f"{path}: 'test' must be a list of image paths, got {tests!r}")
        test = [_listed(path.parent, entry, f"test[{k}]", path) for k, entry in enumerate(tests)]
    return DatasetDescription(
        path=path,
        format="nnunet" if is_nnunet else "msd",
        name=name,
        channel_names=channel_names,
        modalities=tuple(recognised) if brats_channels else own,
        brats_channels=brats_channels,
        labels=labels,
        label_convention=convention,
        brats_labels=brats_labels,
        regions_class_order=order,
        num_training=_integer(data["numTraining"], "numTraining", path),
        file_ending=file_ending,
        training=tuple(training),
        test=tuple(test),
    )
