"""Region models and label forms (issue 13): class indices become region masks on the way in, bool and integer
multi-hot labels are accepted, index labels for a multi-channel sigmoid model without regions are an error;
predict_labels is the one activation-aware step to a prediction and to_label_map paints regions back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from art.defences.postprocessor import HighConfidence

from art_seg.data import REGION_PRESETS, RegionSpec
from art_seg.estimators import PyTorchSegmenter, hard_prediction
from art_seg.models import UNet2D

SHAPE = (4, 4)


def segmenter(nb_classes=3, activation="sigmoid", loss="dice_ce", **kwargs):
    torch.manual_seed(0)
    model = UNet2D(in_channels=2, nb_classes=nb_classes, base_filters=2, depth=1, norm=None).double()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return PyTorchSegmenter(
        model, loss, input_shape=(2, *SHAPE), nb_classes=nb_classes, activation=activation, device_type="cpu",
        optimizer=optimizer, **kwargs,
    )  # fmt: skip


def data(n=2, nb_classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 2, *SHAPE)), rng.integers(0, nb_classes, size=(n, *SHAPE))


class FixedLogits(torch.nn.Module):
    """An oracle: returns the same logits whatever the input (one sample's logits per input sample)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("out", logits)
        self.scale = torch.nn.Parameter(torch.ones((), dtype=logits.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out[: x.shape[0]] * self.scale + 0 * x.sum()


# ---------------------------------------------------------------------------------------------- construction
def test_region_model_options_are_validated():
    with pytest.raises(ValueError, match="regions need activation='sigmoid'.*got 'softmax'"):
        segmenter(activation="softmax", regions="brats")
    with pytest.raises(ValueError, match=r"nb_classes must equal the number of regions 3 \('WT', 'TC', 'ET'\), got 4"):
        segmenter(nb_classes=4, regions="brats")
    with pytest.raises(ValueError, match="regions must be one of"):
        segmenter(regions="kits")
    seg = segmenter(regions={"TC": (1, 3), "WT": (1, 2, 3), "ET": (3,)})
    assert seg.regions == REGION_PRESETS["monai_brats"] and seg.get_params()["regions"] is seg.regions
    seg.set_params(regions="brats")
    assert seg.regions is REGION_PRESETS["brats"]
    with pytest.raises(ValueError, match="regions need activation='sigmoid'"):
        seg.set_params(activation="softmax")
    assert seg.activation == "sigmoid" and segmenter().regions is None


# ---------------------------------------------------------------------------------------------- labels in
@pytest.mark.parametrize("preset", sorted(REGION_PRESETS))
def test_class_indices_become_region_masks_everywhere_labels_enter(preset):
    spec = REGION_PRESETS[preset]
    seg = segmenter(nb_classes=spec.nb_regions, regions=preset)
    x, y = data(nb_classes=spec.nb_classes)
    masks = spec.to_masks(y, spatial_dims=2)
    reference = seg.loss_gradient(x, masks.astype(np.float64))
    for labels in (y, y[:, None], torch.from_numpy(y), masks, masks.astype(np.uint8), torch.from_numpy(masks)):
        np.testing.assert_allclose(np.asarray(seg.loss_gradient(x, labels)), reference, rtol=1e-12)
    np.testing.assert_allclose(seg.compute_loss(x, y), seg.compute_loss(x, masks), rtol=1e-12)
    _, labels = seg.training_batch(x, y)
    assert labels.shape == (2, spec.nb_regions, *SHAPE) and torch.equal(labels, torch.from_numpy(masks).double())
    assert seg.check_labels(y, x) == "index" and seg.check_labels(masks, x) == "soft"


def test_fit_on_class_indices_trains_the_region_channels():
    spec = REGION_PRESETS["brats"]
    seg = segmenter(regions="brats")
    x, y = data(n=4)
    before = seg.compute_loss(x, y, reduction="mean")
    seg.fit(x, y, batch_size=2, nb_epochs=5, seed=0)
    assert seg.compute_loss(x, y, reduction="mean") < before
    np.testing.assert_allclose(seg.compute_loss(x, y), seg.compute_loss(x, spec.to_masks(y, spatial_dims=2)))


def test_index_labels_for_a_sigmoid_model_without_regions_are_a_clear_error():
    """Before issue 13 they were silently one-hot encoded, which is not what a region model's channels mean."""
    seg = segmenter()
    x, y = data(nb_classes=3)
    for call in (seg.loss_gradient, seg.compute_loss, seg.fit):
        with pytest.raises(ValueError, match="no region spec.*pass regions="):
            call(x, y)
    multi_hot = np.eye(3, dtype=bool)[y].transpose(0, 3, 1, 2)
    assert seg.loss_gradient(x, multi_hot).shape == x.shape


def test_single_channel_sigmoid_takes_binary_index_maps():
    seg = segmenter(nb_classes=1)
    x, y = data(nb_classes=2)
    expected = seg.loss_gradient(x, y[:, None].astype(np.float64))
    for labels in (y, y.astype(bool), y[:, None], torch.from_numpy(y)):
        np.testing.assert_allclose(np.asarray(seg.loss_gradient(x, labels)), expected, rtol=1e-12)
    with pytest.raises(ValueError, match=r"y holds labels \[2\] outside \[0, 2\)"):
        seg.loss_gradient(x, np.full_like(y, 2))


def test_bool_and_integer_one_hot_labels_for_softmax():
    seg = segmenter(activation="softmax", loss="ce")
    x, y = data(nb_classes=3)
    one_hot = np.eye(3, dtype=bool)[y].transpose(0, 3, 1, 2)
    expected = seg.loss_gradient(x, y)
    np.testing.assert_allclose(seg.loss_gradient(x, one_hot), expected, rtol=1e-12)
    np.testing.assert_allclose(seg.loss_gradient(x, one_hot.astype(np.int32)), expected, rtol=1e-12)
    with pytest.raises(ValueError, match=r"multi-hot labels y must be 0 or 1, got values in \[0, 2\]"):
        seg.loss_gradient(x, 2 * one_hot.astype(np.int32))


# ---------------------------------------------------------------------------------------------- prediction out
def test_hard_prediction_by_hand():
    logits = np.array([[[0.2, -0.1, 0.0]], [[0.3, 0.4, 0.0]]]).transpose(1, 0, 2)  # (1, 2, 3)
    np.testing.assert_array_equal(hard_prediction(logits, "softmax"), [[1, 1, 0]])  # ties: lowest class
    assert hard_prediction(logits, "softmax").dtype == np.int64
    np.testing.assert_array_equal(hard_prediction(logits, "sigmoid"), [[[True, False, False], [True, True, False]]])
    probabilities = 1 / (1 + np.exp(-logits))
    np.testing.assert_array_equal(hard_prediction(probabilities, "sigmoid", from_logits=False), logits > 0)
    torch_out = hard_prediction(torch.from_numpy(logits), "sigmoid")
    assert torch_out.dtype == torch.bool and torch.equal(torch_out, torch.from_numpy(logits > 0))
    with pytest.raises(ValueError, match="activation must be one of"):
        hard_prediction(logits, "relu")
    with pytest.raises(TypeError, match="scores must be floating"):
        hard_prediction(np.zeros((1, 2), int), "softmax")


@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
def test_predict_labels_is_the_hard_prediction_of_predict(activation):
    seg = segmenter(activation=activation)
    x, _ = data(n=3)
    logits = seg.predict(x, logits=True)
    labels = seg.predict_labels(x, batch_size=2)
    expected = logits.argmax(1) if activation == "softmax" else logits > 0
    assert labels.dtype == expected.dtype and np.array_equal(labels, expected)
    as_tensor = seg.predict_labels(torch.from_numpy(x))
    assert isinstance(as_tensor, torch.Tensor) and np.array_equal(as_tensor.numpy(), expected)


def test_predict_labels_with_a_postprocessing_defence_uses_its_probabilities():
    seg = segmenter(activation="softmax", postprocessing_defences=HighConfidence(cutoff=0.9, apply_predict=True))
    x, _ = data()
    np.testing.assert_array_equal(seg.predict_labels(x), seg.predict(x).argmax(1))


@pytest.mark.parametrize("preset", sorted(REGION_PRESETS))
def test_a_perfect_region_model_predicts_the_label_map_back(preset):
    spec = REGION_PRESETS[preset]
    _, y = data(n=3, nb_classes=spec.nb_classes)
    masks = spec.to_masks(y, spatial_dims=2)
    oracle = FixedLogits(torch.from_numpy(np.where(masks, 8.0, -8.0)))
    seg = PyTorchSegmenter(oracle, "dice", input_shape=(2, *SHAPE), nb_classes=spec.nb_regions,
                           activation="sigmoid", regions=preset, device_type="cpu")  # fmt: skip
    x = np.zeros((3, 2, *SHAPE))
    prediction = seg.predict_labels(x)
    np.testing.assert_array_equal(prediction, masks)
    np.testing.assert_array_equal(seg.to_label_map(prediction), y)
    assert torch.equal(seg.to_label_map(torch.from_numpy(prediction)), torch.from_numpy(y))


def test_to_label_map_for_softmax_binary_sigmoid_and_sigmoid_without_regions():
    softmax = segmenter(activation="softmax")
    labels = np.array([[[0, 1], [2, 1]]])
    assert softmax.to_label_map(labels) is labels
    with pytest.raises(ValueError, match="prediction of a softmax model must be a label map"):
        softmax.to_label_map(labels[:, None])
    binary = segmenter(nb_classes=1)
    np.testing.assert_array_equal(binary.to_label_map(np.array([[[[True, False]]]])), [[[1, 0]]])
    with pytest.raises(ValueError, match="to_label_map needs regions for a sigmoid model with 3 channels"):
        segmenter().to_label_map(np.zeros((1, 3, *SHAPE), bool))
    custom = segmenter(nb_classes=1, regions=RegionSpec(("tumour",), ((1, 2, 3),), (1,)))
    np.testing.assert_array_equal(custom.to_label_map(np.ones((1, 1, 1, 2), bool)), [[[1, 1]]])
