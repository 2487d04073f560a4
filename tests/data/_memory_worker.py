"""Load a BraTS folder in a fresh process and print its peak memory: ``python -m tests.data._memory_worker DIR KIND``.

``KIND`` is ``good`` (one tiny subject, BraTS20_Training_004) or ``bombs`` (the same subject after three whose five
files are ~4 KB ``.nii.gz`` bombs declaring 800^3 int16 and 2000^3 float32 voxels, the cases of issue 12.10, and
600^3 int16, under ``MAX_VOXELS`` but 432 MB).
Prints one JSON line: ``peak_mib`` (``ru_maxrss`` of this process, whole life), the loaded ids and the warnings.
"""

from __future__ import annotations

import json
import resource
import sys
import warnings
from pathlib import Path

import numpy as np

from art_seg.data import find_subjects, load_subjects
from tests.data.builders import craft, write_subject

BOMBS = {
    "BraTS20_Training_001": (800, np.int16),
    "BraTS20_Training_002": (2000, np.float32),
    "BraTS20_Training_003": (600, np.int16),
}


def main(root: Path, kind: str) -> None:
    write_subject(root, subject_id="BraTS20_Training_004")
    if kind == "bombs":
        data = np.random.default_rng(0).bytes(4096)
        for sid, (side, dtype) in BOMBS.items():
            for name in ("t1", "t1ce", "t2", "flair", "seg"):
                craft(root / sid / f"{sid}_{name}.nii.gz", np.zeros((4, 4, 4), dtype), dim=(side,) * 3, data=data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_subjects(find_subjects(root), multiple=4)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    report = {
        "peak_mib": peak_kib / 1024,
        "loaded": [item.meta.subject_id for item in loaded],
        "warnings": [str(w.message) for w in caught],
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
