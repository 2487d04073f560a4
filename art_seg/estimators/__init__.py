"""ART estimators for segmentation networks."""

from art_seg.estimators.pytorch_segmenter import PyTorchSegmenter
from art_seg.estimators.segmenter import SegmenterMixin
from art_seg.estimators.sliding_window import SlidingWindow

__all__ = ["PyTorchSegmenter", "SegmenterMixin", "SlidingWindow"]
