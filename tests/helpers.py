"""Test helpers: a tiny synthetic segmentation task, a reference Dice written independently of art_seg, and a disk
that fills up under art_seg's atomic writer."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from art_seg import _files
from art_seg.attacks.scores import foreground_dice

TASK_SHAPE = (12, 12, 12)
TASK_CLASSES = 3

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def make_blob_task(
    n: int, seed: int, shape: tuple[int, ...] = TASK_SHAPE, contrast: float = 2.0, absent: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Two-channel noisy volumes with two blobs: class 1 is bright in channel 0, class 2 bright in channel 1.

    Each blob is left out with probability ``absent`` (training on some blob-free volumes teaches the model
    that "no tumour" exists, which a targeted erasing attack needs). Returns ``x (n, 2, *shape) float32``
    (roughly z-scored) and ``y (n, *shape) int64`` in ``{0, 1, 2}``.
    """
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), axis=0).astype(np.float32)
    x = rng.normal(0.0, 0.3, size=(n, 2, *shape)).astype(np.float32)
    y = np.zeros((n, *shape), dtype=np.int64)
    for i in range(n):
        for cls, channel in ((1, 0), (2, 1)):
            center = rng.uniform(3, np.array(shape) - 3).reshape(-1, *([1] * len(shape)))
            radius = rng.uniform(2.0, 3.2)
            blob = ((grid - center) ** 2).sum(axis=0) <= radius**2
            if rng.uniform() < absent:
                continue
            y[i][blob & (y[i] == 0)] = cls
            x[i, channel][blob] += contrast
    return x, y


def mean_dice(pred: np.ndarray, truth: np.ndarray, nb_classes: int) -> float:
    """Mean over samples and foreground classes of Dice between label maps (1 when both are empty)."""
    scores = []
    for p, t in zip(pred, truth):
        for k in range(1, nb_classes):
            a, b = p == k, t == k
            denom = a.sum() + b.sum()
            scores.append(1.0 if denom == 0 else 2.0 * (a & b).sum() / denom)
    return float(np.mean(scores))


def sample_dice(segmenter, x, y) -> np.ndarray:
    """Each sample's mean foreground Dice of ``segmenter``'s hard prediction for ``x`` against ``y`` ``(N,)``: the
    score the worst-case attacks choose by (:func:`art_seg.attacks.scores.foreground_dice`)."""
    logits = torch.as_tensor(segmenter.predict(x, logits=True))
    return foreground_dice(logits, torch.as_tensor(y), segmenter.activation).numpy()


def fail_writes(
    monkeypatch: pytest.MonkeyPatch, fails: Callable[[Path], bool], code: int = errno.ENOSPC, written: float = 0.0
) -> None:
    """Make art_seg's atomic writer (:mod:`art_seg._files`) meet a full (``ENOSPC``) or read-only (``EROFS``) disk
    on the files for which ``fails(destination)`` holds: the first write to such a file's temporary writes the
    first ``written`` fraction of the data, then raises ``OSError(code)`` with no file name, as write(2) does.
    Other files are written as usual."""
    open_temporary = _files._open_temporary

    class FailingFile:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            self.handle.write(data[: int(len(data) * written)])
            raise OSError(code, os.strerror(code))

    def opened(path):
        temporary, handle = open_temporary(path)
        return temporary, (FailingFile(handle) if fails(path) else handle)

    monkeypatch.setattr(_files, "_open_temporary", opened)


def assert_gradients_per_sample(per_sample, logits, target, voxel_weights=None) -> None:
    """``per_sample(logits, target, voxel_weights) -> (N,)`` computed batched gives each sample the gradient of
    its own loss: the gradient of the sum with respect to sample ``i`` equals that of sample ``i``'s loss computed
    on sample ``i`` alone (a batch of one), and so do the values."""
    import torch

    leaf = logits.detach().clone().requires_grad_(True)
    values = per_sample(leaf, target, voxel_weights)
    assert values.shape == (logits.shape[0],)
    (batched,) = torch.autograd.grad(values.sum(), leaf)
    for i in range(logits.shape[0]):
        alone_leaf = logits[i : i + 1].detach().clone().requires_grad_(True)
        weights = None if voxel_weights is None else voxel_weights[i : i + 1]
        alone = per_sample(alone_leaf, target[i : i + 1], weights)
        (grad,) = torch.autograd.grad(alone.sum(), alone_leaf)
        torch.testing.assert_close(values[i : i + 1], alone.detach(), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(batched[i : i + 1], grad, rtol=1e-10, atol=1e-12)


def one_error_line(capsys, command: str) -> str:
    """The one line on stderr (checked: exactly one, no traceback) after ``art-seg <command>: error: ``."""
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    prefix = f"art-seg {command}: error: "
    assert lines[0].startswith(prefix), lines[0]
    return lines[0][len(prefix) :]


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch's CPU threads set to ``threads`` inside the block, restored after it. Tiny networks and tensors run
    several times faster on one thread than on two on a shared 2-core machine (no OpenMP hand-offs)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
