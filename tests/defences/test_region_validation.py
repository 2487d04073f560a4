"""Trainer validation with the activation-aware prediction (issue 13): oracle models that read the truth from an
input channel score validation Dice 1.0, per region for region models in each preset's channel order, and the best
checkpoint is the epoch at which the oracle was perfect; a model that predicts nothing scores the BraTS
empty-region values (1 for a region empty in the truth, 0 otherwise)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from art_seg.attacks import FGSM, TargetedIterativeFGSM
from art_seg.data import region_spec
from art_seg.defences import (
    AdversarialTrainer,
    AdversarialTrainerMadryPGD,
    DistillationTrainer,
    SegmentationTrainer,
    read_checkpoint,
)
from art_seg.estimators import PyTorchSegmenter
from art_seg.models import UNet3D

SHAPE = (4, 4, 4)
PERFECT, NOTHING = "perfect", "nothing"


class Oracle(torch.nn.Module):
    """Logits of size 20 that predict the class-index label map held in input channel 0: one channel per class
    (softmax) or per region of ``regions`` (sigmoid), or nothing at all (background; every region off).

    ``schedule[e]`` says which after ``e + 1`` training forwards (one batch per epoch: after epoch ``e + 1``); the
    count is a buffer, so a checkpoint records the epoch its weights are from. Its one parameter, a bias, is what
    the optimizer trains (never enough to change a prediction)."""

    def __init__(self, regions: str | None = None, schedule: tuple[str, ...] = (PERFECT,)) -> None:
        super().__init__()
        self.regions = None if regions is None else region_spec(regions)
        self.schedule = schedule
        self.bias = torch.nn.Parameter(torch.zeros(()))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.steps += 1
        labels = x[:, 0].round().long().clamp(0, 3)
        if self.schedule[min(max(int(self.steps) - 1, 0), len(self.schedule) - 1)] == NOTHING:
            labels = torch.zeros_like(labels)
        if self.regions is None:
            on = labels.unsqueeze(1) == torch.arange(4).view(1, 4, 1, 1, 1)
        else:
            on = self.regions.to_masks(labels)
        return 20.0 * (2 * on.to(x.dtype) - 1) + self.bias + 0.0 * x[:, :1]  # attacks need a graph to x


def oracle(regions: str | None = None, schedule: tuple[str, ...] = (PERFECT,)) -> PyTorchSegmenter:
    model = Oracle(regions, schedule)
    return PyTorchSegmenter(
        model, "ce", input_shape=(2, *SHAPE), nb_classes=4 if regions is None else 3, device_type="cpu",
        activation="softmax" if regions is None else "sigmoid", regions=regions,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
    )  # fmt: skip


def cases() -> tuple[np.ndarray, np.ndarray]:
    """Four BraTS label maps (art_seg classes: 1 necrosis, 2 edema, 3 enhancing): every class; no enhancing
    tumour; edema only; no tumour. The labels sit in input channel 0 for the oracle."""
    y = np.zeros((4, *SHAPE), np.int64)
    y[0, :2], y[0, 0, :2], y[0, 0, 0, :2] = 2, 1, 3
    y[1, :2], y[1, 0, :2] = 2, 1
    y[2, 1:3] = 2
    x = np.stack([y.astype(np.float32), np.random.default_rng(0).normal(size=y.shape).astype(np.float32)], axis=1)
    return x, y


def maps(y: np.ndarray, regions: str | None) -> np.ndarray:
    """``y`` as one-hot class maps (float, softmax models) or as bool region masks in the preset's channel order
    (what MONAI's ConvertToMultiChannelBasedOnBratsClasses gives for ``"monai_brats"``)."""
    if regions is None:
        return np.eye(4, dtype=np.float32)[y].transpose(0, 4, 1, 2, 3)
    return region_spec(regions).to_masks(y)


#: Dice of a model that predicts nothing: the share of the four cases in which each region is empty
#: (WT {1,2,3}: case 4; TC {1,3}: cases 3, 4; ET {3}: cases 2, 3, 4; necrosis: 3, 4; edema: 4; enhancing: 2, 3, 4)
NOTHING_DICE = {"WT": 0.25, "TC": 0.5, "ET": 0.75}
NOTHING_DICE_SOFTMAX = np.mean([0.5, 0.25, 0.75])
CONVENTIONS = [None, "brats", "nnunet_brats", "monai_brats"]

TRAINERS = {
    "plain": lambda s, **kw: SegmentationTrainer(s, **kw),
    "adversarial": lambda s, **kw: AdversarialTrainer(s, FGSM(s, eps=0.1), ratio=0.5, **kw),
    "madry": lambda s, **kw: AdversarialTrainerMadryPGD(s, eps=0.1, eps_step=0.05, max_iter=1, **kw),
    "distillation": lambda s, **kw: DistillationTrainer(s, temperature=2.0, alpha=0.5, teacher_epochs=1, **kw),
}


@pytest.mark.parametrize("regions", CONVENTIONS)
@pytest.mark.parametrize("name", list(TRAINERS))
def test_perfect_oracle_scores_one_and_its_epoch_is_the_best_checkpoint(name, regions, tmp_path) -> None:
    x, y = cases()
    y = maps(y, regions)  # class indices: test_class_index_labels_score_as_maps_do
    seg = oracle(regions, schedule=(NOTHING, PERFECT, NOTHING))
    trainer = TRAINERS[name](seg, seed=0, checkpoint_dir=tmp_path)
    history = trainer.fit(x, y, batch_size=4, nb_epochs=3, validation_data=(x, y))
    nothing = NOTHING_DICE_SOFTMAX if regions is None else np.mean(list(NOTHING_DICE.values()))
    assert [r.val_dice for r in history] == pytest.approx([nothing, 1.0, nothing], abs=1e-12)
    assert history[1].dice == pytest.approx(1.0)  # the training Dice of the perfect epoch's step
    if regions is None:
        assert all(r.val_region_dice is None for r in history)
    else:
        names = region_spec(regions).names  # in the model's channel order
        assert [list(r.val_region_dice) for r in history] == [list(names)] * 3
        assert history[0].val_region_dice == pytest.approx(NOTHING_DICE, abs=1e-12)
        assert history[1].val_region_dice == dict.fromkeys(names, 1.0)
    folder = tmp_path / "student" if name == "distillation" else tmp_path
    assert read_checkpoint(folder / "best.pt")["epoch"] == 2
    assert int(seg.model.steps) == 2  # restore_best: the weights (and step count) of epoch 2


@pytest.mark.parametrize("regions", ["brats", "monai_brats"])
def test_region_history_survives_resume(regions, tmp_path) -> None:
    x, y = cases()
    options = dict(seed=0, checkpoint_dir=tmp_path)
    first = SegmentationTrainer(oracle(regions, (NOTHING, PERFECT, NOTHING)), **options)
    first.fit(x, y, batch_size=4, nb_epochs=2, validation_data=(x, y))
    resumed = SegmentationTrainer(oracle(regions, (NOTHING, PERFECT, NOTHING)), **options)
    history = resumed.fit(x, y, batch_size=4, nb_epochs=3, validation_data=(x, y), resume=True)
    assert history[:2] == first.history and history[2].val_region_dice == pytest.approx(NOTHING_DICE)


@pytest.mark.parametrize("regions", CONVENTIONS)
@pytest.mark.parametrize("name", ["plain", "distillation"])
def test_class_index_labels_score_as_maps_do(name, regions) -> None:
    # a region model turns class indices into its regions; the validation Dice was that of the indices one-hot
    # encoded as if channels were classes 0, 1, 2 (and class 3 lost)
    x, y = cases()
    for labels in (y, maps(y, regions)):
        trainer = TRAINERS[name](oracle(regions, (NOTHING, PERFECT)), seed=0)
        history = trainer.fit(x, labels, batch_size=4, nb_epochs=2, validation_data=(x, labels))
        assert [r.val_dice for r in history] == pytest.approx([0.5, 1.0])
        if regions is not None:
            assert history[0].val_region_dice == pytest.approx(NOTHING_DICE)


def test_validation_refuses_class_indices_for_a_sigmoid_model_without_regions() -> None:
    x, y = cases()
    model = UNet3D(2, 3, base_filters=2, depth=1)
    seg = PyTorchSegmenter(
        model, "ce", input_shape=(2, *SHAPE), nb_classes=3, activation="sigmoid", device_type="cpu",
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
    )  # fmt: skip
    masks = region_spec("brats").to_masks(y)
    with pytest.raises(ValueError, match="pass regions="):
        SegmentationTrainer(seg).fit(x, masks, batch_size=4, nb_epochs=1, validation_data=(x, y))


def test_adversarial_training_of_a_region_model_aims_at_no_tumour_by_default() -> None:
    # with class-index labels a region model's "no tumour" is class 0 everywhere (erasing classes 1 .. R-1 = 1, 2
    # left enhancing tumour, class 3, switched on); with multi-hot labels every region channel off
    x, y = cases()
    seg = oracle("brats")
    trainer = AdversarialTrainer(seg, TargetedIterativeFGSM(seg, eps=0.1, eps_step=0.1, max_iter=1), seed=0)
    assert (trainer.target(y) == 0).all()
    masks = region_spec("brats").to_masks(y)
    assert trainer.target(masks).shape == masks.shape and not trainer.target(masks).any()
    trainer.fit(x, y, batch_size=4, nb_epochs=1)


def test_no_tumour_target_of_a_softmax_models_one_hot_maps_is_background() -> None:
    x, y = cases()
    seg = oracle(None)
    trainer = AdversarialTrainer(seg, TargetedIterativeFGSM(seg, eps=0.1, eps_step=0.1, max_iter=1), seed=0)
    one_hot = maps(y, None)
    target = trainer.target(one_hot)
    assert (target[:, 0] == 1).all() and (target[:, 1:] == 0).all() and one_hot[:, 1:].any()
    assert (trainer.target(y) == 0).all() and (trainer.target(y[:, None]) == 0).all()  # (N, 1, ...) indices too
