"""Oracle segmenters for scoring tests: perfect softmax and region models that read the class map hidden in an
input channel, and a model that predicts nothing; tiny, untrained, differentiable (attacks run on them)."""

from __future__ import annotations

import numpy as np
import torch

from art_seg.data import RegionSpec, region_spec
from art_seg.estimators import PyTorchSegmenter

SHAPE = (6, 6, 6)


class ClassFromChannel(torch.nn.Module):
    """Logits of the class whose value ``centres[k]`` is nearest to input channel ``channel``: class ``k`` scores
    ``-scale * (x_c - centres[k])^2``, so a class map written into that channel is read back with margins of
    ``scale`` (centres 0, 1, 2, ...). With ``regions``, one logit per region instead: the log-odds that the class
    is in the region, ``logsumexp`` of its classes' scores minus that of the others (about ``+-scale``)."""

    def __init__(
        self,
        nb_classes: int,
        regions: RegionSpec | None = None,
        channel: int = 0,
        scale: float = 20.0,
        centres: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        centres = np.arange(nb_classes) if centres is None else np.asarray(centres)
        self.register_buffer("centres", torch.as_tensor(centres, dtype=torch.float32))
        self.gain = torch.nn.Parameter(torch.ones(()))
        self.channel, self.scale = channel, scale
        members = np.zeros((0, nb_classes), bool)
        if regions is not None:
            members = np.zeros((regions.nb_regions, nb_classes), bool)
            for r, classes in enumerate(regions.classes):
                members[r, list(classes)] = True
        self.register_buffer("members", torch.as_tensor(members))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value = x[:, self.channel : self.channel + 1]
        shape = (1, -1) + (1,) * (x.ndim - 2)
        scores = -self.scale * (value - self.centres.view(shape)) ** 2 * self.gain
        if self.members.shape[0] == 0:
            return scores
        member = self.members.view(1, *self.members.shape, *(1,) * (x.ndim - 2))  # (1, R, K, *1)
        scores = scores.unsqueeze(1)  # (N, 1, K, *spatial)
        inside = torch.where(member, scores, -torch.inf).logsumexp(2)
        outside = torch.where(member, -torch.inf, scores).logsumexp(2)
        return inside - outside


class PredictsNothing(torch.nn.Module):
    """Background everywhere (softmax: class 0 wins; sigmoid: every channel off), whatever the input."""

    def __init__(self, nb_classes: int, activation: str) -> None:
        super().__init__()
        self.nb_classes, self.activation = nb_classes, activation
        self.gain = torch.nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.full((x.shape[0], self.nb_classes, *x.shape[2:]), -10.0, dtype=x.dtype, device=x.device)
        if self.activation == "softmax":
            logits[:, 0] = 10.0
        return logits * self.gain + 0 * x.sum()


def softmax_oracle(
    nb_classes: int = 4, shape: tuple[int, ...] = SHAPE, in_channels: int = 2, **kwargs
) -> PyTorchSegmenter:
    """A perfect softmax model of the class map in input channel 0."""
    return PyTorchSegmenter(
        ClassFromChannel(nb_classes, **kwargs), "ce", input_shape=(in_channels, *shape), nb_classes=nb_classes,
        device_type="cpu",
    )  # fmt: skip


def region_oracle(regions, shape: tuple[int, ...] = SHAPE, in_channels: int = 2, **kwargs) -> PyTorchSegmenter:
    """A perfect region (sigmoid) model of the class map in input channel 0, channels as ``regions`` says."""
    spec = region_spec(regions)
    return PyTorchSegmenter(
        ClassFromChannel(spec.nb_classes, spec, **kwargs), "dice_ce", input_shape=(in_channels, *shape),
        nb_classes=spec.nb_regions, activation="sigmoid", regions=spec, device_type="cpu",
    )  # fmt: skip


def empty_model(nb_classes: int, activation: str, regions=None, shape: tuple[int, ...] = SHAPE) -> PyTorchSegmenter:
    """A model that predicts no tumour anywhere."""
    return PyTorchSegmenter(
        PredictsNothing(nb_classes, activation), "ce" if activation == "softmax" else "dice_ce",
        input_shape=(2, *shape), nb_classes=nb_classes, activation=activation, regions=regions, device_type="cpu",
    )  # fmt: skip


def oracle_data(n: int = 3, shape: tuple[int, ...] = SHAPE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``x (n, 2, *shape) float32`` with the class map in channel 0 and noise in channel 1, and ``y (n, *shape)``
    int64 BraTS classes 0..3: a tumour with every class in sample 0, no enhancing tumour in sample 1 (ET empty),
    and no tumour at all in sample 2 (WT, TC, ET empty)."""
    rng = np.random.default_rng(seed)
    y = np.zeros((n, *shape), np.int64)
    centre = tuple(slice(1, s - 1) for s in shape)
    y[(0, *centre)] = rng.integers(0, 4, size=[s - 2 for s in shape])
    if n > 1:
        y[(1, *centre)] = rng.integers(0, 3, size=[s - 2 for s in shape])  # classes 0..2: ET empty
    x = np.stack([y.astype(np.float32), rng.normal(size=y.shape).astype(np.float32)], axis=1)
    return x, y


def empty_region_dice(label: np.ndarray, regions) -> dict[str, float]:
    """The Dice of a prediction with nothing in it (BraTS): 1 for a region empty in the truth, else 0."""
    return {name: float(not np.isin(label, classes).any()) for name, classes in regions.items()}
