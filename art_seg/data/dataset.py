"""BraTS subjects as a torch ``Dataset`` (whole volumes or patches) and as stacked numpy arrays for ART.

Splits are always by subject (:func:`train_val_split`), never by patch, so no subject's voxels are in both
training and validation.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from art_seg._checks import check_choice, check_number, check_type
from art_seg.data.subject import Subject, SubjectError, skipped_summary
from art_seg.data.labels import LabelValueError
from art_seg.data.loading import ON_ERROR, LoadedSubject, SubjectMeta, load_subject, load_subjects
from art_seg.data.nifti import NiftiValidationError
from art_seg.data.patches import PatchSampler, foreground_indices
from art_seg.data.preprocessing import _as_shape

__all__ = ["BraTSDataset", "IGNORE_INDEX", "load_arrays", "stack_subjects", "train_val_split"]

#: Label value of voxels of subjects without a segmentation (PyTorch's cross-entropy ``ignore_index``).
IGNORE_INDEX = -100
DEFAULT_FOREGROUND_PROB = 0.5


def _subject_id(item: Any) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, LoadedSubject):
        return item.meta.subject_id
    subject_id = getattr(item, "id", None)
    if not isinstance(subject_id, str):
        raise TypeError(f"subjects must be Subject, LoadedSubject or str ids, got {type(item).__name__}")
    return subject_id


def train_val_split(subjects: Sequence[Any], val_fraction: float = 0.2, seed: int = 0) -> tuple[list, list]:
    """Split subjects (not patches) into training and validation, seeded and independent of input order.

    Args:
        subjects: ``Subject`` objects, ``LoadedSubject`` tuples or id strings; ids must be unique.
        val_fraction: fraction in ``(0, 1)`` for validation; rounded, at least 1 and at most ``n - 1``.
        seed: seed of the permutation (over the subjects sorted by id).

    Returns:
        ``(train, val)``: lists of the input items, each in input order.

    Raises:
        ValueError: fewer than 2 subjects, repeated ids, or ``val_fraction`` outside ``(0, 1)``.

    Example:
        >>> train, val = train_val_split([f"s{i}" for i in range(10)], 0.2, seed=0)
        >>> len(train), len(val), set(train) & set(val)
        (8, 2, set())
    """
    check_number("val_fraction", val_fraction, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
    check_number("seed", seed, low=0, integer=True)
    items = list(subjects)
    ids = [_subject_id(item) for item in items]
    if len(items) < 2:
        raise ValueError(f"need at least 2 subjects to split, got {len(items)}")
    if len(set(ids)) != len(ids):
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"subject ids must be unique to split by subject, repeated: {repeated}")
    n_val = min(max(int(round(len(items) * val_fraction)), 1), len(items) - 1)
    order = sorted(ids)
    val_ids = {order[i] for i in np.random.default_rng(seed).permutation(len(order))[:n_val]}
    train = [item for item, i in zip(items, ids) if i not in val_ids]
    val = [item for item, i in zip(items, ids) if i in val_ids]
    return train, val


def stack_subjects(
    loaded: Sequence[LoadedSubject],
    *,
    multiple: int | Sequence[int] = 16,
    shape: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray | None, list[SubjectMeta]]:
    """Pad loaded subjects to one common shape and stack them for ART's ``fit`` / ``predict`` / ``generate``.

    Args:
        loaded: from :func:`~art_seg.data.load_subjects` (any padding; each is re-padded from its crop).
        multiple: the common shape divides by this.
        shape: a fixed common spatial shape (at least every crop); default the smallest multiple of ``multiple``
            that holds every subject.

    Returns:
        ``(x, y, metas)``: ``x`` ``(N, C, D, H, W)`` float32; ``y`` ``(N, D, H, W)`` int64 classes, or ``None``
        if any subject has no segmentation; ``metas`` updated to the common grid (for the writers).

    Raises:
        ValueError: no subjects, different channel counts, or ``shape`` smaller than a crop.
    """
    loaded = list(loaded)
    if not loaded:
        raise ValueError("no subjects to stack (all skipped?)")
    for item in loaded:
        check_type("loaded item", item, LoadedSubject)
    channels = {item.image.shape[0] for item in loaded}
    if len(channels) != 1:
        raise ValueError(f"subjects have different channel counts {sorted(channels)}")
    multiples = _as_shape("multiple", multiple, 3)
    crops = np.array([item.meta.crop_pad.crop_shape for item in loaded])
    if shape is None:
        target = tuple(int(-(-m // k) * k) for m, k in zip(crops.max(axis=0), multiples))
    else:
        target = _as_shape("shape", shape, 3)
        too_big = [item.meta.subject_id for item, c in zip(loaded, crops) if any(c > np.array(target))]
        if too_big:
            raise ValueError(f"shape {target} is smaller than the brain crop of {too_big}; increase shape")
    labelled = [item.label is not None for item in loaded]
    if any(labelled) and not all(labelled):
        warnings.warn(
            f"{labelled.count(False)} of {len(loaded)} subjects have no segmentation; returning y=None", stacklevel=2
        )
    x = np.zeros((len(loaded), channels.pop(), *target), dtype=np.float32)
    y = np.zeros((len(loaded), *target), dtype=np.int64) if all(labelled) else None
    metas = []
    for n, item in enumerate(loaded):
        meta = item.meta.with_shape(target)
        inner_new = meta.crop_pad.extract(x[n])
        inner_new[...] = item.meta.crop_pad.extract(item.image)
        if y is not None:
            meta.crop_pad.extract(y[n])[...] = item.meta.crop_pad.extract(item.label)
        metas.append(meta)
    return x, y, metas


def load_arrays(
    subjects: Sequence[Subject],
    *,
    multiple: int | Sequence[int] = 16,
    shape: Sequence[int] | None = None,
    on_error: str = "skip",
    **kwargs: Any,
) -> tuple[np.ndarray, np.ndarray | None, list[SubjectMeta]]:
    """Load subjects and stack them as numpy arrays for ART (``(N, 4, D, H, W)`` float32, ``(N, D, H, W)`` int64).

    Args:
        subjects: from :func:`~art_seg.data.find_subjects`.
        multiple: common padded shape divides by this (``2**depth`` of the UNet).
        shape: fixed common spatial shape (e.g. the estimator's ``input_shape[1:]``).
        on_error: ``"skip"`` warns and leaves a bad subject out (check ``metas`` for who is in); ``"raise"``.
        **kwargs: passed to :func:`~art_seg.data.load_subject` (``margin``, ``normalize``, ``check_crc``, ...).

    Returns:
        ``(x, y, metas)`` as :func:`stack_subjects`. Memory: about two copies of the stacked data at the peak.

    Example:
        >>> x, y, metas = load_arrays(find_subjects(root), multiple=8)  # doctest: +SKIP
        >>> estimator.fit(x, y)  # doctest: +SKIP
    """
    loaded = load_subjects(subjects, on_error=on_error, multiple=1, **kwargs)
    return stack_subjects(loaded, multiple=multiple, shape=shape)


class BraTSDataset(Dataset):
    """A torch ``Dataset`` of BraTS subjects: whole preprocessed volumes, or seeded training patches.

    Item ``i`` is ``(image, label)``: ``image`` ``(C, D, H, W)`` float32 tensor (z-scored units), ``label``
    ``(D, H, W)`` int64 tensor of classes ``0 .. 3`` (``IGNORE_INDEX`` = -100 everywhere for a subject without
    a segmentation). With ``patch_size`` the spatial size is the patch size, and patch ``i`` is drawn from
    ``numpy.random.default_rng([seed, epoch, i])``: reproducible, and the same in any ``DataLoader`` worker;
    call :meth:`set_epoch` each epoch for new patches. Whole volumes differ in size between subjects
    (use ``batch_size=1`` or :meth:`to_numpy`).

    Args:
        subjects: ``Subject`` items (loaded here) or ``LoadedSubject`` items (used as they are).
        patch_size: ``None`` for whole volumes, or ``(pd, ph, pw)`` / an int (volumes are padded to at least it).
        foreground_prob: chance a patch is centred on tumour (see :class:`PatchSampler`); default 0.5.
        samples_per_subject: items per subject per epoch (patch mode; ignored with a warning otherwise).
        seed: seed of the patch draws.
        cache: keep loaded subjects in memory (otherwise each item reloads its files).
        on_error: ``"skip"`` (warn, leave the subject out) or ``"raise"``, for subjects loaded at construction.
        **load_kwargs: passed to :func:`~art_seg.data.load_subject` (``margin``, ``multiple``, ...).

    Raises:
        ValueError: bad options; in patch mode, a subject without a segmentation; no subjects.
        SubjectError: every subject was skipped (how many, and the first reasons).

    Example:
        >>> train, val = train_val_split(find_subjects(root), 0.2, seed=0)  # doctest: +SKIP
        >>> ds = BraTSDataset(train, patch_size=64, foreground_prob=0.5, seed=0)  # doctest: +SKIP
        >>> loader = torch.utils.data.DataLoader(ds, batch_size=2, shuffle=True)  # doctest: +SKIP
    """

    def __init__(
        self,
        subjects: Sequence[Subject | LoadedSubject],
        patch_size: int | Sequence[int] | None = None,
        *,
        foreground_prob: float | None = None,
        samples_per_subject: int = 1,
        seed: int = 0,
        cache: bool = True,
        on_error: str = "skip",
        **load_kwargs: Any,
    ) -> None:
        check_number("samples_per_subject", samples_per_subject, low=1, integer=True)
        check_number("seed", seed, low=0, integer=True)
        check_type("cache", cache, bool)
        check_choice("on_error", on_error, ON_ERROR)
        if patch_size is None and (foreground_prob is not None or samples_per_subject != 1):
            warnings.warn(
                "foreground_prob and samples_per_subject only apply to patch sampling; ignored without patch_size",
                stacklevel=2,
            )
            samples_per_subject = 1
        prob = DEFAULT_FOREGROUND_PROB if foreground_prob is None else foreground_prob
        self.sampler = None if patch_size is None else PatchSampler(patch_size, prob, seed)
        if self.sampler is not None:
            load_kwargs.setdefault("min_shape", self.sampler.patch_size)
        self.load_kwargs = load_kwargs
        self.samples_per_subject = int(samples_per_subject)
        self.seed = int(seed)
        self.epoch = 0
        self.cache = cache
        items = list(subjects)
        for item in items:
            check_type("subject", item, (Subject, LoadedSubject))
        self._cached: list[LoadedSubject] | None = [] if cache else None
        self._foreground: list[np.ndarray | None] = []
        kept, skipped = [], []
        for item in items:
            if not (cache or self.sampler is not None):
                kept.append(item)
                self._foreground.append(None)
                continue
            try:
                loaded = item if isinstance(item, LoadedSubject) else load_subject(item, **load_kwargs)
            except (NiftiValidationError, LabelValueError, OSError) as err:
                if on_error == "raise":
                    raise
                skipped.append(f"{_subject_id(item)}: {err}")
                warnings.warn(f"skipping subject {skipped[-1]}", stacklevel=2)
                continue
            if self.sampler is not None and loaded.label is None:
                raise ValueError(f"patch sampling needs segmentations; no label map for {_subject_id(item)}")
            kept.append(item)
            self._foreground.append(None if self.sampler is None else foreground_indices(loaded.label))
            if self._cached is not None:
                label = None if loaded.label is None else loaded.label.astype(np.uint8)
                self._cached.append(LoadedSubject(loaded.image, label, loaded.meta))
            del loaded
        items = kept
        self.subjects = items
        if not self.subjects and skipped:
            raise SubjectError(f"no subjects to build a dataset from: {skipped_summary(skipped, 'subject')}")
        if not self.subjects:
            raise ValueError("no subjects to build a dataset from: subjects is empty")

    @property
    def subject_ids(self) -> list[str]:
        """Ids of the subjects in the dataset, in order."""
        return [_subject_id(item) for item in self.subjects]

    def set_epoch(self, epoch: int) -> None:
        """Select the patches of another epoch (patch mode)."""
        check_number("epoch", epoch, low=0, integer=True)
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.subjects) * self.samples_per_subject

    def subject(self, k: int) -> LoadedSubject:
        """Subject ``k`` loaded (label as int64)."""
        if self._cached is not None:
            image, label, meta = self._cached[k]
            return LoadedSubject(image, None if label is None else label.astype(np.int64), meta)
        item = self.subjects[k]
        return item if isinstance(item, LoadedSubject) else load_subject(item, **self.load_kwargs)

    def meta(self, k: int) -> SubjectMeta:
        """Metadata of subject ``k`` (for writing results back)."""
        return self._cached[k].meta if self._cached is not None else self.subject(k).meta

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items")
        k = index // self.samples_per_subject
        if self._cached is not None:
            image, label, _ = self._cached[k]
        else:
            image, label, _ = self.subject(k)
        if label is None:
            label = np.full(image.shape[1:], IGNORE_INDEX, dtype=np.int64)
        if self.sampler is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            image, label = self.sampler.sample(image, label, rng, foreground=self._foreground[k])
        return torch.from_numpy(np.ascontiguousarray(image)), torch.from_numpy(label.astype(np.int64))

    def to_numpy(
        self, *, multiple: int | Sequence[int] = 16, shape: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray | None, list[SubjectMeta]]:
        """All subjects as whole volumes stacked for ART (see :func:`stack_subjects`)."""
        return stack_subjects([self.subject(k) for k in range(len(self.subjects))], multiple=multiple, shape=shape)
