"""Loading subjects: every layout, float32, metadata, grid checks, batch skipping, memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from art_seg.data import (
    LabelValueError,
    NiftiValidationError,
    SubjectError,
    find_subjects,
    iter_subjects,
    load_subject,
    load_subjects,
)
from art_seg.data import loading
from tests.data.builders import AFFINE, LAYOUTS, craft, post_treatment_label, save, write_subject

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_load_each_layout(tmp_path, layout):
    written = write_subject(tmp_path, layout)
    (subject,) = find_subjects(tmp_path)
    image, label, meta = load_subject(subject, margin=0, multiple=1)
    assert image.dtype == np.float32 and label.dtype == np.int64
    # tiny_case's brain box is [2:10, 1:10, 1:7] of (12, 12, 8)
    assert image.shape == (4, 8, 9, 6) and label.shape == (8, 9, 6)
    assert meta.original_shape == (12, 12, 8)
    assert meta.crop_pad.box == ((2, 10), (1, 10), (1, 7))
    np.testing.assert_array_equal(meta.affine, AFFINE)
    expected = {0: 0, 1: 1, 2: 2, 4: 3, 3: 3}  # value -> class in either convention
    truth = np.vectorize(expected.get)(written["label"])[2:10, 1:10, 1:7]
    np.testing.assert_array_equal(label, truth)
    assert np.bincount(label.ravel()).tolist()[1:] == [1, 10, 7]  # 3x3x2 box - 2x2x2 box; 2x2x2 - 1


def test_zscored_per_modality_over_the_brain(tmp_path):
    write_subject(tmp_path)
    image, _, meta = load_subject(find_subjects(tmp_path)[0], margin=1, multiple=4)
    mask = meta.brain_mask
    assert mask.shape == image.shape[1:] == meta.shape
    for channel in image:
        assert abs(float(channel[mask].mean())) < 1e-5
        assert abs(float(channel[mask].std()) - 1.0) < 1e-4
        assert np.count_nonzero(channel[~mask]) == 0
    assert all(s > 0 for s in meta.stds) and all(m > 0 for m in meta.means)


def test_padding_to_multiple_and_min_shape(tmp_path):
    write_subject(tmp_path)
    image, label, meta = load_subject(find_subjects(tmp_path)[0], margin=0, multiple=4, min_shape=(12, 4, 4))
    assert image.shape[1:] == label.shape == meta.shape == (12, 12, 8)
    assert all(n % 4 == 0 for n in meta.shape)


def test_no_crop_keeps_the_grid(tmp_path):
    write_subject(tmp_path)
    image, _, meta = load_subject(find_subjects(tmp_path)[0], crop=False, multiple=1, normalize=False)
    assert image.shape == (4, 12, 12, 8)
    assert meta.means == (0.0,) * 4 and meta.stds == (1.0,) * 4


def test_subject_without_segmentation(tmp_path):
    write_subject(tmp_path, with_seg=False)
    image, label, meta = load_subject(find_subjects(tmp_path)[0])
    assert label is None and image.shape[0] == 4 and "seg" not in meta.paths


def test_modality_order_is_the_channel_order(tmp_path):
    written = write_subject(tmp_path)
    (subject,) = find_subjects(tmp_path, modalities=("flair", "t1"))
    image, _, meta = load_subject(subject, crop=False, multiple=1, normalize=False)
    assert meta.modalities == ("flair", "t1")
    np.testing.assert_array_equal(image[0], written["image"][3])
    np.testing.assert_array_equal(image[1], written["image"][0])


def test_different_shapes_name_the_file(tmp_path):
    written = write_subject(tmp_path)
    save(written["t2"], np.ones((12, 12, 9)), dtype=np.int16)
    with pytest.raises(NiftiValidationError, match=r"_t2\.nii\.gz: shape \(12, 12, 9\) differs from \(12, 12, 8\)"):
        load_subject(find_subjects(tmp_path)[0])


def test_different_affines_name_the_file(tmp_path):
    written = write_subject(tmp_path)
    shifted = AFFINE.copy()
    shifted[0, 3] = 2.0
    save(written["flair"], written["image"][3], affine=shifted, dtype=np.int16)
    with pytest.raises(NiftiValidationError, match=r"_flair\.nii\.gz: affine differs .*max difference 2 mm"):
        load_subject(find_subjects(tmp_path)[0])


def test_segmentation_on_another_grid(tmp_path):
    written = write_subject(tmp_path)
    save(written["seg"], np.zeros((12, 12, 7)), dtype=np.uint8)
    with pytest.raises(NiftiValidationError, match=r"_seg\.nii\.gz: shape \(12, 12, 7\)"):
        load_subject(find_subjects(tmp_path)[0])


def test_missing_file_after_discovery(tmp_path):
    written = write_subject(tmp_path)
    (subject,) = find_subjects(tmp_path)
    written["t1"].unlink()
    with pytest.raises(NiftiValidationError, match=r"_t1\.nii\.gz: file not found"):
        load_subject(subject)


def test_unknown_label_value_names_file_and_values(tmp_path):
    write_subject(tmp_path, label_values=(1, 2, 5))
    with pytest.raises(LabelValueError, match=r"_seg\.nii\.gz: label map holds value\(s\) \[5\]"):
        load_subject(find_subjects(tmp_path)[0])


def test_2023_values_under_2018_layout_need_the_override(tmp_path):
    write_subject(tmp_path, label_values=(1, 2, 3))
    (subject,) = find_subjects(tmp_path)
    with pytest.raises(LabelValueError, match="label_convention='brats2023'"):
        load_subject(subject)
    _, label, meta = load_subject(subject, label_convention="brats2023")
    assert label.max() == 3 and meta.label_convention == "brats2023"


def test_all_zero_subject(tmp_path):
    written = write_subject(tmp_path)
    for key in ("t1", "t1ce", "t2", "flair"):
        save(written[key], np.zeros((12, 12, 8)), dtype=np.int16)
    with pytest.raises(NiftiValidationError, match="is all zero"):
        load_subject(find_subjects(tmp_path)[0])


def _damage(written: dict, kind: str) -> None:
    if kind == "empty":
        written["t1"].write_bytes(b"")
    elif kind == "truncated":
        written["t2"].write_bytes(written["t2"].read_bytes()[:-40])
    elif kind == "crc":
        data = bytearray(written["flair"].read_bytes())
        data[len(data) // 2] ^= 0xFF
        written["flair"].write_bytes(bytes(data))
    elif kind == "4d":
        save(written["t1ce"], np.ones((12, 12, 8, 2)), dtype=np.int16)
    elif kind == "label":
        save(written["seg"], np.full((12, 12, 8), 7), dtype=np.uint8)
    elif kind == "nan spacing":  # aborted a whole `evaluate --hd95` run before issue 12.13
        craft(written["t2"], written["image"][2].astype(np.int16), pixdim=(1.0, np.nan, 1.0))
    elif kind == "half volume":  # every file's header says 4 of its 8 slices: half loaded, silently, before 12.9
        for c, key in enumerate(("t1", "t1ce", "t2", "flair")):
            craft(written[key], written["image"][c].astype(np.int16), dim=(12, 12, 4))
        craft(written["seg"], written["label"], dim=(12, 12, 4))


@pytest.mark.parametrize("kind", ["empty", "truncated", "crc", "4d", "label", "nan spacing", "half volume"])
def test_batch_skips_only_the_bad_subject(tmp_path, kind):
    for k in (1, 2, 3):
        written = write_subject(tmp_path, subject_id=f"BraTS20_Training_00{k}", seed=k)
        if k == 2:
            _damage(written, kind)
    subjects = find_subjects(tmp_path)
    with pytest.warns(UserWarning, match=r"skipping subject BraTS20_Training_002: .*BraTS20_Training_002_") as record:
        loaded = load_subjects(subjects, multiple=4)
    assert len(record) == 1
    assert [item.meta.subject_id for item in loaded] == ["BraTS20_Training_001", "BraTS20_Training_003"]
    with pytest.raises((NiftiValidationError, LabelValueError), match="BraTS20_Training_002_"):
        load_subjects(subjects, on_error="raise")


def test_bad_options_are_not_skipped(tmp_path):
    write_subject(tmp_path)
    subjects = find_subjects(tmp_path)
    with pytest.raises(ValueError, match="multiple must be >= 1"):
        load_subjects(subjects, multiple=0)
    with pytest.raises(ValueError, match="label_convention must be one of"):
        load_subject(subjects[0], label_convention="brats2015")
    with pytest.raises(TypeError, match="subject must be Subject"):
        load_subject("BraTS20_Training_001")


def test_memory_float32_and_at_most_two_and_a_half_volumes(tmp_path):
    """The peak of traced allocations while loading stays <= 2.5 x one (4, D, H, W) float32 volume."""
    shape = (64, 64, 40)
    rng = np.random.default_rng(0)
    grid = np.indices(shape).astype(np.float32)
    centre = (np.array(shape, dtype=np.float32) - 1)[:, None, None, None] / 2
    brain = (((grid - centre) / (centre + 1)) ** 2).sum(axis=0) < 1.1
    folder = tmp_path / "BraTS20_Training_001"
    for name in ("t1", "t1ce", "t2", "flair"):
        save(folder / f"BraTS20_Training_001_{name}.nii.gz", rng.normal(500, 50, shape) * brain, dtype=np.float32)
    label = np.where(brain, 2, 0).astype(np.uint8)
    label[30:40, 30:40, 15:25] = 4
    save(folder / "BraTS20_Training_001_seg.nii.gz", label, dtype=np.uint8)
    del grid, brain, label
    (subject,) = find_subjects(tmp_path)
    one_volume = 4 * int(np.prod(shape)) * 4

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        image, label, _ = load_subject(subject, multiple=8)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert image.dtype == np.float32
    assert image.nbytes >= 0.9 * one_volume  # the brain fills the grid: cropping does not shrink it
    assert peak <= 2.5 * one_volume, f"peak {peak / one_volume:.2f} x one (4, D, H, W) float32 volume"
    assert label.dtype == np.int64 and int(label.max()) == 3


def test_no_float64_anywhere_in_the_result(tmp_path):
    written = write_subject(tmp_path)
    save(written["t1"], written["image"][0], dtype=np.float64)
    image, _, _ = load_subject(find_subjects(tmp_path)[0])
    assert image.dtype == np.float32
    img = nib.load(written["t1"])
    assert img.in_memory is False  # nibabel's cache was not filled on our image objects either


def test_iter_subjects_checks_on_error_before_reading_anything() -> None:
    with pytest.raises(ValueError, match=r"on_error must be one of \('skip', 'raise'\), got 'ignore'"):
        iter_subjects(iter(()), on_error="ignore")  # raises on the call, not at the first next()


def _peak_memory(folder: Path, kind: str) -> dict:
    """Run ``tests.data._memory_worker`` on a fresh folder in a fresh process; its JSON report."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    command = [sys.executable, "-m", "tests.data._memory_worker", str(folder), kind]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{kind} worker failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss is in KiB on Linux only")
