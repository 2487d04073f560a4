"""ART estimators for segmentation networks, and the one step from a model's scores to a hard prediction."""

from art_seg.estimators.prediction import hard_prediction
from art_seg.estimators.pytorch_segmenter import NonFiniteLossError, PyTorchSegmenter
from art_seg.estimators.segmenter import SegmenterMixin
from art_seg.estimators.sliding_window import SlidingWindow

__all__ = ["NonFiniteLossError", "PyTorchSegmenter", "SegmenterMixin", "SlidingWindow", "hard_prediction"]
