"""Fixtures of the attack tests: small models of other output kinds, trained inside the test session."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from art_seg.estimators import PyTorchSegmenter
from art_seg.models import UNet3D
from tests.helpers import TASK_SHAPE, make_blob_task


class ForegroundHead(torch.nn.Module):
    """A softmax model's classes 1.. merged into one: logits ``(z_0, logsumexp(z_1, ..., z_{K-1}))``, so that the
    two-class softmax is (background, tumour) with exactly the original model's probabilities."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.model(x)
        return torch.stack([z[:, 0], torch.logsumexp(z[:, 1:], dim=1)], dim=1)


@pytest.fixture(scope="session")
def binary_task(blob_data: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Held-out blob volumes with both blobs as one foreground class: ``x (6, 2, *TASK_SHAPE)``, ``y`` in {0, 1}."""
    x, y = blob_data
    return x, (y > 0).astype(np.int64)


@pytest.fixture(scope="session")
def binary_segmenter(trained_segmenter: PyTorchSegmenter) -> PyTorchSegmenter:
    """A two-class (background / tumour) softmax segmenter: the trained task model with its tumour classes merged."""
    return PyTorchSegmenter(
        ForegroundHead(trained_segmenter.model),
        "dice_ce",
        input_shape=trained_segmenter.input_shape,
        nb_classes=2,
        clip_values=trained_segmenter.clip_values,
        device_type="cpu",
    )


def region_maps(y: np.ndarray) -> np.ndarray:
    """Two overlapping regions of blob-task labels, as float multi-hot maps ``(N, 2, *spatial)``: region 0 both
    blobs (like BraTS's whole tumour), region 1 the class-2 blob only (inside region 0, like the tumour core)."""
    return np.stack([y > 0, y == 2], axis=1).astype(np.float32)


@pytest.fixture(scope="session")
def region_task() -> tuple[np.ndarray, np.ndarray]:
    """Held-out blob volumes with region labels: ``x (6, 2, *TASK_SHAPE)``, ``y (6, 2, *TASK_SHAPE)`` multi-hot."""
    x, y = make_blob_task(6, seed=1)
    return x, region_maps(y)


@pytest.fixture(scope="session")
def region_segmenter() -> PyTorchSegmenter:
    """A sigmoid UNet3D with two overlapping region channels, trained on the blob task (a few seconds)."""
    torch.manual_seed(0)
    model = UNet3D(in_channels=2, nb_classes=2, base_filters=4, depth=1, norm="instance")
    segmenter = PyTorchSegmenter(
        model,
        "dice_ce",
        input_shape=(2, *TASK_SHAPE),
        nb_classes=2,
        activation="sigmoid",
        clip_values=(-3.0, 5.0),
        optimizer=torch.optim.Adam(model.parameters(), lr=2e-2),
        device_type="cpu",
    )
    x, y = make_blob_task(24, seed=0, absent=0.3)
    segmenter.fit(x, region_maps(y), batch_size=4, nb_epochs=15, seed=0)
    return segmenter