def test_declared_size_bombs_are_skipped_before_allocating(tmp_path):
    """4 KB .nii.gz files declaring 800^3 int16 (1 GB), 2000^3 float32 (32 GB) and 600^3 int16 (432 MB, under
    MAX_VOXELS): each subject is skipped with a warning naming the file, the good subject after them still loads,
    and the process peaks at most 200 MB above the same process loading only the good subject (``pytest -s``
    prints the figures)."""
    good = _peak_memory(tmp_path / "good", "good")
    bombs = _peak_memory(tmp_path / "bombs", "bombs")
    print(f"\npeak memory (ru_maxrss): good subject {good['peak_mib']:.1f} MiB, bombs then the good subject "
          f"{bombs['peak_mib']:.1f} MiB, difference {bombs['peak_mib'] - good['peak_mib']:+.1f} MiB")  # fmt: skip
    assert good["loaded"] == bombs["loaded"] == ["BraTS20_Training_004"]
    assert bombs["peak_mib"] - good["peak_mib"] <= 200 / 1.048576  # 200 MB in MiB
    skipped = [w for w in bombs["warnings"] if w.startswith("skipping subject")]
    assert len(skipped) == 3
    problems = [
        "shape (800, 800, 800) has 512000000 voxels, more than art_seg.data.nifti.MAX_VOXELS",
        "shape (2000, 2000, 2000) has 8000000000 voxels, more than art_seg.data.nifti.MAX_VOXELS",
        "the header declares shape (600, 600, 600) int16 (432000352 bytes), more than a",
    ]
    for k, (warning, problem) in enumerate(zip(skipped, problems), start=1):
        assert f"BraTS20_Training_00{k}_t1.nii.gz: {problem}" in warning


