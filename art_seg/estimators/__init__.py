"""ART estimators for segmentation networks."""

from art_seg.estimators.pytorch_segmenter import PyTorchSegmenter
from art_seg.estimators.segmenter import SegmenterMixin

__all__ = ["PyTorchSegmenter", "SegmenterMixin"]
