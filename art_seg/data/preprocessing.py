"""Preprocessing of BraTS volumes and its exact inverse.

The forward path, for a ``(C, D, H, W)`` float32 image in scanner intensity units:

1. brain mask: voxels that are non-zero in any modality (BraTS scans are skull-stripped, background 0);
2. crop to the mask's bounding box grown by ``margin`` voxels (clipped to the volume);
3. pad with zeros to a multiple of ``multiple`` (and at least ``min_shape``), split evenly before/after;
4. z-score each modality over the brain voxels (mean 0, standard deviation 1 there); outside the brain 0.

Steps 2-3 are recorded in a :class:`CropPad`; :func:`restore_to_original` (or ``CropPad.invert``) puts any
``(..., D, H, W)`` result (label map, probabilities, perturbation) back on the original grid (e.g.
240 x 240 x 155) exactly, filling outside the crop with ``fill``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from art_seg._checks import check_number, check_type

__all__ = [
    "CropPad",
    "Preprocessed",
    "bounding_box",
    "brain_mask",
    "crop_pad_record",
    "pad_to_multiple",
    "preprocess",
    "restore_to_original",
    "zscore_",
]

Box = tuple[tuple[int, int], ...]


def _as_shape(name: str, value: int | Sequence[int] | None, ndim: int, low: int = 1) -> tuple[int, ...] | None:
    """``int`` or length-``ndim`` sequence of ints >= ``low`` -> tuple; ``None`` passes through."""
    if value is None:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value),) * ndim
    check_type(name, value, (tuple, list))
    if len(value) != ndim:
        raise ValueError(f"{name} must have {ndim} entries, got {tuple(value)}")
    for v in value:
        check_number(name, v, low=low, integer=True)
    return tuple(int(v) for v in value)


def brain_mask(image: np.ndarray) -> np.ndarray:
    """Voxels non-zero in any channel.

    Args:
        image: ``(C, D, H, W)`` volume (or ``(D, H, W)``, one channel).

    Returns:
        ``(D, H, W)`` bool mask.
    """
    check_type("image", image, np.ndarray)
    if image.ndim == 3:
        return image != 0
    if image.ndim != 4:
        raise ValueError(f"image must be (C, D, H, W) or (D, H, W), got shape {image.shape}")
    mask = image[0] != 0
    for channel in image[1:]:
        mask |= channel != 0
    return mask


def bounding_box(mask: np.ndarray, margin: int | Sequence[int] = 0) -> Box:
    """Bounding box of the ``True`` voxels, grown by ``margin`` voxels per side and clipped to the volume.

    Args:
        mask: ``(D, H, W)`` bool.
        margin: voxels added on each side (int or one per axis).

    Returns:
        ``((start, stop), ...)`` per axis, ``stop`` exclusive.

    Raises:
        ValueError: if ``mask`` is empty (an all-zero image has no brain).

    Example:
        >>> m = np.zeros((10, 10, 10), bool); m[3:5, 4, 5:9] = True
        >>> bounding_box(m, margin=1)
        ((2, 6), (3, 6), (4, 10))
    """
    check_type("mask", mask, np.ndarray)
    margins = _as_shape("margin", margin, mask.ndim, low=0)
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        if hits.size == 0:
            raise ValueError("mask is empty: the image has no non-zero (brain) voxels")
        box.append((max(int(hits[0]) - margins[axis], 0), min(int(hits[-1]) + 1 + margins[axis], mask.shape[axis])))
    return tuple(box)


@dataclass(frozen=True)
class CropPad:
    """The crop box and zero padding that map the original grid to the network grid, and back.

    Attributes:
        original_shape: spatial shape of the source scan, e.g. ``(240, 240, 155)``.
        box: ``((start, stop), ...)`` crop per axis on the original grid.
        pad: ``((before, after), ...)`` zeros added per axis after cropping.
    """

    original_shape: tuple[int, ...]
    box: Box
    pad: Box

    def __post_init__(self) -> None:
        if not (len(self.original_shape) == len(self.box) == len(self.pad)):
            raise ValueError(f"original_shape, box and pad must have one entry per axis, got {self}")
        for n, (start, stop), (before, after) in zip(self.original_shape, self.box, self.pad):
            if not (0 <= start < stop <= n) or before < 0 or after < 0:
                raise ValueError(f"invalid crop/pad {self}")

    @property
    def crop_shape(self) -> tuple[int, ...]:
        """Spatial shape after cropping, before padding."""
        return tuple(stop - start for start, stop in self.box)

    @property
    def shape(self) -> tuple[int, ...]:
        """Spatial shape on the network grid (after cropping and padding)."""
        return tuple(c + b + a for c, (b, a) in zip(self.crop_shape, self.pad))

    def _inner(self) -> tuple[slice, ...]:
        return tuple(slice(b, b + c) for c, (b, _) in zip(self.crop_shape, self.pad))

    def _crop(self) -> tuple[slice, ...]:
        return tuple(slice(start, stop) for start, stop in self.box)

    def apply(self, volume: np.ndarray, fill: float = 0, dtype: np.dtype | type | None = None) -> np.ndarray:
        """Crop and pad ``volume`` ``(..., *original_shape)`` to ``(..., *shape)`` in one new array."""
        spatial = volume.shape[volume.ndim - len(self.box) :]
        if spatial != tuple(self.original_shape):
            raise ValueError(f"volume must end in the original shape {self.original_shape}, got {volume.shape}")
        lead = volume.shape[: volume.ndim - len(self.box)]
        out = np.full(lead + self.shape, fill, dtype=dtype or volume.dtype)
        out[(..., *self._inner())] = volume[(..., *self._crop())]
        return out

    def extract(self, volume: np.ndarray) -> np.ndarray:
        """View of the cropped (un-padded) region of a ``(..., *shape)`` volume on the network grid."""
        if volume.shape[volume.ndim - len(self.box) :] != self.shape:
            raise ValueError(f"volume must end in the network-grid shape {self.shape}, got {volume.shape}")
        return volume[(..., *self._inner())]

    def invert(self, volume: np.ndarray, fill: float = 0) -> np.ndarray:
        """Un-pad and un-crop ``volume`` ``(..., *shape)`` back to ``(..., *original_shape)``, ``fill`` outside."""
        inner = self.extract(volume)
        lead = volume.shape[: volume.ndim - len(self.box)]
        out = np.full(lead + tuple(self.original_shape), fill, dtype=volume.dtype)
        out[(..., *self._crop())] = inner
        return out

    def with_shape(self, shape: Sequence[int]) -> CropPad:
        """The same crop, padded to a larger ``shape`` (split evenly), e.g. to stack subjects into one array."""
        shape = tuple(int(s) for s in shape)
        if len(shape) != len(self.box) or any(s < c for s, c in zip(shape, self.crop_shape)):
            raise ValueError(f"shape must be at least the crop shape {self.crop_shape}, got {shape}")
        pad = tuple(((s - c) // 2, s - c - (s - c) // 2) for s, c in zip(shape, self.crop_shape))
        return CropPad(tuple(self.original_shape), self.box, pad)


def _target_shape(
    crop_shape: Sequence[int], multiple: Sequence[int], min_shape: Sequence[int] | None
) -> tuple[int, ...]:
    mins = min_shape or (1,) * len(crop_shape)
    return tuple(-(-max(c, m) // k) * k for c, m, k in zip(crop_shape, mins, multiple))


def crop_pad_record(
    mask: np.ndarray,
    margin: int | Sequence[int] = 4,
    multiple: int | Sequence[int] = 16,
    min_shape: int | Sequence[int] | None = None,
    crop: bool = True,
) -> CropPad:
    """Crop box around ``mask`` (plus ``margin``) and padding to a multiple of ``multiple``, at least ``min_shape``.

    Args:
        mask: ``(D, H, W)`` bool brain mask on the original grid.
        margin: voxels kept around the brain on each side.
        multiple: the padded shape divides by this (``2**depth`` of a UNet); int or per axis.
        min_shape: the padded shape is at least this (e.g. the training patch size).
        crop: ``False`` keeps the whole volume (and only pads).

    Returns:
        The :class:`CropPad` record.
    """
    ndim = mask.ndim
    multiples = _as_shape("multiple", multiple, ndim)
    mins = _as_shape("min_shape", min_shape, ndim)
    box = bounding_box(mask, margin) if crop else tuple((0, n) for n in mask.shape)
    record = CropPad(tuple(mask.shape), box, tuple((0, 0) for _ in box))
    return record.with_shape(_target_shape(record.crop_shape, multiples, mins))


def pad_to_multiple(
    volume: np.ndarray, multiple: int | Sequence[int] = 16, min_shape: int | Sequence[int] | None = None
) -> tuple[np.ndarray, CropPad]:
    """Zero-pad the last three axes of ``volume`` to a multiple of ``multiple`` (split evenly before/after).

    Args:
        volume: ``(..., D, H, W)``.
        multiple: int or one per axis.
        min_shape: pad to at least this spatial shape.

    Returns:
        ``(padded, record)``; ``record.invert(padded)`` gives ``volume`` back.

    Example:
        >>> padded, record = pad_to_multiple(np.ones((2, 5, 8, 9)), 4)
        >>> padded.shape, record.pad
        ((2, 8, 8, 12), ((1, 2), (0, 0), (1, 2)))
    """
    check_type("volume", volume, np.ndarray)
    if volume.ndim < 3:
        raise ValueError(f"volume must be (..., D, H, W), got shape {volume.shape}")
    spatial = volume.shape[-3:]
    record = CropPad(spatial, tuple((0, n) for n in spatial), ((0, 0),) * 3)
    target = _target_shape(spatial, _as_shape("multiple", multiple, 3), _as_shape("min_shape", min_shape, 3))
    record = record.with_shape(target)
    return record.apply(volume), record


def zscore_(image: np.ndarray, mask: np.ndarray | None = None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Z-score each channel of ``image`` in place over ``mask`` voxels; set voxels outside ``mask`` to 0.

    Statistics are accumulated in float64; no float64 copy of the volume is made. A channel that is constant
    over the mask is only centred (standard deviation taken as 1), with a warning.

    Args:
        image: ``(C, D, H, W)`` float32, modified in place.
        mask: ``(D, H, W)`` bool; default :func:`brain_mask` of ``image``.

    Returns:
        ``(means, stds)`` per channel, in the input's intensity units (to undo: ``x * std + mean`` in the mask).

    Raises:
        ValueError: if ``image`` is not floating ``(C, D, H, W)`` or ``mask`` is empty or of another shape.
    """
    check_type("image", image, np.ndarray)
    if image.ndim != 4 or not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"image must be floating (C, D, H, W), got {image.dtype} {image.shape}")
    if mask is None:
        mask = brain_mask(image)
    if mask.shape != image.shape[1:]:
        raise ValueError(f"mask must have shape {image.shape[1:]}, got {mask.shape}")
    count = int(np.count_nonzero(mask))
    if count == 0:
        raise ValueError("mask is empty: the image has no non-zero (brain) voxels to normalise over")
    outside = ~mask
    means, stds = [], []
    for c, channel in enumerate(image):
        values = channel[mask]
        mean = float(values.mean(dtype=np.float64))
        values -= values.dtype.type(mean)
        np.square(values, out=values)
        std = float(np.sqrt(values.sum(dtype=np.float64) / count))
        del values
        if not std > 0:
            warnings.warn(
                f"channel {c} is constant ({mean}) over the brain; centred only (std taken as 1)", stacklevel=2
            )
            std = 1.0
        channel -= channel.dtype.type(mean)
        channel *= channel.dtype.type(1.0 / std)
        channel[outside] = 0
        means.append(mean)
        stds.append(std)
    return tuple(means), tuple(stds)


