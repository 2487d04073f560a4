"""Shared fixtures: a tiny synthetic 3D segmentation task and a small UNet trained on it once per session."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from art_seg.estimators import PyTorchSegmenter
from art_seg.models import UNet3D
from tests.helpers import TASK_CLASSES, TASK_SHAPE, make_blob_task, mean_dice, torch_threads

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def blob_data() -> tuple[np.ndarray, np.ndarray]:
    """Held-out evaluation data for the trained task model."""
    return make_blob_task(6, seed=1)


@pytest.fixture(scope="session")
def trained_segmenter() -> PyTorchSegmenter:
    """A small UNet3D trained inside the test session on the blob task (a few seconds on 2 CPU cores)."""
    torch.manual_seed(0)
    model = UNet3D(in_channels=2, nb_classes=TASK_CLASSES, base_filters=4, depth=1, norm="instance")
    segmenter = PyTorchSegmenter(
        model,
        "dice_ce",
        input_shape=(2, *TASK_SHAPE),
        nb_classes=TASK_CLASSES,
        clip_values=(-3.0, 5.0),
        optimizer=torch.optim.Adam(model.parameters(), lr=2e-2),
        device_type="cpu",
    )
    x, y = make_blob_task(32, seed=0, absent=0.3)
    segmenter.fit(x, y, batch_size=4, nb_epochs=15, seed=0)
    return segmenter


@pytest.fixture(scope="session")
def clean_dice(trained_segmenter: PyTorchSegmenter, blob_data: tuple[np.ndarray, np.ndarray]) -> float:
    """Dice of the trained model on clean held-out data; asserts the model learned the task."""
    x, y = blob_data
    dice = mean_dice(trained_segmenter.predict(x).argmax(1), y, TASK_CLASSES)
    assert dice > 0.85, f"the task model did not learn the blob task (Dice {dice:.3f})"
    return dice


@pytest.fixture()
def one_thread():
    """torch on one CPU thread for the test (:func:`tests.helpers.torch_threads`)."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def one_thread_module():
    """torch on one CPU thread for a whole test module (:func:`tests.helpers.torch_threads`)."""
    with torch_threads(1):
        yield
