"""Write predictions, adversarial volumes and perturbations as NIfTI over the source scans.

Each writer takes an array on the network grid (as returned by ``load_subject``) and the subject's
:class:`~art_seg.data.loading.SubjectMeta`, undoes the padding and cropping (so the result has the original
shape, e.g. 240 x 240 x 155) and saves it with the source affine and header, so that it opens in 3D Slicer or
ITK-SNAP on top of the original scans. Writes are atomic (temporary file, then ``os.replace``).

Output types: label maps ``uint8`` with BraTS values; images and perturbations ``float32``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from art_seg._checks import check_choice, check_finite, check_type
from art_seg.data.labels import LabelConvention, classes_to_labels, get_convention
from art_seg.data.loading import SubjectMeta
from art_seg.data.nifti import save_nifti

__all__ = ["write_perturbation", "write_prediction", "write_volume"]

UNITS = ("original", "zscore")


def _nifti_suffix(path: Path) -> tuple[str, str]:
    """Split ``path.name`` into stem and ``.nii``/``.nii.gz`` suffix."""
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)], name[-len(suffix) :]
    raise ValueError(f"path must end in .nii or .nii.gz, got {str(path)!r}")


def write_prediction(
    path: str | os.PathLike,
    prediction: np.ndarray,
    meta: SubjectMeta,
    *,
    convention: str | LabelConvention | None = None,
) -> Path:
    """Write a segmentation over the source scan, with the label values of its convention.

    Args:
        path: output ``*.nii.gz`` (or ``*.nii``).
        prediction: on the network grid ``meta.shape``: either ``(D, H, W)`` integer class indices ``0 .. K-1``,
            or ``(K, D, H, W)`` scores (probabilities or logits), reduced by ``argmax`` over ``K``; ``K`` is the
            convention's number of classes (4, or 5 for ``"brats2024"``).
        meta: the subject's metadata from ``load_subject``.
        convention: label values to write, a registered name (``"brats2018"``: ``{0, 1, 2, 4}``;
            ``"brats2023"``: ``{0, 1, 2, 3}``; ``"brats2024"``: ``{0, 1, 2, 3, 4}``; ``"msd_brats"``: MSD Task01
            and nnU-Net BraTS values) or a :class:`~art_seg.data.labels.LabelConvention`; default
            ``meta.label_convention``, the convention the subject was loaded with, so that a prediction is
            written in its dataset's own labels.

    Returns:
        The written path: ``uint8`` ``(*meta.original_shape)`` with the source affine and header; outside the
        crop box the label is 0 (background).

    Raises:
        ValueError: wrong shape, dtype or class indices.

    Example:
        >>> image, label, meta = load_subject(subject)  # doctest: +SKIP
        >>> write_prediction("pred/BraTS20_Training_001.nii.gz", probs, meta)  # doctest: +SKIP
    """
    check_type("meta", meta, SubjectMeta)
    check_type("prediction", prediction, np.ndarray)
    spec = get_convention(meta.label_convention if convention is None else convention)
    if prediction.ndim == 4:
        k = spec.nb_classes
        if prediction.shape[0] != k:
            raise ValueError(
                f"prediction scores must be ({k}, D, H, W) for the {k} classes of {spec.name}, got shape "
                f"{prediction.shape}"
            )
        check_finite("prediction", prediction)
        prediction = prediction.argmax(axis=0)
    elif prediction.ndim != 3 or not np.issubdtype(prediction.dtype, np.integer):
        raise ValueError(
            f"prediction must be (D, H, W) integer classes or (K, D, H, W) scores, got {prediction.dtype} "
            f"{prediction.shape}"
        )
    if prediction.shape != meta.shape:
        raise ValueError(f"prediction must be on the network grid {meta.shape}, got spatial shape {prediction.shape}")
    values = classes_to_labels(meta.crop_pad.invert(prediction), spec)
    return save_nifti(path, values, meta.affine, meta.header, np.uint8)


def _to_original_grid(volume: np.ndarray, meta: SubjectMeta, units: str, add_mean: bool, name: str) -> np.ndarray:
    check_type("meta", meta, SubjectMeta)
    check_type(name, volume, np.ndarray)
    check_choice("units", units, UNITS)
    channels = len(meta.modalities)
    if volume.shape != (channels, *meta.shape):
        raise ValueError(f"{name} must be ({channels}, *{meta.shape}) on the network grid, got {volume.shape}")
    check_finite(name, volume)
    volume = volume.astype(np.float32, copy=True)
    if units == "original":
        for c, channel in enumerate(volume):
            channel *= np.float32(meta.stds[c])
            if add_mean:
                channel[meta.brain_mask] += np.float32(meta.means[c])
    return meta.crop_pad.invert(volume)


def _save_channels(path: str | os.PathLike, volume: np.ndarray, meta: SubjectMeta, per_modality: bool) -> list[Path]:
    check_type("path", path, (str, os.PathLike))
    path = Path(path)
    stem, suffix = _nifti_suffix(path)
    if per_modality:
        return [
            save_nifti(path.with_name(f"{stem}_{m}{suffix}"), volume[c], meta.affine, meta.header, np.float32)
            for c, m in enumerate(meta.modalities)
        ]
    return [save_nifti(path, np.moveaxis(volume, 0, -1), meta.affine, meta.header, np.float32)]


def write_volume(
    path: str | os.PathLike,
    volume: np.ndarray,
    meta: SubjectMeta,
    *,
    units: str = "original",
    per_modality: bool = False,
) -> list[Path]:
    """Write an image (e.g. an adversarial example) over the source scans.

    Args:
        path: ``*.nii.gz``; with ``per_modality`` one file per modality is written as ``<stem>_<modality>.nii.gz``.
        volume: ``(C, D, H, W)`` on the network grid, in z-scored units.
        meta: the subject's metadata from ``load_subject``.
        units: ``"original"`` undoes the z-score (``x * std + mean`` inside the brain, ``x * std`` outside, so a
            clean image gives back the source scan and the file shares its display window); ``"zscore"`` writes
            the network's units.
        per_modality: one 3D file per modality instead of one 4D file (modalities on the 4th axis).

    Returns:
        The written paths, float32 ``(*meta.original_shape)`` (or ``(*original_shape, C)``), source affine and
        header, zero outside the crop box.

    Raises:
        ValueError: wrong shape, non-finite values, bad ``units``.

    Example:
        >>> write_volume("adv/BraTS20_Training_001_fgsm.nii.gz", x_adv[0], meta, per_modality=True)  # doctest: +SKIP
    """
    check_type("per_modality", per_modality, bool)
    restored = _to_original_grid(volume, meta, units, add_mean=True, name="volume")
    return _save_channels(path, restored, meta, per_modality)


def write_perturbation(
    path: str | os.PathLike,
    perturbation: np.ndarray,
    meta: SubjectMeta,
    *,
    units: str = "original",
    per_modality: bool = False,
) -> list[Path]:
    """Write a perturbation ``x_adv - x`` over the source scans.

    Args:
        path: ``*.nii.gz``; with ``per_modality`` ``<stem>_<modality>.nii.gz`` per modality.
        perturbation: ``(C, D, H, W)`` on the network grid, in z-scored units.
        meta: the subject's metadata from ``load_subject``.
        units: ``"original"`` scales by each modality's brain standard deviation (scanner units, no mean
            shift); ``"zscore"`` writes the network's units (the units of ``eps``).
        per_modality: one 3D file per modality instead of one 4D file.

    Returns:
        The written paths (float32, source affine and header, zero outside the crop box).

    Raises:
        ValueError: wrong shape, non-finite values, bad ``units``.
    """
    check_type("per_modality", per_modality, bool)
    restored = _to_original_grid(perturbation, meta, units, add_mean=False, name="perturbation")
    return _save_channels(path, restored, meta, per_modality)
