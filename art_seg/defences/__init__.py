"""Defences as ART trainers: plain, distillation and adversarial training of segmentation networks.

- :class:`SegmentationTrainer`: the shared loop (seeded, checkpointed and resumable, validation Dice per epoch,
  early stopping, progress bar with loss and Dice), training with the segmenter's own loss;
- :class:`DistillationTrainer`: defensive distillation at temperature ``T``, voxel by voxel;
- :class:`AdversarialTrainer` and :class:`AdversarialTrainerMadryPGD`: data augmentation with adversarial
  examples made on the fly against the current model;
- :func:`save_checkpoint` / :func:`load_checkpoint`: atomic writes, ``torch.load(..., weights_only=True)`` reads,
  architecture checks; :func:`load_segmenter` rebuilds a ready segmenter from a checkpoint.
"""

from __future__ import annotations

from art_seg.defences.adversarial_training import AdversarialTrainer, AdversarialTrainerMadryPGD, adversarial_count
from art_seg.defences.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_segmenter,
    read_checkpoint,
    save_checkpoint,
    segmenter_settings,
)
from art_seg.defences.distillation import DistillationTrainer
from art_seg.defences.training import EpochRecord, NonFiniteLossError, SegmentationTrainer, copy_segmenter

__all__ = [
    "AdversarialTrainer",
    "AdversarialTrainerMadryPGD",
    "CheckpointError",
    "DistillationTrainer",
    "EpochRecord",
    "NonFiniteLossError",
    "SegmentationTrainer",
    "adversarial_count",
    "copy_segmenter",
    "load_checkpoint",
    "load_segmenter",
    "read_checkpoint",
    "save_checkpoint",
    "segmenter_settings",
]