def test_out_of_memory_anywhere_in_loading_skips_the_subject(tmp_path, monkeypatch):
    """A MemoryError after the files are read (here in the brain mask) is a per-subject error, not a traceback."""
    for k in (1, 2, 3):
        write_subject(tmp_path, subject_id=f"BraTS20_Training_00{k}", seed=k)
    subjects = find_subjects(tmp_path)
    real_mask = loading.brain_mask
    calls = {"n": 0}

    def no_memory_for_the_second(image):
        calls["n"] += 1
        if calls["n"] == 3:  # two calls per subject: the third is subject 002's first
            raise MemoryError("Unable to allocate 1.00 GiB for an array")
        return real_mask(image)

    monkeypatch.setattr(loading, "brain_mask", no_memory_for_the_second)
    with pytest.warns(UserWarning, match=r"skipping subject BraTS20_Training_002: .*BraTS20_Training_002: out of "
                      r"memory loading subject BraTS20_Training_002 \(Unable to allocate 1\.00 GiB"):  # fmt: skip
        loaded = load_subjects(subjects, multiple=4)
    assert [item.meta.subject_id for item in loaded] == ["BraTS20_Training_001", "BraTS20_Training_003"]


def test_every_subject_skipped_says_how_many_and_why(tmp_path):
    """Before issue 12.13 the iteration just ended: `art-seg attack` wrote 0 subjects and exited 0."""
    for k, kind in ((1, "nan spacing"), (2, "empty"), (3, "half volume")):
        _damage(write_subject(tmp_path, subject_id=f"BraTS20_Training_00{k}", seed=k), kind)
    subjects = find_subjects(tmp_path)
    with pytest.warns(UserWarning, match="skipping subject"):
        with pytest.raises(
            SubjectError,
            match=r"^no subject could be loaded: 3 subjects were skipped: "
            r"BraTS20_Training_001: .*_t2\.nii\.gz: voxel spacing .*; "
            r"BraTS20_Training_002: .*_t1\.nii\.gz: empty file .*; "
            r"BraTS20_Training_003: .*_t1\.nii\.gz: data block larger than the header declares",
        ):
            list(iter_subjects(subjects))
    assert list(iter_subjects([])) == [] and load_subjects([]) == []  # nothing given: nothing skipped, no error


