"""Segmentation networks: the U-Net of Cicek et al. (2016) in 3D (BraTS volumes) and 2D (slices).

Models take ``(N, C, *spatial)`` z-scored intensities and return ``(N, K, *spatial)`` raw logits.
"""

from __future__ import annotations

from art_seg.models.unet import UNet2D, UNet3D

__all__ = ["UNet3D", "UNet2D"]
