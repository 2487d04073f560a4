"""The synthetic BraTS-like phantom: layout, determinism, contrasts, speed."""

from __future__ import annotations


import nibabel as nib
import numpy as np
import pytest

from art_seg.data import find_subjects, load_subject, make_brats_phantom, make_phantom_volumes

SMALL = (32, 32, 24)


def _arrays(subject):
    return [np.asanyarray(nib.load(p).dataobj) for p in (*subject.paths.values(), subject.seg)]


def test_written_in_the_brats2020_layout(tmp_path):
    subjects = make_brats_phantom(tmp_path, n_subjects=2, shape=SMALL, seed=0)
    found = find_subjects(tmp_path)
    assert found == subjects
    assert [s.id for s in found] == ["BraTS20_Training_001", "BraTS20_Training_002"]
    assert found[0].paths["t1ce"] == tmp_path / "BraTS20_Training_001" / "BraTS20_Training_001_t1ce.nii.gz"
    img = nib.load(found[0].paths["flair"])
    assert img.shape == SMALL and img.get_data_dtype() == np.int16
    assert np.allclose(np.abs(np.diag(img.affine)[:3]), 1.0)  # 1 mm isotropic
    seg = np.asanyarray(nib.load(found[0].seg).dataobj)
    assert set(np.unique(seg).tolist()) == {0, 1, 2, 4}


def test_same_seed_identical_other_seed_differs(tmp_path):
    a = make_brats_phantom(tmp_path / "a", 2, SMALL, seed=7)
    b = make_brats_phantom(tmp_path / "b", 2, SMALL, seed=7)
    c = make_brats_phantom(tmp_path / "c", 2, SMALL, seed=8)
    for sa, sb, sc in zip(a, b, c):
        for xa, xb, xc in zip(_arrays(sa), _arrays(sb), _arrays(sc)):
            assert xa.tobytes() == xb.tobytes()
            assert xa.tobytes() != xc.tobytes()
    assert _arrays(a[0])[0].tobytes() != _arrays(a[1])[0].tobytes()  # subjects differ from each other


def test_subject_k_does_not_depend_on_n_subjects():
    image, label = make_phantom_volumes(2, SMALL, seed=1)
    again, again_label = make_phantom_volumes(2, SMALL, seed=1)
    assert image.tobytes() == again.tobytes() and label.tobytes() == again_label.tobytes()
    assert image.dtype == np.float32 and image.shape == (4, *SMALL)


def test_head_background_and_tumour_size():
    image, label = make_phantom_volumes(0, seed=0)
    brain = image[0] > 0
    assert np.array_equal(brain, image.min(axis=0) > 0)  # every modality non-zero exactly in the brain
    for axis in range(3):  # zero background around the head on every side
        assert not np.take(brain, 0, axis).any() and not np.take(brain, -1, axis).any()
    assert 0.2 < brain.mean() < 0.5
    assert np.all(label[~brain] == 0)
    assert 0.03 < (label > 0).sum() / brain.sum() < 0.3  # the tumour is a meaningful fraction of the brain
    assert image.max() < 4000 and image[:, brain].min() >= 1


def test_contrasts_resemble_the_four_series():
    image, label = make_phantom_volumes(1, seed=0)
    t1, t1ce, t2, flair = image
    brain = t1 > 0
    healthy = brain & (label == 0)
    bright_wm = healthy & (t1 > np.percentile(t1[healthy], 75))  # mostly white matter
    csf = healthy & (t2 > np.percentile(t2[healthy], 95))
    enhancing, edema, necrosis = label == 4, label == 2, label == 1

    def mean(volume, mask):
        return float(volume[mask].mean())

    assert mean(t1ce, enhancing) > 1.4 * mean(t1ce, bright_wm)  # enhancing rim bright on T1ce
    assert mean(t1ce, enhancing) > 1.3 * mean(t1, enhancing)
    assert mean(flair, edema) > 1.8 * mean(flair, bright_wm)  # edema bright on FLAIR and T2
    assert mean(t2, edema) > 1.5 * mean(t2, bright_wm)
    assert mean(t1, edema) < 0.8 * mean(t1, bright_wm)  # dark-ish on T1
    assert mean(flair, csf) < 0.5 * mean(flair, bright_wm)  # CSF suppressed on FLAIR, bright on T2
    assert mean(t1ce, necrosis) < 0.5 * mean(t1ce, enhancing)  # dark necrotic core inside the rim


def test_loads_and_preprocesses(tmp_path):
    (subject,) = make_brats_phantom(tmp_path, 1, seed=0)
    image, label, meta = load_subject(subject, multiple=8, margin=0)
    assert image.dtype == np.float32 and all(n % 8 == 0 for n in meta.shape)
    assert all(c < n for c, n in zip(meta.crop_pad.crop_shape, (64, 64, 48)))  # background around the brain
    assert set(np.unique(label).tolist()) == {0, 1, 2, 3}


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="n_subjects must be >= 1, got 0"):
        make_brats_phantom(tmp_path, 0)
    with pytest.raises(ValueError, match="shape must be >= 16, got 8"):
        make_brats_phantom(tmp_path, 1, shape=(8, 32, 32))
    with pytest.raises(ValueError, match=r"shape must be \(D, H, W\)"):
        make_phantom_volumes(0, (32, 32))
    with pytest.raises(ValueError, match="spacing must be > 0.0"):
        make_brats_phantom(tmp_path, 1, spacing=0.0)
