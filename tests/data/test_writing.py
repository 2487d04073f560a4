"""Writing predictions, adversarial volumes and perturbations over the source scans."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from art_seg.data import (
    find_subjects,
    load_subject,
    write_perturbation,
    write_prediction,
    write_volume,
)
from tests.data.builders import AFFINE, post_treatment_label, save, write_subject


@pytest.fixture
def loaded(tmp_path):
    written = write_subject(tmp_path / "data")
    image, label, meta = load_subject(find_subjects(tmp_path / "data")[0], margin=1, multiple=8)
    return written, image, label, meta


@pytest.mark.parametrize("layout", ["brats2020", "brats2023"])
def test_prediction_roundtrip_keeps_labels_and_affine(tmp_path, layout):
    written = write_subject(tmp_path / "data", layout)
    (subject,) = find_subjects(tmp_path / "data")
    image, label, meta = load_subject(subject, margin=1, multiple=8)
    assert meta.shape != meta.original_shape  # cropped and padded
    path = write_prediction(tmp_path / "pred.nii.gz", label, meta)
    img = nib.load(path)
    assert img.get_data_dtype() == np.uint8
    assert img.shape == (12, 12, 8)
    np.testing.assert_array_equal(img.affine, AFFINE)
    np.testing.assert_array_equal(np.asanyarray(img.dataobj), written["label"])  # BraTS values back
    # and it loads again as the same classes
    path.rename(subject.seg)
    _, again, _ = load_subject(subject, margin=1, multiple=8)
    np.testing.assert_array_equal(again, label)


def test_source_header_is_kept(tmp_path):
    written = write_subject(tmp_path / "data")
    img = nib.load(written["t1"])
    img.header["descrip"] = b"scanner X, sequence Y"
    img.header.set_xyzt_units("mm", "msec")
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine, img.header), written["t1"])
    _, label, meta = load_subject(find_subjects(tmp_path / "data")[0])
    out = nib.load(write_prediction(tmp_path / "pred.nii.gz", label, meta))
    assert out.header["descrip"].tobytes().rstrip(b"\0") == b"scanner X, sequence Y"
    assert out.header.get_xyzt_units() == ("mm", "msec")
    (vol,) = write_volume(tmp_path / "vol.nii.gz", np.zeros((4, *meta.shape), np.float32), meta)
    assert nib.load(vol).header["descrip"].tobytes().rstrip(b"\0") == b"scanner X, sequence Y"


def test_prediction_from_scores_and_other_convention(tmp_path, loaded):
    written, _, label, meta = loaded
    scores = np.eye(4, dtype=np.float32)[label].transpose(3, 0, 1, 2)
    path = write_prediction(tmp_path / "p.nii", scores, meta, convention="brats2023")
    values = np.asanyarray(nib.load(path).dataobj)
    expected = np.where(written["label"] == 4, 3, written["label"])
    np.testing.assert_array_equal(values, expected)


def test_prediction_bad_inputs(tmp_path, loaded):
    _, _, label, meta = loaded
    with pytest.raises(ValueError, match=r"network grid \(16, 16, 8\)"):
        write_prediction(tmp_path / "p.nii.gz", label[:-1], meta)
    with pytest.raises(ValueError, match="integer classes or"):
        write_prediction(tmp_path / "p.nii.gz", label.astype(np.float32), meta)
    with pytest.raises(ValueError, match=r"classes must be in 0\.\.3"):
        write_prediction(tmp_path / "p.nii.gz", label + 1, meta)
    with pytest.raises(ValueError, match=r"must end in \.nii or \.nii\.gz"):
        write_prediction(tmp_path / "p.png", label, meta)


def test_clean_volume_writes_back_the_source_scan(tmp_path, loaded):
    written, image, _, meta = loaded
    (path,) = write_volume(tmp_path / "adv.nii.gz", image, meta)
    img = nib.load(path)
    assert img.shape == (12, 12, 8, 4) and img.get_data_dtype() == np.float32
    np.testing.assert_array_equal(img.affine, AFFINE)
    data = np.moveaxis(np.asanyarray(img.dataobj), -1, 0)
    np.testing.assert_allclose(data, written["image"], atol=1e-3 * written["image"].max())


def test_volume_per_modality_in_zscore_units(tmp_path, loaded):
    _, image, _, meta = loaded
    paths = write_volume(tmp_path / "case_adv.nii.gz", image, meta, units="zscore", per_modality=True)
    assert [p.name for p in paths] == [f"case_adv_{m}.nii.gz" for m in ("t1", "t1ce", "t2", "flair")]
    flair = np.asanyarray(nib.load(paths[3]).dataobj)
    assert flair.shape == (12, 12, 8)
    np.testing.assert_allclose(meta.crop_pad.apply(flair), image[3], atol=1e-6)


def test_perturbation_units(tmp_path, loaded):
    _, image, _, meta = loaded
    delta = np.zeros_like(image)
    delta[:, meta.brain_mask] = 0.1
    (z_path,) = write_perturbation(tmp_path / "d.nii.gz", delta, meta, units="zscore")
    (o_path,) = write_perturbation(tmp_path / "o.nii.gz", delta, meta)
    z = np.asanyarray(nib.load(z_path).dataobj)
    o = np.asanyarray(nib.load(o_path).dataobj)
    assert float(z.max()) == pytest.approx(0.1, rel=1e-6)
    for c in range(4):
        assert float(o[..., c].max()) == pytest.approx(0.1 * meta.stds[c], rel=1e-5)
    assert float(z.sum()) == pytest.approx(0.1 * 4 * meta.brain_mask.sum(), rel=1e-5)  # nothing lost outside


def test_volume_bad_inputs(tmp_path, loaded):
    _, image, _, meta = loaded
    with pytest.raises(ValueError, match=r"volume must be \(4, \*\(16, 16, 8\)\)"):
        write_volume(tmp_path / "v.nii.gz", image[:3], meta)
    bad = image.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="perturbation must be finite"):
        write_perturbation(tmp_path / "v.nii.gz", bad, meta)
    with pytest.raises(ValueError, match="units must be one of"):
        write_volume(tmp_path / "v.nii.gz", image, meta, units="hu")


def test_post_treatment_prediction_from_five_scores(tmp_path):
    written = write_subject(tmp_path / "data", "brats2024")
    label = post_treatment_label()
    save(written["seg"], label, dtype=np.uint8)
    _, classes, meta = load_subject(find_subjects(tmp_path / "data")[0], margin=1, multiple=8)
    scores = np.eye(5, dtype=np.float32)[classes].transpose(3, 0, 1, 2)
    img = nib.load(write_prediction(tmp_path / "p.nii.gz", scores, meta))
    assert img.shape == label.shape
    np.testing.assert_array_equal(img.affine, AFFINE)
    np.testing.assert_array_equal(np.asanyarray(img.dataobj), label)  # the cavity written back as 4
    with pytest.raises(ValueError, match=r"scores must be \(5, D, H, W\) for the 5 classes of brats2024"):
        write_prediction(tmp_path / "p.nii.gz", scores[:4], meta)
