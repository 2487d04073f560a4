"""Splits by subject, the torch Dataset and the stacked arrays for ART."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

from art_seg.data import (
    IGNORE_INDEX,
    BraTSDataset,
    SubjectError,
    find_subjects,
    load_arrays,
    load_subjects,
    train_val_split,
    write_prediction,
)
from tests.data.builders import SHAPE, write_subject


@pytest.fixture
def root(tmp_path):
    for k in range(1, 5):
        write_subject(tmp_path, subject_id=f"BraTS20_Training_00{k}", seed=k)
    return tmp_path


def test_split_by_subject_is_seeded_disjoint_and_order_free():
    ids = [f"s{i:02d}" for i in range(20)]
    train, val = train_val_split(ids, 0.25, seed=1)
    assert len(val) == 5 and len(train) == 15
    assert not set(train) & set(val) and set(train) | set(val) == set(ids)
    assert train_val_split(ids[::-1], 0.25, seed=1)[1] == val[::-1]  # same subjects, input order kept
    assert train_val_split(ids, 0.25, seed=2)[1] != val
    assert train_val_split(ids[:3], 0.01, seed=0)[1].__len__() == 1


def test_split_errors(root):
    with pytest.raises(ValueError, match="at least 2 subjects"):
        train_val_split(["a"], 0.5)
    with pytest.raises(ValueError, match=r"repeated: \['a'\]"):
        train_val_split(["a", "a", "b"], 0.5)
    with pytest.raises(ValueError, match="val_fraction must be < 1.0"):
        train_val_split(["a", "b"], 1.0)
    subjects = find_subjects(root)
    train, val = train_val_split(subjects, 0.5, seed=0)
    assert {s.id for s in train}.isdisjoint({s.id for s in val}) and len(val) == 2


def test_whole_volume_dataset(root):
    ds = BraTSDataset(find_subjects(root), multiple=8)
    assert len(ds) == 4 and ds.subject_ids[0] == "BraTS20_Training_001"
    x, y = ds[0]
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.shape[0] == 4 and tuple(x.shape[1:]) == tuple(y.shape) == ds.meta(0).shape
    assert all(n % 8 == 0 for n in y.shape)
    assert set(torch.unique(y).tolist()) == {0, 1, 2, 3}
    with pytest.raises(IndexError, match="out of range"):
        ds[4]


def test_patch_dataset_is_reproducible_and_changes_with_epoch(root):
    subjects = find_subjects(root)
    a = BraTSDataset(subjects, patch_size=(8, 8, 4), foreground_prob=0.5, samples_per_subject=3, seed=0)
    b = BraTSDataset(subjects, patch_size=(8, 8, 4), foreground_prob=0.5, samples_per_subject=3, seed=0, cache=False)
    assert len(a) == 12
    x, y = a[5]
    assert x.shape == (4, 8, 8, 4) and y.shape == (8, 8, 4)
    assert torch.equal(a[5][0], b[5][0]) and torch.equal(a[5][1], b[5][1])
    before = torch.stack([a[i][0] for i in range(len(a))])
    a.set_epoch(1)
    after = torch.stack([a[i][0] for i in range(len(a))])
    assert not torch.equal(before, after)
    loader = torch.utils.data.DataLoader(a, batch_size=4, shuffle=True)
    xb, yb = next(iter(loader))
    assert xb.shape == (4, 4, 8, 8, 4) and yb.dtype == torch.int64


def test_patch_options_without_patches_warn(root):
    with pytest.warns(UserWarning, match="only apply to patch sampling; ignored without patch_size"):
        ds = BraTSDataset(find_subjects(root), foreground_prob=0.9, samples_per_subject=3)
    assert len(ds) == 4


def test_unlabelled_subjects(tmp_path):
    write_subject(tmp_path, with_seg=False)
    ds = BraTSDataset(find_subjects(tmp_path))
    _, y = ds[0]
    assert torch.all(y == IGNORE_INDEX)
    with pytest.raises(ValueError, match="patch sampling needs segmentations"):
        BraTSDataset(find_subjects(tmp_path), patch_size=4)
    x, y, metas = load_arrays(find_subjects(tmp_path), multiple=4)
    assert y is None and x.shape[0] == 1


def test_dataset_skips_a_bad_subject(root):
    (root / "BraTS20_Training_003" / "BraTS20_Training_003_t2.nii.gz").write_bytes(b"")
    with pytest.warns(UserWarning, match=r"skipping subject BraTS20_Training_003: .*_t2\.nii\.gz: empty file"):
        ds = BraTSDataset(find_subjects(root), patch_size=4)
    assert ds.subject_ids == ["BraTS20_Training_001", "BraTS20_Training_002", "BraTS20_Training_004"]


def test_dataset_of_only_bad_subjects_says_how_many_and_why(root):
    for k in (1, 2, 3, 4):
        (root / f"BraTS20_Training_00{k}" / f"BraTS20_Training_00{k}_t2.nii.gz").write_bytes(b"")
    with pytest.warns(UserWarning, match="skipping subject"):
        with pytest.raises(SubjectError, match=r"no subjects to build a dataset from: 4 subjects were skipped: "
                           r"BraTS20_Training_001: .*_t2\.nii\.gz: empty file.*; and 1 more$"):  # fmt: skip
            BraTSDataset(find_subjects(root))
    with pytest.warns(UserWarning, match="skipping subject"):
        with pytest.raises(SubjectError, match=r"no subject could be loaded: 4 subjects were skipped"):
            load_arrays(find_subjects(root))


def test_load_arrays_for_art(root):
    x, y, metas = load_arrays(find_subjects(root), multiple=8, margin=0)
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert x.shape == (4, 4, 8, 16, 8) and y.shape == (4, 8, 16, 8)
    assert [m.shape for m in metas] == [(8, 16, 8)] * 4
    fixed, _, _ = load_arrays(find_subjects(root), shape=(16, 16, 16))
    assert fixed.shape == (4, 4, 16, 16, 16)
    with pytest.raises(ValueError, match="smaller than the brain crop"):
        load_arrays(find_subjects(root), shape=(4, 4, 4))


def test_stacked_metas_write_back_exactly(tmp_path, root):
    subjects = find_subjects(root)
    x, y, metas = load_arrays(subjects, multiple=8)
    singles = load_subjects(subjects, multiple=1)
    for n, (single, meta) in enumerate(zip(singles, metas)):
        np.testing.assert_array_equal(meta.crop_pad.extract(y[n]), single.label)
        np.testing.assert_array_equal(meta.crop_pad.extract(x[n]), single.image)
        path = write_prediction(tmp_path / f"{meta.subject_id}.nii.gz", y[n], meta)
        written = np.asanyarray(nib.load(path).dataobj)
        source = np.asanyarray(nib.load(subjects[n].seg).dataobj)
        assert written.shape == SHAPE
        np.testing.assert_array_equal(written, source)


def test_to_numpy_matches_load_arrays(root):
    subjects = find_subjects(root)
    ds = BraTSDataset(subjects, multiple=1)
    x1, y1, _ = ds.to_numpy(multiple=8)
    x2, y2, _ = load_arrays(subjects, multiple=8)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
