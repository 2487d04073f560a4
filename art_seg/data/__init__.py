"""The data layer: discovery (BraTS folders, nnU-Net raw datasets, Decathlon tasks), validated NIfTI loading,
preprocessing and its inverse, patches, datasets, NIfTI writing and the synthetic BraTS-like phantom (the embedded
default data).

Conventions: images are ``(C, D, H, W)`` float32 (modalities ``t1, t1ce, t2, flair`` by default; ``(D, H, W)``
are the NIfTI voxel axes ``(i, j, k)`` as stored, no reorientation), z-scored over the brain after loading; label
maps are ``(D, H, W)`` int64 class indices ``0 .. K-1``: for BraTS background, necrotic / non-enhancing core,
edema, enhancing tumour (and resection cavity, class 4, for BraTS 2024 post-treatment data). Label values
(``{0, 1, 2, 4}``, ``{0, 1, 2, 3}`` for 2023, ``{0, 1, 2, 3, 4}`` for 2024, a dataset's own) only appear in files:
see :mod:`art_seg.data.labels`.

Example:
    >>> from art_seg.data import find_subjects, load_subject, make_brats_phantom, write_prediction
    >>> make_brats_phantom("phantom", n_subjects=4, seed=0)  # doctest: +SKIP
    >>> image, label, meta = load_subject(find_subjects("phantom")[0])  # doctest: +SKIP
    >>> write_prediction("pred.nii.gz", label, meta)  # doctest: +SKIP
"""

from __future__ import annotations

from art_seg.data.dataset import IGNORE_INDEX, BraTSDataset, load_arrays, stack_subjects, train_val_split
from art_seg.data.dataset_folders import find_dataset_subjects
from art_seg.data.dataset_json import DatasetDescription, read_dataset_json
from art_seg.data.discovery import find_subjects
from art_seg.data.labels import (
    CLASS_NAMES,
    CONVENTIONS,
    LABEL_CONVENTIONS,
    NB_CLASSES,
    REGION_CLASSES,
    REGIONS,
    LabelConvention,
    LabelValueError,
    classes_to_labels,
    get_convention,
    labels_to_classes,
    region_labels,
    region_masks,
)
from art_seg.data.loading import LoadedSubject, SubjectMeta, iter_subjects, load_subject, load_subjects
from art_seg.data.nifti import NiftiValidationError, check_gzip_integrity, load_nifti, save_nifti
from art_seg.data.patches import PatchSampler, foreground_indices
from art_seg.data.preprocessing import (
    CropPad,
    bounding_box,
    brain_mask,
    crop_pad_record,
    pad_to_multiple,
    preprocess,
    restore_to_original,
    zscore_,
)
from art_seg.data.subject import DEFAULT_MODALITIES, Subject, SubjectError
from art_seg.data.synthetic import make_brats_phantom, make_phantom_volumes
from art_seg.data.writing import write_perturbation, write_prediction, write_volume
from art_seg.data.regions import REGION_PRESETS, RegionSpec, region_spec

__all__ = [
    "BraTSDataset",
    "CLASS_NAMES",
    "CONVENTIONS",
    "CropPad",
    "DEFAULT_MODALITIES",
    "DatasetDescription",
    "IGNORE_INDEX",
    "LABEL_CONVENTIONS",
    "LabelConvention",
    "LabelValueError",
    "LoadedSubject",
    "NB_CLASSES",
    "NiftiValidationError",
    "PatchSampler",
    "REGIONS",
    "REGION_CLASSES",
    "Subject",
    "SubjectError",
    "SubjectMeta",
    "bounding_box",
    "brain_mask",
    "check_gzip_integrity",
    "classes_to_labels",
    "crop_pad_record",
    "find_dataset_subjects",
    "find_subjects",
    "foreground_indices",
    "get_convention",
    "iter_subjects",
    "labels_to_classes",
    "load_arrays",
    "load_nifti",
    "load_subject",
    "load_subjects",
    "make_brats_phantom",
    "make_phantom_volumes",
    "pad_to_multiple",
    "preprocess",
    "read_dataset_json",
    "region_labels",
    "region_masks",
    "restore_to_original",
    "save_nifti",
    "stack_subjects",
    "train_val_split",
    "write_perturbation",
    "write_prediction",
    "write_volume",
    "zscore_",
    "REGION_PRESETS",
    "RegionSpec",
    "region_spec",
]
