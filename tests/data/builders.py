"""Build tiny BraTS folders of each year's naming convention with nibabel, for the data-layer tests."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np

SHAPE = (12, 12, 8)
AFFINE = np.diag([-1.0, -1.0, 1.0, 1.0])
# (subject id, relative folder, file suffix of each modality t1, t1ce, t2, flair, seg, separator)
LAYOUTS = {
    "brats2018": ("Brats18_2013_2_1", "HGG/Brats18_2013_2_1", ("t1", "t1ce", "t2", "flair", "seg"), "_"),
    "brats2020": ("BraTS20_Training_001", "BraTS20_Training_001", ("t1", "t1ce", "t2", "flair", "seg"), "_"),
    "brats2021": ("BraTS2021_00000", "BraTS2021_00000", ("t1", "t1ce", "t2", "flair", "seg"), "_"),
    "brats2023": ("BraTS-GLI-00000-000", "BraTS-GLI-00000-000", ("t1n", "t1c", "t2w", "t2f", "seg"), "-"),
    "brats2024": ("BraTS-GLI-00005-100", "BraTS-GLI-00005-100", ("t1n", "t1c", "t2w", "t2f", "seg"), "-"),
}
#: The label convention discovery gives each layout.
LAYOUT_CONVENTIONS = {"brats2023": "brats2023", "brats2024": "brats2024"}
#: MSD Task01 BrainTumour: channels in file order, and its labels (value -> name).
MSD_MODALITY = {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}
MSD_LABELS = {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"}
#: art_seg modality -> MSD file channel, and art_seg class -> MSD label value.
MSD_CHANNEL_OF = {"t1": 1, "t1ce": 2, "t2": 3, "flair": 0}
MSD_VALUE_OF_CLASS = (0, 2, 1, 3)


def tiny_case(seed: int = 0, shape: tuple[int, ...] = SHAPE, label_values: tuple[int, ...] = (1, 2, 4)):
    """Four positive 'modalities' inside a box-shaped brain (0 outside) and a label map with ``label_values``.

    Returns ``image (4, *shape) float32`` (integer-valued, so int16 storage is exact) and ``label`` uint8.
    """
    rng = np.random.default_rng(seed)
    image = np.zeros((4, *shape), dtype=np.float32)
    brain = (slice(2, shape[0] - 2), slice(1, shape[1] - 2), slice(1, shape[2] - 1))
    image[(slice(None), *brain)] = rng.integers(50, 1000, size=(4, *image[0][brain].shape))
    label = np.zeros(shape, dtype=np.uint8)
    label[4:7, 4:7, 3:5] = label_values[1]
    label[5:7, 5:7, 3:5] = label_values[2]
    label[5, 5, 4] = label_values[0]
    return image, label


def save(path: Path, array: np.ndarray, affine: np.ndarray = AFFINE, dtype=None) -> Path:
    """Save with nibabel directly (independent of art_seg's writer)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(array if dtype is None else array.astype(dtype), affine)
    nib.save(img, path)
    return path


def write_subject(
    root: Path,
    layout: str = "brats2020",
    *,
    ext: str = ".nii.gz",
    seed: int = 0,
    subject_id: str | None = None,
    with_seg: bool = True,
    label_values: tuple[int, ...] | None = None,
    shape: tuple[int, ...] = SHAPE,
) -> dict[str, Path]:
    """Write one subject in ``layout`` under ``root``; returns suffix -> path (plus ``"image"``/``"label"`` arrays)."""
    default_id, folder, suffixes, sep = LAYOUTS[layout]
    if subject_id is not None:
        folder = folder.replace(default_id, subject_id)
    else:
        subject_id = default_id
    if label_values is None:
        label_values = (1, 2, 3) if layout in ("brats2023", "brats2024") else (1, 2, 4)
    image, label = tiny_case(seed, shape, label_values)
    paths: dict = {}
    for c, suffix in enumerate(suffixes[:4]):
        paths[suffix] = save(root / folder / f"{subject_id}{sep}{suffix}{ext}", image[c], dtype=np.int16)
    if with_seg:
        paths["seg"] = save(root / folder / f"{subject_id}{sep}seg{ext}", label, dtype=np.uint8)
    paths["image"], paths["label"] = image, label
    return paths


def craft(
    path: Path,
    array: np.ndarray,
    *,
    dim: tuple[int, ...] | None = None,
    pixdim: tuple[float, ...] | None = None,
    data: bytes | None = None,
    members: int = 1,
) -> Path:
    """Write a NIfTI-1 file whose header lies: ``dim[1:4]`` / ``pixdim[1:4]`` set after nibabel wrote them.

    nibabel checks and fixes such fields when it saves (e.g. a negative pixdim becomes positive), so the header
    block is patched here and the bytes written directly. ``data`` replaces the voxel bytes after the header;
    ``members`` > 1 splits a ``.gz`` file into that many gzip members (valid gzip, as ``cat a.gz b.gz`` makes).
    """
    raw = nib.Nifti1Image(array, AFFINE).to_bytes()
    header = nib.Nifti1Header(binaryblock=raw[:348])
    if dim is not None:
        header["dim"][1 : 1 + len(dim)] = dim
    if pixdim is not None:
        header["pixdim"][1 : 1 + len(pixdim)] = pixdim
    offset = int(header["vox_offset"])
    blob = header.binaryblock + raw[348:offset] + (raw[offset:] if data is None else data)
    if path.name.endswith(".gz"):
        cuts = np.linspace(0, len(blob), members + 1).astype(int)
        blob = b"".join(gzip.compress(blob[a:b], mtime=0) for a, b in zip(cuts[:-1], cuts[1:]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    return path


def post_treatment_label(shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    """tiny_case's label in BraTS 2024 values (1 NETC, 2 SNFH, 3 ET) plus a resection cavity (4) of 2x2x2 voxels."""
    _, label = tiny_case(0, shape, (1, 2, 3))
    label[8:10, 2:4, 2:4] = 4
    return label


def write_json(path: Path, content: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=1))
    return path


def write_nnunet_case(
    root: Path, case: str, image: np.ndarray, label: np.ndarray | None, *, folder: str = "Tr", ending: str = ".nii.gz"
) -> None:
    """``images<folder>/<case>_000k<ending>`` per channel of ``image`` (C, *spatial) and ``labels<folder>/<case>``."""
    for k, channel in enumerate(image):
        save(root / f"images{folder}" / f"{case}_{k:04d}{ending}", channel, dtype=np.int16)
    if label is not None:
        save(root / f"labels{folder}" / f"{case}{ending}", label, dtype=np.uint8)


def write_msd_task(root: Path, cases: dict[str, tuple[np.ndarray, np.ndarray | None]], **extra) -> dict:
    """A Decathlon Task01-like folder: one 4-D ``(x, y, z, C)`` image per case (channels in ``MSD_MODALITY``
    order), 3-D labels, and its dataset.json (``extra`` keys replace the defaults)."""
    training, test = [], []
    for case, (image, label) in cases.items():
        save(root / ("imagesTr" if label is not None else "imagesTs") / f"{case}.nii.gz", np.moveaxis(image, 0, -1),
             dtype=np.float32)  # fmt: skip
        if label is not None:
            save(root / "labelsTr" / f"{case}.nii.gz", label, dtype=np.uint8)
            training.append({"image": f"./imagesTr/{case}.nii.gz", "label": f"./labelsTr/{case}.nii.gz"})
        else:
            test.append(f"./imagesTs/{case}.nii.gz")
    content = {
        "name": "BRATS",
        "tensorImageSize": "4D",
        "modality": MSD_MODALITY,
        "labels": MSD_LABELS,
        "numTraining": len(training),
        "numTest": len(test),
        "training": training,
        "test": test,
        **extra,
    }
    write_json(root / "dataset.json", content)
    return content
