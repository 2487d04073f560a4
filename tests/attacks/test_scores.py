"""Hard labels and Dice of the attack bookkeeping: logits and probabilities of sigmoid models told apart; the
ensemble scores perfect softmax and region models 1 and a model that predicts nothing the BraTS empty values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from art_seg.attacks import FGSM, IterativeFGSM, WorstCaseEnsemble
from art_seg.attacks.scores import foreground_dice, hard_labels
from art_seg.data import REGION_PRESETS
from tests.evaluation.oracles import empty_model, oracle_data, region_oracle, softmax_oracle


def test_sigmoid_logits_between_0_and_half_are_positive() -> None:
    # probability sigmoid(0.3) = 0.57: a positive voxel; thresholding the logit at 0.5 called it negative
    logits = torch.full((1, 2, 3, 3), 0.3)
    assert bool(hard_labels(logits, "sigmoid", from_logits=True).all())
    assert not bool(hard_labels(logits, "sigmoid", from_logits=False).any())  # as probabilities: 0.3 < 0.5
    target = torch.ones(1, 2, 3, 3)
    assert foreground_dice(logits, target, "sigmoid").tolist() == [1.0]
    assert foreground_dice(-logits, target, "sigmoid").tolist() == [0.0]


def test_softmax_hard_labels_are_the_argmax_either_way() -> None:
    logits = torch.tensor([[[2.0, -1.0], [0.5, 3.0], [1.0, 0.0]]])  # (1, 3, 2)
    expected = torch.tensor([[[True, False], [False, True], [False, False]]])
    for from_logits, scores in ((True, logits), (False, logits.softmax(1))):
        assert torch.equal(hard_labels(scores, "softmax", from_logits=from_logits), expected)


def test_hard_labels_needs_to_be_told_what_it_gets() -> None:
    with pytest.raises(TypeError):
        hard_labels(torch.zeros(1, 2, 3), "sigmoid")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="activation must be one of"):
        hard_labels(torch.zeros(1, 2, 3), "relu", from_logits=True)


def test_the_ensemble_scores_a_sigmoid_model_from_its_logits() -> None:
    from art_seg.estimators import PyTorchSegmenter

    model = torch.nn.Conv3d(2, 2, 1)
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.constant_(model.bias, 0.3)  # every voxel of both regions at probability 0.57: all positive
    segmenter = PyTorchSegmenter(
        model, "ce", input_shape=(2, 3, 3, 3), nb_classes=2, activation="sigmoid", device_type="cpu"
    )
    ensemble = WorstCaseEnsemble([FGSM(segmenter, eps=0.1)])
    ensemble.generate(torch.zeros(1, 2, 3, 3, 3), torch.ones(1, 2, 3, 3, 3))
    assert ensemble.scores_.tolist() == [[1.0]]


@pytest.mark.parametrize("name", ["softmax", "brats", "brats2024", "monai_brats", "nnunet_brats"])
def test_the_ensemble_scores_perfect_models_one_and_empty_ones_the_brats_empty_values(name) -> None:
    # the ensemble's choice rests on these scores: Dice per sample, the mean over foreground classes (softmax) or
    # over every region channel (sigmoid, in the preset's order), with class-index labels
    x, y = oracle_data()  # every class; no enhancing tumour; no tumour
    if name == "softmax":
        perfect, nothing, channels = softmax_oracle(), empty_model(4, "softmax"), [(1,), (2,), (3,)]
    else:
        spec = REGION_PRESETS[name]
        perfect, nothing = region_oracle(name), empty_model(spec.nb_regions, "sigmoid", regions=name)
        channels = list(spec.classes)
    empty_values = [np.mean([not np.isin(label, classes).any() for classes in channels]) for label in y]
    for model, expected in ((perfect, np.ones(len(y))), (nothing, empty_values)):
        members = [FGSM(model, eps=1e-3), IterativeFGSM(model, eps=1e-3, eps_step=1e-3, max_iter=1)]
        ensemble = WorstCaseEnsemble(members)
        ensemble.generate(x, y)
        np.testing.assert_allclose(ensemble.scores_, [expected, expected], rtol=1e-6)
