"""Defensive distillation for segmentation (Papernot et al. 2016), voxel by voxel, as an ART ``Trainer``.

ART's own ``DefensiveDistillation`` is a classifier transformer: it rejects voxel-wise softmax maps and has no
temperature. Here a teacher is trained with its loss at temperature ``T`` (logits divided by ``T``); a student is
trained on the teacher's voxel-wise soft labels ``softmax(teacher_logits / T)`` at the same temperature,
optionally mixed with the hard labels; the student is deployed at ``T = 1``, so its softmax saturates. Distillation
is known to hide gradients rather than remove vulnerability (Carlini and Wagner 2016): check a distilled model with
:func:`art_seg.evaluation.gradient_masking_check`.

Deep supervision: the teacher's soft labels come from its full-resolution head, the one it is deployed with. For a
student that returns several heads, the soft labels are a target like the hard labels: every head learns them,
resized to its size by nearest neighbour, with the student's deep-supervision weights
(:meth:`~art_seg.estimators.PyTorchSegmenter.training_loss`), so the soft and the hard term weight the heads
alike, the decoder stages get the gradient deep supervision exists for, and under DDP every head is used (with
``alpha = 0`` a soft term on the main head alone would leave the other heads untrained). The teacher, when trained
here, trains on every head at temperature ``T``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from art_seg._checks import check_number, check_type
from art_seg.defences.training import EpochRecord, SegmentationTrainer, copy_segmenter
from art_seg.estimators import PyTorchSegmenter
from art_seg.losses import per_sample_loss

__all__ = ["DistillationTrainer"]

ArrayLike = np.ndarray | torch.Tensor


class _TemperatureTrainer(SegmentationTrainer):
    """Trains a segmenter with its own loss on ``logits / T`` (the distillation teacher)."""

    def __init__(self, segmenter: PyTorchSegmenter, temperature: float, **kwargs: Any) -> None:
        super().__init__(segmenter, **kwargs)
        self.temperature = temperature
        self._description = f"DistillationTrainer (teacher, T={temperature:g})"

    def _loss(self, heads: list[torch.Tensor], labels: torch.Tensor, x_model: torch.Tensor) -> torch.Tensor:
        return super()._loss([head / self.temperature for head in heads], labels, x_model)

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "temperature": self.temperature}


class DistillationTrainer(SegmentationTrainer):
    """Defensive distillation of a segmentation network.

    ``fit`` first trains the teacher at temperature ``T`` (unless a trained one is given), then the student. The
    student's per-sample loss is

    ``(1 - alpha) * s * soft_loss(student_logits / T, p_teacher) + alpha * loss(student_logits, y)``

    with ``p_teacher = softmax(teacher_logits / T)`` (``sigmoid`` for sigmoid segmenters) on the same batch, and
    ``loss`` the student's own. For a deeply supervised student both terms are its deep-supervision loss over its
    heads (see the module docstring). The temperature acts only here, by dividing logits by ``T`` (the losses have no
    temperature of their own). The scale ``s`` is ``T**2`` where Hinton et al.'s (2015) argument holds: a soft
    cross-entropy (``soft_loss="ce"``), whose logit gradients shrink as ``1 / T**2``, mixed with a hard term
    (``alpha > 0``), so that the two terms' gradients stay on one scale at any ``T``. Otherwise ``s = 1``: with
    no hard term (``alpha = 0``, the default, as in Papernot et al.) ``T**2`` would only multiply the learning
    rate (25-fold at ``T = 5`` for SGD), and a Dice or callable soft loss does not scale as ``1 / T**2``.
    Afterwards the student, deployed at ``T = 1``, is :meth:`get_classifier` (ART's name) or :attr:`student`.

    The teacher runs on the student's preprocessed batch, so both must use the same preprocessing (the default
    teacher, a copy of the student, does).

    Args:
        student: the segmenter to distil into; it needs an optimizer.
        teacher: a segmenter of the same input shape, classes, activation and regions; ``None`` builds one as a copy of
            ``student`` (same architecture and initial weights, a fresh optimizer of the same kind).
        temperature: ``T > 0``; 10 to 100 in Papernot et al.
        alpha: weight in ``[0, 1]`` of the hard-label term.
        soft_loss: loss between the student's tempered logits and the teacher's soft maps: a name from
            :data:`art_seg.losses.LOSSES` (``"ce"`` as in the papers, or a Dice loss) or a callable; only
            ``"ce"`` gets the ``T**2`` scale, and only with ``alpha > 0``.
        train_teacher: train the teacher in ``fit``; default ``True`` when ``teacher`` is ``None``, else ``False``
            (a given teacher is taken as trained at ``T``).
        teacher_epochs: epochs of teacher training (default: those of the student).
        seed, checkpoint_dir, patience, min_delta, restore_best, training_mode, verbose: as in
            :class:`~art_seg.defences.SegmentationTrainer`; checkpoints go to ``checkpoint_dir/teacher`` and
            ``checkpoint_dir/student``.

    Example:
        >>> trainer = DistillationTrainer(segmenter, temperature=10.0, seed=0)  # doctest: +SKIP
        >>> trainer.fit(x, y, batch_size=2, nb_epochs=20)  # doctest: +SKIP
        >>> distilled = trainer.get_classifier()  # doctest: +SKIP
    """

    def __init__(
        self,
        student: PyTorchSegmenter,
        teacher: PyTorchSegmenter | None = None,
        *,
        temperature: float = 10.0,
        alpha: float = 0.0,
        soft_loss: str | Callable[..., torch.Tensor] = "ce",
        train_teacher: bool | None = None,
        teacher_epochs: int | None = None,
        seed: int = 0,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        check_number("temperature", temperature, low=0, low_inclusive=False)
        check_number("alpha", alpha, low=0, high=1)
        check_type("student", student, PyTorchSegmenter)
        per_sample_loss(soft_loss, activation=student.activation)
        if teacher is not None:
            _check_teacher(teacher, student)
        if train_teacher is not None:
            check_type("train_teacher", train_teacher, bool)
        if teacher_epochs is not None:
            check_number("teacher_epochs", teacher_epochs, low=0, integer=True)
        root = None if checkpoint_dir is None else Path(checkpoint_dir)
        super().__init__(student, seed=seed, checkpoint_dir=None if root is None else root / "student", **kwargs)
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.soft_loss = soft_loss
        self.train_teacher = teacher is None if train_teacher is None else train_teacher
        self.teacher_epochs = teacher_epochs
        self._teacher = copy_segmenter(student) if teacher is None else teacher
        self._teacher_trainer = (
            _TemperatureTrainer(
                self._teacher,
                self.temperature,
                seed=seed,
                checkpoint_dir=None if root is None else root / "teacher",
                **kwargs,
            )
            if self.train_teacher
            else None
        )

    @property
    def student(self) -> PyTorchSegmenter:
        """The distilled segmenter, deployed at ``T = 1`` (the same object as :meth:`get_classifier`)."""
        return self.segmenter

    @property
    def teacher(self) -> PyTorchSegmenter:
        """The teacher segmenter."""
        return self._teacher

    @property
    def teacher_history(self) -> list[EpochRecord]:
        """The teacher's training history (empty when the teacher was given trained)."""
        return [] if self._teacher_trainer is None else self._teacher_trainer.history

    def fit(  # type: ignore[override]
        self,
        x: ArrayLike,
        y: ArrayLike,
        batch_size: int = 2,
        nb_epochs: int = 10,
        validation_data: tuple[ArrayLike, ArrayLike] | None = None,
        resume: bool = False,
    ) -> list[EpochRecord]:
        """Train the teacher (if :attr:`train_teacher`), then the student; see :meth:`SegmentationTrainer.fit`."""
        if self._teacher_trainer is not None:
            epochs = nb_epochs if self.teacher_epochs is None else self.teacher_epochs
            self._teacher_trainer.fit(x, y, batch_size, epochs, validation_data, resume)
        return super().fit(x, y, batch_size, nb_epochs, validation_data, resume)

    def fit_generator(
        self,
        generator: Any,
        nb_epochs: int = 10,
        validation_data: tuple[ArrayLike, ArrayLike] | None = None,
        resume: bool = False,
    ) -> list[EpochRecord]:
        """As :meth:`fit`, on batches from a ``DataLoader`` or ART ``DataGenerator``."""
        if self._teacher_trainer is not None:
            epochs = nb_epochs if self.teacher_epochs is None else self.teacher_epochs
            self._teacher_trainer.fit_generator(generator, epochs, validation_data, resume)
        return super().fit_generator(generator, nb_epochs, validation_data, resume)

    def _loss(self, heads: list[torch.Tensor], labels: torch.Tensor, x_model: torch.Tensor) -> torch.Tensor:
        teacher, t = self._teacher, self.temperature
        teacher.model.eval()
        with torch.no_grad():
            teacher_logits = teacher.logits(x_model) / t  # the teacher's full-resolution head
        soft = teacher_logits.softmax(dim=1) if teacher.activation == "softmax" else teacher_logits.sigmoid()
        loss = self.student.training_loss([head / t for head in heads], soft, loss=self.soft_loss)
        if self.alpha == 0:
            return loss
        scale = t**2 if self.soft_loss == "ce" else 1.0  # Hinton et al.: soft CE next to a hard term
        return (1 - self.alpha) * scale * loss + self.alpha * super()._loss(heads, labels, x_model)

    def _config(self) -> dict[str, Any]:
        soft_loss = self.soft_loss if isinstance(self.soft_loss, str) else getattr(self.soft_loss, "__name__", "")
        return {**super()._config(), "temperature": self.temperature, "alpha": self.alpha, "soft_loss": soft_loss}


def _check_teacher(teacher: Any, student: PyTorchSegmenter) -> None:
    check_type("teacher", teacher, PyTorchSegmenter)
    for name in ("input_shape", "nb_classes", "activation", "regions", "device"):
        if getattr(teacher, name) != getattr(student, name):
            raise ValueError(
                f"teacher {name} {getattr(teacher, name)!r} differs from the student's {getattr(student, name)!r}"
            )
    if teacher.model is student.model:
        raise ValueError("teacher and student share one model; give the teacher its own (or None for a copy)")
