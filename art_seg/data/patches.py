"""Seeded patch sampling for training, uniform or weighted towards the tumour.

With probability ``foreground_prob`` a patch is centred (as far as the volume allows) on a voxel drawn uniformly
from the foreground (class > 0); otherwise its corner is drawn uniformly. Tumours fill a few percent of a
brain, so weighting keeps the classes balanced enough for a small batch to hold tumour. Patch sizes: 128^3 is
usual on a GPU; use 32^3 to 64^3 on a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from art_seg._checks import check_number, check_type

__all__ = ["PatchSampler", "foreground_indices"]


def foreground_indices(label: np.ndarray) -> np.ndarray:
    """Flat indices of the foreground (class > 0) voxels of a ``(D, H, W)`` label map, to cache per subject."""
    check_type("label", label, np.ndarray)
    return np.flatnonzero(label > 0)


class PatchSampler:
    """Draw ``patch_size`` boxes from ``(D, H, W)`` volumes, seeded, optionally weighted to the foreground.

    Args:
        patch_size: ``(pd, ph, pw)`` voxels (or one int for a cube).
        foreground_prob: probability in ``[0, 1]`` of centring a patch on a foreground voxel (0: uniform).
        seed: seed of the sampler's own ``numpy.random.Generator`` (used when no ``rng`` is passed).

    Example:
        >>> image, label = np.zeros((4, 64, 64, 48), np.float32), np.zeros((64, 64, 48), np.int64)
        >>> label[40:44, 10:14, 5:9] = 2
        >>> sampler = PatchSampler(32, foreground_prob=0.5, seed=0)
        >>> x_patch, y_patch = sampler.sample(image, label)
        >>> x_patch.shape, y_patch.shape
        ((4, 32, 32, 32), (32, 32, 32))
    """

    def __init__(self, patch_size: int | Sequence[int], foreground_prob: float = 0.5, seed: int | None = 0) -> None:
        if isinstance(patch_size, (int, np.integer)) and not isinstance(patch_size, bool):
            patch_size = (int(patch_size),) * 3
        check_type("patch_size", patch_size, (tuple, list))
        if len(patch_size) != 3:
            raise ValueError(f"patch_size must have 3 entries (D, H, W), got {tuple(patch_size)}")
        for size in patch_size:
            check_number("patch_size", size, low=1, integer=True)
        check_number("foreground_prob", foreground_prob, low=0.0, high=1.0)
        if seed is not None:
            check_number("seed", seed, low=0, integer=True)
        self.patch_size = tuple(int(s) for s in patch_size)
        self.foreground_prob = float(foreground_prob)
        self.rng = np.random.default_rng(seed)

    def sample_box(
        self,
        shape: Sequence[int],
        foreground: np.ndarray | None = None,
        rng: np.random.Generator | None = None,
    ) -> tuple[slice, slice, slice]:
        """Draw one patch box inside a volume of spatial ``shape``.

        Args:
            shape: ``(D, H, W)`` of the volume; each at least the patch size.
            foreground: flat foreground indices (:func:`foreground_indices`); ``None`` or empty: uniform.
            rng: generator to draw from (default: the sampler's own).

        Returns:
            Three slices selecting the patch.

        Raises:
            ValueError: if the volume is smaller than the patch (pad with ``min_shape=patch_size`` when loading).
        """
        shape = tuple(int(s) for s in shape)
        if len(shape) != 3 or any(n < p for n, p in zip(shape, self.patch_size)):
            raise ValueError(f"volume shape {shape} must be at least the patch size {self.patch_size} on each axis")
        rng = self.rng if rng is None else rng
        high = np.array(shape) - np.array(self.patch_size)
        use_fg = foreground is not None and len(foreground) > 0 and rng.random() < self.foreground_prob
        if use_fg:
            centre = np.array(np.unravel_index(foreground[rng.integers(len(foreground))], shape))
            start = np.clip(centre - np.array(self.patch_size) // 2, 0, high)
        else:
            start = np.array([rng.integers(h + 1) for h in high])
        return tuple(slice(int(s), int(s) + p) for s, p in zip(start, self.patch_size))

    def sample(
        self,
        image: np.ndarray,
        label: np.ndarray | None = None,
        rng: np.random.Generator | None = None,
        foreground: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Cut one patch from ``image`` ``(C, D, H, W)`` and ``label`` ``(D, H, W)`` (contiguous copies).

        ``foreground`` defaults to the foreground of ``label`` (pass it cached to avoid rescanning the volume).
        """
        check_type("image", image, np.ndarray)
        if image.ndim != 4:
            raise ValueError(f"image must be (C, D, H, W), got shape {image.shape}")
        if label is not None and label.shape != image.shape[1:]:
            raise ValueError(f"label must have shape {image.shape[1:]}, got {label.shape}")
        if foreground is None and label is not None and self.foreground_prob > 0:
            foreground = foreground_indices(label)
        box = self.sample_box(image.shape[1:], foreground, rng)
        image_patch = np.ascontiguousarray(image[(slice(None), *box)])
        label_patch = None if label is None else np.ascontiguousarray(label[box])
        return image_patch, label_patch

    def __repr__(self) -> str:
        return f"PatchSampler(patch_size={self.patch_size}, foreground_prob={self.foreground_prob})"