class Preprocessed(NamedTuple):
    """Result of :func:`preprocess`."""

    image: np.ndarray
    label: np.ndarray | None
    crop_pad: CropPad
    means: tuple[float, ...]
    stds: tuple[float, ...]
    mask: np.ndarray


def preprocess(
    image: np.ndarray,
    label: np.ndarray | None = None,
    *,
    margin: int | Sequence[int] = 4,
    multiple: int | Sequence[int] = 16,
    min_shape: int | Sequence[int] | None = None,
    crop: bool = True,
    normalize: bool = True,
) -> Preprocessed:
    """Crop to the brain, pad to a multiple and z-score an in-memory image (and crop/pad its label map alike).

    Args:
        image: ``(C, D, H, W)`` float32 in scanner units (background 0); not modified.
        label: optional ``(D, H, W)`` integer class map, cropped/padded with 0 (background).
        margin, multiple, min_shape, crop: see :func:`crop_pad_record`.
        normalize: z-score over the brain (see :func:`zscore_`).

    Returns:
        :class:`Preprocessed` ``(image, label, crop_pad, means, stds, mask)``: ``image`` ``(C, *crop_pad.shape)``
        float32 in z-scored units, ``mask`` the brain mask on the same grid.

    Example:
        >>> out = preprocess(np.random.rand(4, 20, 20, 12).astype(np.float32), multiple=8)
        >>> out.image.shape, out.crop_pad.original_shape
        ((4, 24, 24, 16), (20, 20, 12))
    """
    check_type("image", image, np.ndarray)
    if image.ndim != 4:
        raise ValueError(f"image must be (C, D, H, W), got shape {image.shape}")
    record = crop_pad_record(brain_mask(image), margin, multiple, min_shape, crop)
    out = record.apply(image, dtype=np.float32)
    mask = brain_mask(out)
    means, stds = zscore_(out, mask) if normalize else ((0.0,) * len(out), (1.0,) * len(out))
    label_out = None
    if label is not None:
        check_type("label", label, np.ndarray)
        if label.shape != image.shape[1:]:
            raise ValueError(f"label must have shape {image.shape[1:]}, got {label.shape}")
        label_out = record.apply(label)
    return Preprocessed(out, label_out, record, means, stds, mask)


def restore_to_original(volume: np.ndarray, crop_pad: CropPad | object, fill: float = 0) -> np.ndarray:
    """Put a ``(..., D, H, W)`` result on the network grid back on the original grid (e.g. 240 x 240 x 155).

    Args:
        volume: label map, probabilities ``(K, D, H, W)``, image or perturbation on the preprocessed grid.
        crop_pad: a :class:`CropPad`, or any object with a ``crop_pad`` attribute (e.g. ``SubjectMeta``).
        fill: value outside the crop box (0: background label, zero perturbation).

    Returns:
        ``(..., *original_shape)`` array of ``volume``'s dtype.
    """
    record = crop_pad if isinstance(crop_pad, CropPad) else getattr(crop_pad, "crop_pad", None)
    if not isinstance(record, CropPad):
        raise TypeError(f"crop_pad must be a CropPad or have a .crop_pad, got {type(crop_pad).__name__}")
    check_type("volume", volume, np.ndarray)
    return record.invert(volume, fill)
