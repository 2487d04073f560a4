"""The training loop every art_seg trainer shares: seeded, checkpointed, resumable, validated, early-stopped.

:class:`SegmentationTrainer` is plain training of a :class:`~art_seg.estimators.PyTorchSegmenter` as an ART
``Trainer``; :class:`~art_seg.defences.DistillationTrainer` and :class:`~art_seg.defences.AdversarialTrainer`
subclass it and change only what a batch is trained on.

What is trained and scored: the model's output heads (one for a plain model; a deeply supervised model's heads as
it returns them in the mode it trains in) with the segmenter's
:meth:`~art_seg.estimators.PyTorchSegmenter.training_loss` (its deep-supervision weighting); training and
validation Dice, early stopping and the best checkpoint with the activation-aware hard prediction of the
full-resolution head (:func:`hard_dice`), per region for a region model.

Repeatability: epoch ``e`` shuffles with, and runs under a torch random state seeded from, ``(seed, e)`` alone
(the caller's global random state is left as it was), so a run resumed from the checkpoint of epoch ``e`` takes
exactly the steps an uninterrupted run takes.

Several processes (``torch.distributed``, e.g. launched by ``torchrun``; see :mod:`art_seg.distributed`): when a
process group of ``W > 1`` processes is initialised, every trainer trains data-parallel with
``DistributedDataParallel``:

- ``fit(x, y, batch_size=B)``: ``B`` is the global batch and must be a multiple of ``W``. Every process holds the
  whole ``x, y`` and draws the same permutation of epoch ``e``; global batch ``k`` is ``order[k*B:(k+1)*B]`` and
  process ``r`` trains on its ``r``-th contiguous slice of it (``B / W`` samples). The last, partial batch is cut
  as evenly as possible (:func:`~art_seg.distributed.shard_bounds`); a process whose slice is empty still runs a
  step (on one sample of the batch, with weight 0) so that it joins the gradient all-reduce. Each process's loss
  is weighted by its share of the global batch, so the averaged gradient is that of the mean loss over the
  global batch: the update equals single-process training with batch ``B`` (up to float summation order), for
  models whose samples do not interact (instance or group norm; BatchNorm sees per-process statistics unless
  converted with ``torch.nn.SyncBatchNorm.convert_sync_batchnorm``). The epoch loss and Dice in :attr:`history`
  are those of the global batches.
- ``fit_generator``: each process must be given its own shard of the data, with the same number of batches of
  the same size (e.g. a ``DataLoader`` with a ``torch.utils.data.DistributedSampler``, calling its ``set_epoch``
  yourself); the model is wrapped in DDP all the same.
- what a batch is trained on (adversarial examples, the distillation teacher's soft labels) is made by each
  process for its own slice, against the current (identical) model. Each process's torch random state is seeded
  from ``(seed, e, rank)`` (:func:`epoch_seed`), so dropout masks, random starts and the choice of samples to
  attack differ between processes (``AdversarialTrainer`` attacks ``ceil(ratio * B)`` samples of each global
  batch, split over the processes as the batch is); a distributed run is repeatable and resumable for a given
  number of processes.
- deeply supervised models: heads whose loss weight is 0 (nnU-Net's lowest-resolution head, every extra head
  with ``deep_supervision=None``) would leave their parameters without a gradient, which DDP (built without
  ``find_unused_parameters``) refuses; each step adds ``0 * sum(head)`` of every head to the objective it
  back-propagates, so those parameters get a gradient of exactly 0. The update stays that of single-process
  training, unlike nnU-Net's remedy (weight ``1e-6`` on the lowest head under DDP, which trains it a little), and
  without ``find_unused_parameters``'s search of the autograd graph at every step;
- validation Dice is computed by rank 0 and broadcast, so early stopping and best-model decisions agree on every
  process; only rank 0 writes checkpoints and shows the progress bar; ``fit`` returns on every process after
  the last checkpoint is written. ``checkpoint_dir`` must be on a file system every process sees (on one machine
  it is); on resume every process loads the same files.
- the segmenter's :attr:`~art_seg.estimators.PyTorchSegmenter.model` stays the plain module (the DDP wrapper is
  used only for the training forward and dropped at the end), so attacks and ``predict`` work as before.
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from art.defences.trainer.trainer import Trainer
from tqdm.auto import tqdm

from art_seg import distributed
from art_seg._checks import check_number, check_type
from art_seg.attacks.scores import hard_labels, one_hot, per_sample_dice
from art_seg.defences.checkpoint import (
    CheckpointError,
    apply_checkpoint,
    check_architecture,
    checked_entry,
    model_device,
    plain,
    read_checkpoint,
    save_checkpoint,
    segmenter_settings,
)
from art_seg.estimators import NonFiniteLossError, PyTorchSegmenter, hard_prediction
from art_seg.estimators.conversion import as_tensor

__all__ = [
    "EpochRecord",
    "NonFiniteLossError",
    "SegmentationTrainer",
    "copy_segmenter",
    "data_fingerprint",
    "epoch_seed",
    "hard_dice",
]

ArrayLike = np.ndarray | torch.Tensor

LAST, BEST = "last.pt", "best.pt"


@dataclass(frozen=True)
class EpochRecord:
    """One epoch of training.

    Dice is that of the model's hard prediction (:func:`~art_seg.estimators.hard_prediction`: the argmax class
    of a softmax model, each sigmoid channel on where its logit is ``> 0``), scored by :func:`hard_dice`: over the
    foreground classes of a softmax model, over every channel (region) of a sigmoid model; a class or region
    empty in both prediction and truth scores 1 (BraTS).

    Attributes:
        epoch: 1-based epoch number.
        loss: mean training loss over the epoch's batches (the deep-supervision loss of a model with heads).
        dice: mean Dice of the full-resolution head on the training batches (in training mode).
        val_dice: mean Dice on the validation data after the epoch (``None`` without validation); what early
            stopping and the best checkpoint go by.
        val_region_dice: a region model's mean validation Dice per region, by region name in channel order, e.g.
            ``{"WT": 0.91, "TC": 0.85, "ET": 0.78}`` (``val_dice`` is their mean); ``None`` for other models or
            without validation.
    """

    epoch: int
    loss: float
    dice: float
    val_dice: float | None
    val_region_dice: dict[str, float] | None = None


def epoch_seed(seed: int, epoch: int, rank: int | None = None) -> int:
    """The seed of epoch ``epoch`` (0-based) of a run seeded with ``seed``, for process ``rank`` when given.

    Rank 0's seed is the single-process one (``epoch_seed(s, e, 0) == epoch_seed(s, e)``); other ranks get their own.
    """
    entropy = [seed, epoch] if rank is None else [seed, epoch, rank]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> 1)


class SegmentationTrainer(Trainer):
    """Train a :class:`~art_seg.estimators.PyTorchSegmenter` with its loss and optimizer, as an ART ``Trainer``.

    Beyond the estimator's own ``fit``: repeatable runs from ``seed``, a progress bar showing loss and Dice,
    validation Dice after each epoch, early stopping on it, and checkpoints (model, optimizer, epoch, settings,
    history) written atomically to ``checkpoint_dir`` after every epoch (``last.pt``) and at every new best
    validation Dice (``best.pt``), from which ``fit(..., resume=True)`` carries on.

    Args:
        segmenter: the estimator to train; it needs an ``optimizer``.
        seed: seed of the run (shuffling, dropout, random starts of attacks made during training).
        checkpoint_dir: folder for checkpoints (``None``: none written, no resume).
        patience: stop after this many epochs without a validation Dice better than the best by more than
            ``min_delta`` (``None``: never stop early). Needs ``validation_data`` in ``fit``.
        min_delta: smallest improvement of validation Dice that counts.
        restore_best: at the end, load the weights of the epoch with the best validation Dice.
        training_mode: train with dropout and batch statistics on (the model is left in eval mode).
        verbose: show a progress bar (on rank 0 only when distributed).

    Under ``torch.distributed`` with several processes it trains data-parallel (DDP); see the module docstring.

    Example:
        >>> trainer = SegmentationTrainer(segmenter, seed=0, checkpoint_dir="ckpt", patience=5)  # doctest: +SKIP
        >>> history = trainer.fit(x, y, batch_size=2, nb_epochs=50, validation_data=(x_val, y_val))  # doctest: +SKIP
    """

    def __init__(
        self,
        segmenter: PyTorchSegmenter,
        *,
        seed: int = 0,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        patience: int | None = None,
        min_delta: float = 0.0,
        restore_best: bool = True,
        training_mode: bool = True,
        verbose: bool = False,
    ) -> None:
        check_type("segmenter", segmenter, PyTorchSegmenter)
        if segmenter.optimizer is None:
            raise ValueError("segmenter has no optimizer: pass a torch.optim.Optimizer to PyTorchSegmenter")
        check_number("seed", seed, low=0, integer=True)
        if checkpoint_dir is not None:
            check_type("checkpoint_dir", checkpoint_dir, (str, os.PathLike))
        if patience is not None:
            check_number("patience", patience, low=1, integer=True)
        check_number("min_delta", min_delta, low=0)
        for name, flag in (("restore_best", restore_best), ("training_mode", training_mode), ("verbose", verbose)):
            check_type(name, flag, bool)
        super().__init__(segmenter)
        self.seed = seed
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.patience = patience
        self.min_delta = float(min_delta)
        self.restore_best = restore_best
        self.training_mode = training_mode
        self.verbose = verbose
        self.history: list[EpochRecord] = []
        self.stopped_epoch: int | None = None
        self._description = type(self).__name__
        self._ddp: torch.nn.parallel.DistributedDataParallel | None = None
        try:
            self._segmenter_settings: dict[str, Any] | None = segmenter_settings(segmenter)
        except ValueError:  # a callable loss or defences: checkpoints still resume, load_segmenter cannot rebuild
            self._segmenter_settings = None

    @property
    def segmenter(self) -> PyTorchSegmenter:
        """The trained estimator (what ART's :meth:`get_classifier` returns)."""
        return self._classifier

    # ---------------------------------------------------------------------------------------------- fit
    def fit(  # type: ignore[override]
        self,
        x: ArrayLike,
        y: ArrayLike,
        batch_size: int = 2,
        nb_epochs: int = 10,
        validation_data: tuple[ArrayLike, ArrayLike] | None = None,
        resume: bool = False,
    ) -> list[EpochRecord]:
        """Train on arrays: ``x`` ``(N, C, *spatial)``, ``y`` class indices ``(N, *spatial)`` or maps.

        Args:
            x, y: training data (numpy or torch; never modified); with several processes, every process passes
                the whole data set.
            batch_size: samples per step; with ``W`` processes the global batch, a multiple of ``W``, of which
                each process trains on ``batch_size / W`` (see the module docstring).
            nb_epochs: the epoch count to reach (a resumed run continues up to it).
            validation_data: ``(x_val, y_val)`` (labels in any form ``y`` may take), scored after each epoch by
                the Dice of :meth:`~art_seg.estimators.PyTorchSegmenter.predict_labels` (see
                :class:`EpochRecord`).
            resume: continue from ``checkpoint_dir/last.pt`` if it exists (else start afresh). It must be the same
                run: the trainer's settings, the optimizer's hyper-parameters (learning rate, ...), the segmenter's
                settings (loss, ...), ``batch_size``, the training and validation data (hashed:
                :func:`data_fingerprint`) and the architecture must match the checkpoint's (``nb_epochs`` may
                grow); ``best.pt`` must be of the same run and architecture.

        Returns:
            :attr:`history`, one :class:`EpochRecord` per epoch trained so far.

        Raises:
            ValueError: ``batch_size`` is not a multiple of the number of processes, bad data or settings.
            CheckpointError: (a ``ValueError``) a resume whose run differs from the checkpoint's (naming every
                differing setting, e.g. ``optimizer.groups[0].lr: checkpoint 0.003, now 0.01``), or a damaged,
                malformed or foreign checkpoint; nothing is loaded then.
            NonFiniteLossError: the loss became NaN or Inf (naming the epoch and batch).
        """
        check_number("batch_size", batch_size, low=1, integer=True)
        processes, rank = distributed.world_size(), distributed.rank()
        if batch_size % processes:
            raise ValueError(
                f"batch_size must be a multiple of the number of processes {processes} (it is the global batch, "
                f"split evenly over them), got {batch_size}"
            )
        segmenter = self.segmenter
        segmenter._check_x(x)
        segmenter.check_labels(y, x)
        n = x.shape[0]
        data_config = {"batch_size": batch_size, "training_data": data_fingerprint(x, y)}

        def batches(epoch_generator: torch.Generator) -> Iterator[tuple[ArrayLike, ArrayLike, float, int]]:
            order = torch.randperm(n, generator=epoch_generator)  # the same on every process
            for start in range(0, n, batch_size):
                index = order[start : start + batch_size]
                size, share = len(index), 1.0
                if processes > 1:
                    low, high = distributed.shard_bounds(len(index), processes, rank)
                    share = (high - low) * processes / len(index)  # this slice's weight in the global mean
                    index = index[low:high] if high > low else index[:1]  # empty slice: a step of weight 0
                index = index.numpy() if isinstance(x, np.ndarray) else index.to(x.device)
                yield x[index], y[index], share, size

        return self._run(batches, -(-n // batch_size), nb_epochs, validation_data, resume, data_config)

    def fit_generator(
        self,
        generator: Any,
        nb_epochs: int = 10,
        validation_data: tuple[ArrayLike, ArrayLike] | None = None,
        resume: bool = False,
    ) -> list[EpochRecord]:
        """Train on batches from a torch ``DataLoader`` (or any re-iterable of ``(x, y)``) or an ART ``DataGenerator``.

        Labels are used as they come (never argmaxed as ART's classifier fast path would). A ``DataLoader``'s
        own shuffling is seeded by its generator, not by :attr:`seed`; for a repeatable, resumable run give it
        ``generator=torch.Generator().manual_seed(...)`` or shuffle through :meth:`fit`.

        With several processes, give each its own shard (e.g. a ``DistributedSampler``) yielding the same number
        of equally sized batches on every process: a batch here is one process's part of the global batch.

        A resume checks the settings as :meth:`fit` does, except the training data (a generator's data is not
        hashed): resuming on other batches is the caller's responsibility.
        """
        from art.data_generators import DataGenerator

        processes = distributed.world_size()  # every process holds an equal part of each global batch
        if isinstance(generator, DataGenerator):
            size = -(-generator.size // generator.batch_size)

            def batches(_: torch.Generator) -> Iterator[tuple[ArrayLike, ArrayLike, float, int]]:
                for _ in range(size):
                    x_batch, y_batch = generator.get_batch()
                    yield x_batch, y_batch, 1.0, len(x_batch) * processes

        elif isinstance(generator, Iterable) and not isinstance(generator, Iterator):
            size = len(generator) if hasattr(generator, "__len__") else None

            def batches(_: torch.Generator) -> Iterator[tuple[ArrayLike, ArrayLike, float, int]]:
                return ((x_batch, y_batch, 1.0, len(x_batch) * processes) for x_batch, y_batch in generator)

        else:
            raise TypeError(
                "generator must be an ART DataGenerator or a re-iterable of (x, y) batches such as a DataLoader, "
                f"got {type(generator).__name__}"
            )
        return self._run(batches, size, nb_epochs, validation_data, resume, {"batch_size": None, "training_data": None})

    # ----------------------------------------------------------------------------- what subclasses change
    def _batch(self, x: ArrayLike, y: ArrayLike, batch_size: int) -> tuple[ArrayLike, ArrayLike]:
        """The batch to train on, from this process's slice ``x, y`` of a global batch of ``batch_size`` samples
        (adversarial training replaces part of it)."""
        return x, y

    def _loss(self, heads: list[torch.Tensor], labels: torch.Tensor, x_model: torch.Tensor) -> torch.Tensor:
        """Per-sample training loss ``(N,)`` of the model's output ``heads`` (logits, the full-resolution head first;
        one for a model without deep supervision) on its input ``x_model``: the segmenter's
        :meth:`~art_seg.estimators.PyTorchSegmenter.training_loss` (its loss on every head, weighted as its
        ``deep_supervision`` says, labels resized to each head)."""
        return self.segmenter.training_loss(heads, labels)

    def _config(self) -> dict[str, Any]:
        """Settings a resumed run must share with the run that wrote the checkpoint (plain data): the trainer's,
        the optimizer's hyper-parameters and the segmenter's settings; ``fit`` adds the batch size and the data's
        fingerprints, and the checkpoint itself holds the architecture."""
        segmenter = self.segmenter
        optimizer = segmenter.optimizer
        settings = self._segmenter_settings
        if settings is None:  # a callable loss or defences: at least the loss's name
            settings = {"loss": getattr(segmenter.loss, "__name__", type(segmenter.loss).__name__)}
        return {
            "trainer": type(self).__name__,
            "seed": self.seed,
            "optimizer": {
                "class": type(optimizer).__name__,
                "groups": [{k: plain(v) for k, v in g.items() if k != "params"} for g in optimizer.param_groups],
            },
            "segmenter": settings,
        }

    # -------------------------------------------------------------------------------------- the loop
    def _run(
        self,
        batches: Callable[[torch.Generator], Iterable[tuple[ArrayLike, ArrayLike, float, int]]],
        batches_per_epoch: int | None,
        nb_epochs: int,
        validation_data: tuple[ArrayLike, ArrayLike] | None,
        resume: bool,
        data_config: dict[str, Any],
    ) -> list[EpochRecord]:
        check_number("nb_epochs", nb_epochs, low=0, integer=True)
        check_type("resume", resume, bool)
        if resume and self.checkpoint_dir is None:
            raise ValueError("resume=True needs a checkpoint_dir to resume from")
        if self.patience is not None and validation_data is None:
            raise ValueError(f"patience={self.patience} needs validation_data to stop on")
        validation = None if validation_data is None else self._validation_tensors(validation_data)
        segmenter, model = self.segmenter, self.segmenter.model
        config = {
            **self._config(),
            **data_config,
            "validation_data": None if validation_data is None else data_fingerprint(*validation_data),
        }

        processes, rank = distributed.world_size(), distributed.rank()
        best = _Best(self.min_delta)
        start_epoch, self.history, self.stopped_epoch = 0, [], None
        # rank 0 decides, so that every process resumes or none does
        if distributed.broadcast_object(resume and (self.checkpoint_dir / LAST).is_file()):
            # every check before anything is loaded: the run's settings, the trainer state, best.pt
            path = self.checkpoint_dir / LAST
            payload = read_checkpoint(path, map_location=model_device(model))
            _check_same_config(payload["config"], config, path)
            check_architecture(payload, model, path)
            history, stopped_epoch, summary = _trainer_state(payload, path)
            best.restore(summary, self.checkpoint_dir / BEST, model, config)
            apply_checkpoint(payload, path, model, segmenter.optimizer)
            start_epoch, self.history, self.stopped_epoch = payload["epoch"], history, stopped_epoch

        total = None if batches_per_epoch is None else batches_per_epoch * max(nb_epochs - start_epoch, 0)
        progress = tqdm(total=total, desc=self._description, disable=not self.verbose or rank != 0)
        devices = [segmenter.device] if segmenter.device.type == "cuda" else []
        of = "" if batches_per_epoch is None else f" of {batches_per_epoch}"
        self._ddp = _data_parallel(model, segmenter.device) if processes > 1 else None
        try:
            for epoch in range(start_epoch, nb_epochs):
                if self.stopped_epoch is not None:
                    break
                with torch.random.fork_rng(devices=devices):
                    torch.manual_seed(epoch_seed(self.seed, epoch, rank if processes > 1 else None))
                    shuffle = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
                    losses, dices, shares = [], [], []
                    for batch, (x_batch, y_batch, share, size) in enumerate(batches(shuffle), 1):
                        where = f"epoch {epoch + 1}, batch {batch}{of}"
                        loss, dice = self._step(x_batch, y_batch, share, size, where)
                        losses.append(loss)
                        dices.append(dice)
                        shares.append(share)
                        progress.update(1)
                        progress.set_postfix(epoch=epoch + 1, loss=f"{loss:.4f}", dice=f"{dice:.3f}")
                model.eval()
                val_dice, val_region_dice = None, None
                if validation is not None:  # rank 0's, so that every process takes the same decisions
                    scores = self._validation_dice(*validation) if rank == 0 else None
                    val_dice, val_region_dice = distributed.broadcast_object(scores)
                record = EpochRecord(
                    epoch + 1, *_epoch_means(losses, dices, shares, processes), val_dice, val_region_dice
                )
                self.history.append(record)
                if val_dice is not None:
                    progress.set_postfix(epoch=epoch + 1, loss=f"{record.loss:.4f}", val_dice=f"{val_dice:.3f}")
                    if best.update(val_dice, epoch + 1, model):
                        self._save(BEST, epoch + 1, config, best)
                    elif self.patience is not None and epoch + 1 - best.epoch >= self.patience:
                        self.stopped_epoch = epoch + 1
                self._save(LAST, epoch + 1, config, best)
        finally:
            self._ddp = None  # back to the plain module (its DDP hooks go with the wrapper)
            model.eval()  # also when a step fails
            progress.close()
        distributed.barrier()  # every process returns after rank 0 wrote the last checkpoint
        if self.restore_best and best.state is not None:
            model.load_state_dict(best.state)
        model.eval()
        return self.history

    def _step(
        self, x_batch: ArrayLike, y_batch: ArrayLike, share: float, batch_size: int, where: str
    ) -> tuple[float, float]:
        """One optimizer step on this process's slice ``x_batch, y_batch`` of a global batch of ``batch_size``
        samples, of weight ``share``; ``where`` (e.g. ``"epoch 2, batch 5 of 8"``) names it in errors.

        The model's heads are trained with :meth:`_loss` (the deep-supervision loss); the training Dice is that of
        the full-resolution head. Returns the batch's mean loss and training Dice (unweighted).

        Raises:
            NonFiniteLossError: the loss is NaN or Inf (on any process: every process raises), before the step,
                so the model keeps the weights it had before this batch.
        """
        segmenter, model = self.segmenter, self.segmenter.model
        if share > 0:  # a weight-0 step only joins the gradient all-reduce: no need to attack its stand-in sample
            x_batch, y_batch = self._batch(x_batch, y_batch, batch_size)
        x_model, labels = segmenter.training_batch(x_batch, y_batch)
        model.train(mode=self.training_mode)
        heads = segmenter.training_heads(x_model, module=self._ddp)
        loss = self._loss(heads, labels, x_model).mean()
        self._check_finite(loss.detach(), where)
        objective = loss if share == 1.0 else loss * share
        if self._ddp is not None and len(heads) > 1:  # weight-0 heads get a zero gradient (module docstring)
            objective = objective + sum(head.sum() for head in heads) * 0.0
        segmenter.optimizer.zero_grad(set_to_none=True)
        objective.backward()
        segmenter.optimizer.step()
        prediction = hard_prediction(heads[0].detach(), segmenter.activation)
        dice = hard_dice(prediction, labels, segmenter.activation, segmenter.nb_classes).mean()
        return float(loss.detach()), float(dice)

    def _check_finite(self, loss: torch.Tensor, where: str) -> None:
        """Raise :class:`NonFiniteLossError` on every process if the loss of any process is NaN or Inf."""
        finite = bool(torch.isfinite(loss))
        processes = distributed.world_size()
        failed = int(distributed.all_sum([not finite])[0]) if processes > 1 else int(not finite)
        if failed:
            value = f"{float(loss)}" if not finite else "finite on this process"
            on = f" on {failed} of {processes} processes" if processes > 1 else ""
            raise NonFiniteLossError(
                f"{self._description}: the training loss is not finite ({value}) at {where}{on}; stopped before "
                f"the step. Check the model's weights and the inputs for NaN/Inf, or lower the learning rate"
            )

    def _validation_tensors(self, validation_data: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError(f"validation_data must be a pair (x_val, y_val), got {type(validation_data).__name__}")
        x_val, y_val = validation_data
        segmenter = self.segmenter
        segmenter._check_x(x_val)
        form = segmenter.check_labels(y_val, x_val)
        x_t = as_tensor(x_val, device=segmenter.device, dtype=segmenter.dtype)
        return x_t, segmenter.label_tensor(y_val, form, tuple(x_t.shape[2:]))

    def _validation_dice(self, x_val: torch.Tensor, labels: torch.Tensor) -> tuple[float, dict[str, float] | None]:
        """Mean Dice of the segmenter's hard prediction on the validation data, and per region for a region model
        (see :class:`EpochRecord`)."""
        segmenter = self.segmenter
        prediction = segmenter.predict_labels(x_val, batch_size=2)
        dice = hard_dice(prediction, labels, segmenter.activation, segmenter.nb_classes)
        regions = segmenter.regions
        per_region = None if regions is None else dict(zip(regions.names, dice.mean(dim=0).tolist()))
        return float(dice.mean()), per_region

    def _save(self, name: str, epoch: int, config: dict[str, Any], best: _Best) -> None:
        if self.checkpoint_dir is None or distributed.rank() != 0:
            return
        state = {
            "history": [asdict(record) for record in self.history],
            "stopped_epoch": self.stopped_epoch,
            "best": best.summary(),
        }
        segmenter = self.segmenter
        save_checkpoint(
            self.checkpoint_dir / name,
            model=segmenter.model,
            optimizer=segmenter.optimizer,
            epoch=epoch,
            config=config,
            state=state,
            segmenter=self._segmenter_settings,
        )


def hard_dice(prediction: torch.Tensor, labels: torch.Tensor, activation: str, nb_classes: int) -> torch.Tensor:
    """Dice of a hard prediction per sample and scored channel: what the trainers report and stop on.

    Args:
        prediction: from :func:`~art_seg.estimators.hard_prediction` or
            :meth:`~art_seg.estimators.PyTorchSegmenter.predict_labels`: ``int64 (N, *spatial)`` class indices
            (``"softmax"``) or ``bool (N, K, *spatial)`` channel masks (``"sigmoid"``).
        labels: the truth on the same device, as :meth:`~art_seg.estimators.PyTorchSegmenter.label_tensor` gives
            it: class indices ``int64 (N, *spatial)`` or maps ``(N, K, *spatial)``, taken hard (the argmax class
            for ``"softmax"``, ``> 0.5`` for ``"sigmoid"``).
        activation: ``"softmax"`` or ``"sigmoid"``.
        nb_classes: the model's channels ``K``.

    Returns:
        ``float64 (N, K')``: for ``"softmax"`` the foreground classes ``1..K-1``; for ``"sigmoid"`` every channel
        (a region model's regions, in channel order). A channel empty in both prediction and truth scores 1, one
        empty in the truth only 0 (BraTS).

    Example:
        >>> prediction = torch.tensor([[[True, True], [False, False]]])  # (1, 2 regions, 2 voxels)
        >>> truth = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
        >>> hard_dice(prediction, truth, "sigmoid", 2).tolist()
        [[0.6666666666666666, 1.0]]
    """
    if activation == "softmax":
        if labels.is_floating_point():
            truth = hard_labels(labels, activation, from_logits=False)
        else:
            truth = one_hot(labels, nb_classes)
        predicted, truth = one_hot(prediction, nb_classes)[:, 1:], truth[:, 1:]
    else:
        predicted, truth = prediction, labels > 0.5
    n, k = predicted.shape[:2]
    return per_sample_dice(predicted.flatten(0, 1).unsqueeze(1), truth.flatten(0, 1).unsqueeze(1)).view(n, k)


def _data_parallel(model: torch.nn.Module, device: torch.device) -> torch.nn.parallel.DistributedDataParallel:
    """``model`` wrapped for data-parallel training (DDP broadcasts rank 0's weights to every process)."""
    if device.type != "cuda":
        return torch.nn.parallel.DistributedDataParallel(model)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=[index])


def _epoch_means(losses: list[float], dices: list[float], shares: list[float], processes: int) -> tuple[float, float]:
    """Mean loss and Dice of an epoch's global batches: each batch's is the share-weighted mean over processes."""
    if processes == 1:
        return float(np.mean(losses)), float(np.mean(dices))
    loss, dice, count = distributed.all_sum(
        [sum(s * v for s, v in zip(shares, losses)), sum(s * v for s, v in zip(shares, dices)), len(losses)]
    )
    return loss / count, dice / count


class _Best:
    """The best validation Dice so far, its epoch and (a CPU copy of) its weights."""

    def __init__(self, min_delta: float) -> None:
        self.min_delta = min_delta
        self.score: float | None = None
        self.epoch = 0
        self.state: dict[str, torch.Tensor] | None = None

    def update(self, score: float, epoch: int, model: torch.nn.Module) -> bool:
        if self.score is not None and score <= self.score + self.min_delta:
            return False
        self.score, self.epoch = score, epoch
        self.state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        return True

    def summary(self) -> dict[str, Any]:
        return {"score": self.score, "epoch": self.epoch}

    def restore(self, summary: dict[str, Any], path: Path, model: torch.nn.Module, config: dict[str, Any]) -> None:
        """Take the best score and epoch of a resumed run, and the weights of ``path`` (its ``best.pt``), which
        must hold ``model``'s architecture and come from a run of the same ``config``."""
        self.score, self.epoch = summary["score"], summary["epoch"]
        if self.score is not None and path.is_file():
            payload = read_checkpoint(path)
            _check_same_config(payload["config"], config, path)
            check_architecture(payload, model, path)
            self.state = payload["model"]


#: the fields of a stored :class:`EpochRecord` and their types
_RECORD_FIELDS: dict[str, tuple[type, ...]] = {
    "epoch": (int,),
    "loss": (int, float),
    "dice": (int, float),
    "val_dice": (int, float, type(None)),
    "val_region_dice": (dict, type(None)),
}


def _trainer_state(payload: dict[str, Any], path: Path) -> tuple[list[EpochRecord], int | None, dict[str, Any]]:
    """``(history, stopped_epoch, best summary)`` of a checkpoint's trainer state, checked entry by entry.

    Raises:
        CheckpointError: a missing or mistyped entry, naming the file and the entry.
    """
    state = payload["state"]
    history = []
    for i, record in enumerate(checked_entry(state, "history", list, path, "state.")):
        where = f"state.history[{i}]"
        if not isinstance(record, dict):
            raise CheckpointError(
                f"checkpoint {str(path)!r} is malformed: {where!r} must be dict, got {type(record).__name__}"
            )
        unknown = sorted(str(key) for key in record if key not in _RECORD_FIELDS)
        if unknown:
            raise CheckpointError(f"checkpoint {str(path)!r} is malformed: {where!r} has unknown key(s) {unknown}")
        fields = {key: checked_entry(record, key, types, path, f"{where}.") for key, types in _RECORD_FIELDS.items()}
        history.append(EpochRecord(**fields))
    stopped_epoch = checked_entry(state, "stopped_epoch", (int, type(None)), path, "state.")
    best = checked_entry(state, "best", dict, path, "state.")
    summary = {
        "score": checked_entry(best, "score", (int, float, type(None)), path, "state.best."),
        "epoch": checked_entry(best, "epoch", int, path, "state.best."),
    }
    return history, stopped_epoch, summary


def _check_same_config(saved: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    """Raise :class:`CheckpointError` naming every setting (dotted, e.g. ``optimizer.groups[0].lr``) in which the
    checkpoint's run and this one differ."""
    saved, current = dict(_flattened(saved)), dict(_flattened(current))
    differences = [
        f"{key}: checkpoint {saved.get(key)!r}, now {current.get(key)!r}"
        for key in sorted(set(saved) | set(current))
        if saved.get(key) != current.get(key)
    ]
    if differences:
        raise CheckpointError(
            f"cannot resume from {str(path)!r}, the run's settings differ: {'; '.join(differences)}"
        )


def _flattened(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` of every leaf of nested dicts and of lists of dicts."""
    if isinstance(value, dict) and (value or not prefix):
        for key, item in value.items():
            yield from _flattened(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and any(isinstance(item, dict) for item in value):
        for i, item in enumerate(value):
            yield from _flattened(item, f"{prefix}[{i}]")
    else:
        yield prefix, value


def data_fingerprint(x: ArrayLike, y: ArrayLike) -> str:
    """What identifies a data set in a checkpoint: a hash of ``x`` and ``y`` (dtypes, shapes and every value;
    numpy and torch alike) and the sample count, e.g. ``"3f0c9a61d2e4b7a8 (6 samples)"``."""
    digest = hashlib.blake2b(digest_size=8)
    for array in (x, y):
        values = np.ascontiguousarray(array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else array)
        digest.update(f"{values.dtype.str}{values.shape}".encode())
        digest.update(memoryview(values).cast("B"))
    return f"{digest.hexdigest()} ({len(x)} samples)"


def copy_segmenter(segmenter: PyTorchSegmenter, **params: Any) -> PyTorchSegmenter:
    """A deep copy of ``segmenter`` (model, preprocessing, defences) with a fresh optimizer of the same kind.

    The new optimizer has the class and settings (``defaults``) of ``segmenter``'s, on the copied parameters,
    and no state; ``params`` are then set with :meth:`PyTorchSegmenter.set_params` (e.g. ``loss="ce"``).

    Tensors that a module keeps from its last forward pass, still attached to that pass's graph (MONAI's
    ``DynUNet(deep_supervision=True)`` keeps its heads' outputs in ``self.heads`` after a training forward), are
    copied detached: ``copy.deepcopy`` refuses such non-leaf tensors. ``segmenter`` is left as it is.
    """
    clone = copy.deepcopy(segmenter, _detached_non_leaf_tensors(segmenter.model))
    optimizer = segmenter.optimizer
    if optimizer is not None:
        clone.set_params(optimizer=type(optimizer)(clone.model.parameters(), **optimizer.defaults))
    if params:
        clone.set_params(**params)
    return clone


def _detached_non_leaf_tensors(model: torch.nn.Module) -> dict[int, torch.Tensor]:
    """A ``copy.deepcopy`` memo that copies each non-leaf tensor held in a module's attributes (directly or in
    lists, tuples and dicts) as a detached clone; the modules themselves are not changed."""
    memo: dict[int, torch.Tensor] = {}

    def visit(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            if not value.is_leaf:
                memo[id(value)] = value.detach().clone()
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)
        elif isinstance(value, dict):
            for item in value.values():
                visit(item)

    for module in model.modules():
        for name, value in vars(module).items():
            if name != "_modules":  # submodules are visited in turn
                visit(value)
    return memo
