"""Label maps with several lesions for the lesion-wise and instance metrics' tests: the issue's example and random
multi-lesion cases (balls of art_seg classes 1..3, shifted, dropped, shrunk, merged or added in the prediction)."""

from __future__ import annotations

import numpy as np

#: Voxel counts of the digital balls ``|x - c|^2 <= r2`` used below (centre on a voxel).
BALL_VOXELS = {2: 19, 20: 389, 48: 1365}


def ball(shape: tuple[int, ...], centre: tuple[int, ...], r2: float) -> np.ndarray:
    """Boolean ball of squared radius ``r2`` voxels around ``centre``."""
    grid = np.indices(shape)
    return sum((g - c) ** 2 for g, c in zip(grid, centre)) <= r2


def issue_example() -> tuple[np.ndarray, np.ndarray]:
    """Issue 15's example, ``(pred, truth)`` int64 ``(48, 48, 40)``, every lesion edema (class 2, so WT only).

    Ground truth: balls of 1365, 389 and 19 voxels. Prediction: the first ball shifted by one voxel along axis 0
    (1220 voxels overlap), the other two missed, one false positive of 93 voxels (a 3 x 31 x 1 slab) far from all.
    Whole-volume WT Dice = 2 * 1220 / (1773 + 1365 + 93) = 0.7552; BraTS 2023 GLI lesion-wise WT Dice
    = (1220 / 1365 + 0 + 0) / 3 = 0.298 (the 19-voxel lesion is under 50 mm^3), HD95 = (1 + 374 + 374) / 3.
    """
    shape = (48, 48, 40)
    truth, pred = np.zeros(shape, np.int64), np.zeros(shape, np.int64)
    truth[ball(shape, (12, 12, 12), 48)] = 2
    truth[ball(shape, (34, 34, 12), 20)] = 2
    truth[ball(shape, (12, 36, 30), 2)] = 2
    pred[ball(shape, (13, 12, 12), 48)] = 2
    pred[40:43, 8:39, 34] = 2
    return pred, truth


def random_case(seed: int, shape: tuple[int, int, int] = (40, 36, 28)) -> tuple[np.ndarray, np.ndarray]:
    """``(pred, truth)`` int64 label maps with 2-6 ground-truth lesions (each a ball of class 2 with, for some, a
    core of class 1 or 3) and a prediction that shifts, shrinks, drops, merges or invents lesions."""
    rng = np.random.default_rng(seed)
    truth, pred = np.zeros(shape, np.int64), np.zeros(shape, np.int64)
    for _ in range(rng.integers(2, 7)):
        centre = tuple(int(rng.integers(3, n - 3)) for n in shape)
        r2 = float(rng.choice([1, 2, 3, 5, 8, 12, 20]))
        core = int(rng.choice([1, 2, 3]))
        lesion, inner = ball(shape, centre, r2), ball(shape, centre, r2 / 3)
        truth[lesion] = np.maximum(truth[lesion], 2)
        truth[inner] = core
        fate = rng.choice(["keep", "shift", "shrink", "drop"], p=[0.3, 0.3, 0.2, 0.2])
        if fate == "drop":
            continue
        moved = tuple(c + int(rng.integers(-2, 3)) for c in centre) if fate == "shift" else centre
        radius = r2 / 2 if fate == "shrink" else r2
        pred[ball(shape, moved, radius)] = np.maximum(pred[ball(shape, moved, radius)], 2)
        pred[ball(shape, moved, radius / 3)] = core if rng.random() < 0.8 else int(rng.choice([1, 3]))
    for _ in range(rng.integers(0, 3)):  # false positives
        centre = tuple(int(rng.integers(2, n - 2)) for n in shape)
        pred[ball(shape, centre, float(rng.choice([1, 2, 4])))] = int(rng.choice([1, 2, 3]))
    return pred, truth
