"""Load a subject: validated NIfTI files -> ``(C, D, H, W)`` float32 image, class map, metadata.

The channels come from one 3D file per modality (BraTS, nnU-Net raw) or from the volumes of one 4-D file
(the Decathlon: ``Subject.volume_index`` says which volume is which modality); every file is opened and checked
once, whatever the number of channels it holds.

Memory: the files are read one at a time into one preallocated ``(C, D, H, W)`` float32 array (no float64 copy,
no nibabel cache; a 4-D file's raw array, all its volumes, is the one temporary); cropping and padding make one
more array and the full one is then freed, so the peak is about two copies of the image (checked by a tracemalloc
test). The label map is read after the image is cropped.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import nibabel as nib
import numpy as np

from art_seg._checks import check_choice, check_type
from art_seg.data.subject import ON_ERROR, Subject, SubjectError, skipped_summary
from art_seg.data.labels import LabelConvention, LabelValueError, get_convention, labels_to_classes
from art_seg.data.nifti import NiftiValidationError, open_nifti, out_of_memory_error, read_volumes_into
from art_seg.data.preprocessing import CropPad, brain_mask, crop_pad_record, zscore_

__all__ = ["LoadedSubject", "SubjectMeta", "iter_subjects", "load_subject", "load_subjects"]

AFFINE_ATOL = 1e-3  # millimetres; BraTS modalities share one affine up to float32 rounding


@dataclass
class SubjectMeta:
    """What is needed to write results back over the source scans.

    Attributes:
        subject_id: e.g. ``"BraTS20_Training_001"``.
        modalities: channel order, e.g. ``("t1", "t1ce", "t2", "flair")``.
        affine: ``(4, 4)`` voxel-to-world matrix of the source scans.
        header: NIfTI header of the first modality (copied into written files).
        crop_pad: crop box and padding from the original grid to the network grid.
        means: per-channel brain mean before z-scoring (scanner units); 0 when not normalised.
        stds: per-channel brain standard deviation before z-scoring; 1 when not normalised.
        brain_mask: ``(D, H, W)`` bool on the network grid (voxels non-zero in any modality).
        label_convention: the label convention the segmentation was read with and predictions are written in:
            a registered name (``"brats2018"``, ``"brats2023"``, ``"brats2024"``, ``"msd_brats"``) or a
            :class:`~art_seg.data.labels.LabelConvention` (a dataset's own labels).
        paths: modality (and ``"seg"``) -> source file.
    """

    subject_id: str
    modalities: tuple[str, ...]
    affine: np.ndarray
    header: nib.Nifti1Header
    crop_pad: CropPad
    means: tuple[float, ...]
    stds: tuple[float, ...]
    brain_mask: np.ndarray
    label_convention: str | LabelConvention = "brats2018"
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def original_shape(self) -> tuple[int, ...]:
        """Spatial shape of the source scans, e.g. ``(240, 240, 155)``."""
        return tuple(self.crop_pad.original_shape)

    @property
    def shape(self) -> tuple[int, ...]:
        """Spatial shape on the network grid (after crop and pad)."""
        return self.crop_pad.shape

    def with_shape(self, shape: Sequence[int]) -> SubjectMeta:
        """The metadata of the same subject padded further to ``shape`` (see ``CropPad.with_shape``)."""
        record = self.crop_pad.with_shape(shape)
        mask = record.apply(self.crop_pad.invert(self.brain_mask, fill=False))
        return replace(self, crop_pad=record, brain_mask=mask)


class LoadedSubject(NamedTuple):
    """A loaded subject: ``image, label, meta = load_subject(subject)``.

    Attributes:
        image: ``(C, D, H, W)`` float32, z-scored over the brain (unless ``normalize=False``).
        label: ``(D, H, W)`` int64 class indices ``0 .. K-1`` of ``meta.label_convention``, or ``None`` without a
            segmentation.
        meta: :class:`SubjectMeta`.
    """

    image: np.ndarray
    label: np.ndarray | None
    meta: SubjectMeta


def _check_same_grid(reference: nib.Nifti1Image, ref_path: Path, img: nib.Nifti1Image, path: Path) -> None:
    if tuple(img.shape[:3]) != tuple(reference.shape[:3]):
        raise NiftiValidationError(
            path, f"shape {tuple(img.shape[:3])} differs from {tuple(reference.shape[:3])} of {ref_path.name}"
        )
    if not np.allclose(img.affine, reference.affine, rtol=0, atol=AFFINE_ATOL):
        raise NiftiValidationError(
            path,
            f"affine differs from that of {ref_path.name} (max difference "
            f"{np.abs(img.affine - reference.affine).max():.4g} mm):\n{img.affine}\nvs\n{reference.affine}",
        )


def _read_label_raw(img: nib.Nifti1Image, path: Path) -> np.ndarray:
    """The stored label values (raw dtype; header scaling applied only if the header asks for it)."""
    try:
        raw = np.asanyarray(img.dataobj.get_unscaled() if nib.is_proxy(img.dataobj) else img.dataobj)
    except MemoryError:
        raise out_of_memory_error(path, img.shape[:3], img.get_data_dtype()) from None
    except Exception as err:
        raise NiftiValidationError(path, f"cannot read voxels ({type(err).__name__}: {err})") from err
    raw = raw.reshape(img.shape[:3])
    slope = float(getattr(img.dataobj, "slope", 1.0))
    inter = float(getattr(img.dataobj, "inter", 0.0))
    if (np.isfinite(slope) and slope not in (0.0, 1.0)) or (np.isfinite(inter) and inter != 0.0):
        raw = raw * slope + inter
    return raw


def load_subject(
    subject: Subject,
    *,
    margin: int | Sequence[int] = 4,
    multiple: int | Sequence[int] = 16,
    min_shape: int | Sequence[int] | None = None,
    crop: bool = True,
    normalize: bool = True,
    load_seg: bool = True,
    label_convention: str | LabelConvention | None = None,
    check_crc: bool = True,
) -> LoadedSubject:
    """Validate and load one subject: image, class map and the metadata to write results back.

    Every file is checked before voxels are read: exists, not empty, gzip CRC intact (``.nii.gz``), 3D (or 4-D
    with the number of volumes ``subject.volume_index`` gives), and the same spatial shape and affine as the first
    modality. Then the image is cropped to the brain (plus ``margin``),
    padded to a multiple of ``multiple`` and z-scored per modality over the brain.

    Args:
        subject: from :func:`~art_seg.data.find_subjects`.
        margin: voxels kept around the brain bounding box.
        multiple: padded spatial sizes divide by this (``2**depth`` of the UNet; 1 for no padding).
        min_shape: padded spatial sizes are at least this (e.g. the patch size).
        crop: crop to the brain (``False`` keeps the full grid, still padded).
        normalize: z-score each modality over the brain voxels (mean 0, std 1; outside 0).
        load_seg: read the segmentation when there is one.
        label_convention: override ``subject.label_convention``: a registered name (``"brats2018"``: values
            ``{0, 1, 2, 4}``; ``"brats2023"``: ``{0, 1, 2, 3}``; ``"brats2024"``: ``{0, 1, 2, 3, 4}`` with the
            resection cavity; ``"msd_brats"``) or a :class:`~art_seg.data.labels.LabelConvention`.
        check_crc: stream ``.nii.gz`` files to their end to check the gzip CRC.

    Returns:
        :class:`LoadedSubject` ``(image, label, meta)``: ``image`` ``(C, D, H, W)`` float32 (z-scored units),
        ``label`` ``(D, H, W)`` int64 classes ``0 .. K-1`` (``K`` = the convention's class count) or ``None``,
        ``meta`` a :class:`SubjectMeta`.

    Raises:
        NiftiValidationError: a file is missing, empty, truncated, corrupt, not 3D (or a 4-D file with another
            number of volumes than the dataset's channels), or on another grid (the message names the file).
            Also raised when every modality is all zero, and for running out of memory while loading (naming the
            file being read, or the subject's folder).
        LabelValueError: the segmentation holds values outside the convention (names the file and values).
        ValueError: an option is invalid.

    Example:
        >>> import tempfile
        >>> from art_seg.data import find_subjects, make_brats_phantom
        >>> root = tempfile.mkdtemp()
        >>> _ = make_brats_phantom(root, n_subjects=1, shape=(64, 64, 48))
        >>> image, label, meta = load_subject(find_subjects(root)[0], multiple=8)
        >>> image.shape, image.dtype, label.dtype, meta.original_shape
        ((4, 64, 64, 48), dtype('float32'), dtype('int64'), (64, 64, 48))
    """
    check_type("subject", subject, Subject)
    convention = subject.label_convention if label_convention is None else label_convention
    get_convention(convention, "label_convention")
    for name, flag in (("crop", crop), ("normalize", normalize), ("load_seg", load_seg), ("check_crc", check_crc)):
        check_type(name, flag, bool)
    try:
        return _load_subject(subject, margin, multiple, min_shape, crop, normalize, load_seg, convention, check_crc)
    except MemoryError as err:
        detail = f" ({err})" if str(err) else ""
        raise NiftiValidationError(subject.folder, f"out of memory loading subject {subject.id}{detail}") from None


def _load_subject(
    subject: Subject,
    margin: int | Sequence[int],
    multiple: int | Sequence[int],
    min_shape: int | Sequence[int] | None,
    crop: bool,
    normalize: bool,
    load_seg: bool,
    convention: str | LabelConvention,
    check_crc: bool,
) -> LoadedSubject:
    """:func:`load_subject` after its options are checked."""
    names = subject.modalities
    paths = [Path(subject.paths[m]) for m in names]
    index = subject.volume_index
    files: dict[Path, nib.Nifti1Image] = {}  # each file opened (and checked) once, a 4-D file too
    for name, path in zip(names, paths):
        if path not in files:
            files[path] = open_nifti(path, check_crc=check_crc, volumes=index[name][1] if name in index else None)
    images, file_paths = list(files.values()), list(files)
    for img, path in zip(images[1:], file_paths[1:]):
        _check_same_grid(images[0], file_paths[0], img, path)
    seg_img = None
    if load_seg and subject.seg is not None:
        seg_img = open_nifti(subject.seg, check_crc=check_crc)
        _check_same_grid(images[0], file_paths[0], seg_img, Path(subject.seg))

    reference = images[0]
    full = np.empty((len(names), *reference.shape[:3]), dtype=np.float32)
    for path, img in files.items():
        channels = [c for c, p in enumerate(paths) if p == path]
        volumes = [index[names[c]][0] for c in channels] if names[channels[0]] in index else None
        read_volumes_into(img, [full[c] for c in channels], path, volumes)
    del files
    mask = brain_mask(full)
    if not mask.any():
        raise NiftiValidationError(paths[0], f"every modality of subject {subject.id} is all zero (no brain voxels)")
    record = crop_pad_record(mask, margin, multiple, min_shape, crop)
    del mask
    image = record.apply(full)
    del full, images
    mask = brain_mask(image)
    means, stds = zscore_(image, mask) if normalize else ((0.0,) * len(names), (1.0,) * len(names))

    label = None
    if seg_img is not None:
        seg_path = Path(subject.seg)
        raw = _read_label_raw(seg_img, seg_path)
        label = np.zeros(record.shape, dtype=np.int64)
        cropped = raw[tuple(slice(a, b) for a, b in record.box)]
        labels_to_classes(cropped, convention, source=str(seg_path), out=record.extract(label))
        del raw, cropped

    meta = SubjectMeta(
        subject_id=subject.id,
        modalities=tuple(names),
        affine=np.array(reference.affine, dtype=np.float64),
        header=reference.header.copy(),
        crop_pad=record,
        means=means,
        stds=stds,
        brain_mask=mask,
        label_convention=convention,
        paths={**dict(zip(names, paths)), **({"seg": Path(subject.seg)} if subject.seg is not None else {})},
    )
    return LoadedSubject(image, label, meta)


def load_subjects(subjects: Iterable[Subject], *, on_error: str = "skip", **kwargs) -> list[LoadedSubject]:
    """Load many subjects; with ``on_error="skip"`` a bad subject is skipped with a warning naming it.

    Args:
        subjects: from :func:`~art_seg.data.find_subjects`.
        on_error: ``"skip"`` (warn and go on) or ``"raise"``.
        **kwargs: passed to :func:`load_subject`.

    Returns:
        The loaded subjects, in input order, without the skipped ones (an empty input gives ``[]``).

    Raises:
        NiftiValidationError, LabelValueError, OSError: with ``on_error="raise"``, the first bad subject's error.
        SubjectError: every subject was skipped (the message says how many and the first reasons).
        TypeError, ValueError: for invalid options (never skipped).
    """
    return list(iter_subjects(subjects, on_error=on_error, **kwargs))


def iter_subjects(subjects: Iterable[Subject], *, on_error: str = "skip", **kwargs) -> Iterator[LoadedSubject]:
    """:func:`load_subjects` one subject at a time (one volume in memory): yields each loaded subject in turn.

    ``on_error`` is checked now, before the first subject is read; a bad subject is skipped with a warning naming
    it (``"skip"``) or raises (``"raise"``). If every subject was skipped, the iteration ends with a
    :class:`~art_seg.data.SubjectError` saying how many and why, not with nothing.
    """
    check_choice("on_error", on_error, ON_ERROR)

    def loaded() -> Iterator[LoadedSubject]:
        skipped: list[str] = []
        n_loaded = 0
        for subject in subjects:
            try:
                item = load_subject(subject, **kwargs)
            except (NiftiValidationError, LabelValueError, OSError) as err:
                if on_error == "raise":
                    raise
                skipped.append(f"{getattr(subject, 'id', subject)}: {err}")
                warnings.warn(f"skipping subject {skipped[-1]}", stacklevel=3)
                continue
            n_loaded += 1
            yield item
        if skipped and not n_loaded:
            raise SubjectError(f"no subject could be loaded: {skipped_summary(skipped, 'subject')}")

    return loaded()