def test_post_treatment_subject_loads_five_classes(tmp_path):
    written = write_subject(tmp_path, "brats2024")
    label = post_treatment_label()
    save(written["seg"], label, dtype=np.uint8)
    (subject,) = find_subjects(tmp_path)
    _, classes, meta = load_subject(subject, crop=False, multiple=1)
    assert meta.label_convention == "brats2024"
    np.testing.assert_array_equal(classes, label.astype(np.int64))  # values are the classes, cavity = 4
    assert np.bincount(classes.ravel()).tolist()[1:] == [1, 10, 7, 8]


def test_cavity_under_2023_names_the_post_treatment_convention(tmp_path):
    """A post-treatment label map read as 2023 (here a -000 time point alone): value 4 without 3 used to get only
    the hint "pass label_convention='brats2018'", which loads the cavity as enhancing tumour."""
    written = write_subject(tmp_path, "brats2023")
    label = post_treatment_label()
    label[label == 3] = 2  # no enhancing tumour left: values {0, 1, 2, 4}
    save(written["seg"], label, dtype=np.uint8)
    (subject,) = find_subjects(tmp_path)
    with pytest.raises(LabelValueError, match=r"seg\.nii\.gz.*label_convention='brats2024' \(BraTS 2024 "
                       r"post-treatment glioma: 1 NETC, 2 SNFH, 3 enhancing tumour, 4 resection cavity\)"):  # fmt: skip
        load_subject(subject)
    _, classes, _ = load_subject(subject, label_convention="brats2024")
    assert classes.max() == 4
    save(written["seg"], post_treatment_label(), dtype=np.uint8)  # 3 and 4 together: brats2024 only
    with pytest.raises(LabelValueError, match="pass label_convention='brats2024'") as info:
        load_subject(subject)
    assert "brats2018" not in str(info.value)
