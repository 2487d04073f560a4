"""The capability every art_seg segmentation estimator declares, in the manner of ART's ``ObjectDetectorMixin``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch


class SegmenterMixin(ABC):
    """Mixin for estimators that label every voxel.

    An estimator with this mixin maps images ``(N, C, *spatial)`` to per-voxel class scores
    ``(N, K, *spatial)``; its ``predict`` returns probability maps and its ``loss_gradient`` takes voxel
    labels (class-index maps ``(N, *spatial)`` or soft maps ``(N, K, *spatial)``). Given torch tensors, both
    return tensors on the input's device (the estimator computes on its own device and copies back only when
    they differ), and ``loss_gradient`` also takes ``voxel_weights`` and ``loss`` keywords. art_seg's attacks
    name this mixin in their ``_estimator_requirements``, so ART's machinery rejects an estimator that lacks it.
    """

    @property
    @abstractmethod
    def nb_classes(self) -> int:
        """Number of output channels ``K``."""

    @property
    @abstractmethod
    def activation(self) -> str:
        """``"softmax"`` (mutually exclusive classes) or ``"sigmoid"`` (independent, possibly overlapping ones)."""

    @property
    @abstractmethod
    def dtype(self) -> torch.dtype:
        """The torch dtype inputs are cast to."""

    @abstractmethod
    def check_labels(self, y: Any, x: Any) -> str:
        """Validate labels ``y`` for images ``x (N, C, *spatial)`` and return their form, ``"index"`` or ``"soft"``."""

    @abstractmethod
    def label_tensor(self, y: Any, form: str, spatial_shape: Sequence[int]) -> torch.Tensor:
        """Labels checked by :meth:`check_labels` as the loss target on the estimator's device (a region model's
        class indices become its region masks)."""
