"""Certified robustness of segmenters by randomized smoothing (SegCertify, Fischer, Baader, Vechev, ICML 2021).

Conventions:

- inputs ``x`` are ``(N, C, *spatial)``, channels first, in the estimator's units (z-scored intensities for
  art_seg's BraTS pipeline); ``sigma``, the noise standard deviation, and the certified L2 radius
  ``R = sigma * Phi^-1(tau)`` are in the same units, the L2 norm taken over the whole sample ``(C, *spatial)``;
- one :class:`SegmentationCertificate` per sample: labels ``(*spatial)`` with class indices ``0 .. K-1`` where
  certified and :data:`ABSTAIN` (-1) where not; with probability ``>= 1 - alpha`` (Holm over the sample's
  voxels) every certified voxel keeps its smoothed class for any perturbation of L2 norm ``< R``;
- :func:`certified_dice` scores abstained voxels as wrong (in no predicted region);
  :func:`certified_fraction_per_region` gives the share of each ground-truth region that is certified.

Example:
    >>> import numpy as np, torch
    >>> from art_seg.estimators import PyTorchSegmenter
    >>> from art_seg.certification import certify_segmentation
    >>> seg = PyTorchSegmenter(torch.nn.Conv3d(1, 2, 1), "ce", input_shape=(1, 4, 4, 4), nb_classes=2,
    ...                        device_type="cpu")
    >>> cert = certify_segmentation(seg, np.zeros((1, 1, 4, 4, 4), np.float32), sigma=0.25, n=100)[0]
    >>> 0.0 <= cert.certified_fraction <= 1.0
    True
"""

from __future__ import annotations

from art_seg.certification.smoothing import (
    ABSTAIN,
    SegmentationCertificate,
    certified_dice,
    certified_fraction_per_region,
    certify_over_radii,
    certify_segmentation,
)

__all__ = [
    "ABSTAIN",
    "SegmentationCertificate",
    "certified_dice",
    "certified_fraction_per_region",
    "certify_over_radii",
    "certify_segmentation",
]
