"""Validated NIfTI reading: every bad file is a clear error naming it; atomic writing."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from art_seg.data import NiftiValidationError, check_gzip_integrity, load_nifti, save_nifti
from art_seg.data import nifti
from tests.data.builders import AFFINE, craft, save


@pytest.fixture
def volume() -> np.ndarray:
    return np.random.default_rng(0).normal(100, 20, size=(12, 12, 8)).astype(np.float32)


@pytest.mark.parametrize("ext", [".nii.gz", ".nii"])
@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.float64, np.uint8])
def test_loads_as_float32(tmp_path, volume, ext, dtype):
    path = save(tmp_path / f"scan{ext}", np.clip(volume, 0, 255), dtype=dtype)
    data, img = load_nifti(path)
    assert data.dtype == np.float32
    assert data.shape == (12, 12, 8)
    np.testing.assert_allclose(data, np.clip(volume, 0, 255).astype(dtype), rtol=1e-6)
    np.testing.assert_array_equal(img.affine, AFFINE)


def test_header_scaling_is_applied_in_float32(tmp_path):
    img = nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), AFFINE)
    img.header.set_slope_inter(0.5, 10.0)
    nib.save(img, tmp_path / "scaled.nii.gz")
    data, _ = load_nifti(tmp_path / "scaled.nii.gz")
    assert data.dtype == np.float32
    np.testing.assert_allclose(data.ravel(), np.arange(24) * 0.5 + 10.0)


def test_trailing_singleton_axis_is_accepted(tmp_path, volume):
    path = save(tmp_path / "scan.nii.gz", volume[..., None])
    assert load_nifti(path)[0].shape == (12, 12, 8)


def test_missing_file(tmp_path):
    with pytest.raises(NiftiValidationError, match=r"absent\.nii\.gz: file not found"):
        load_nifti(tmp_path / "absent.nii.gz")


def test_empty_file(tmp_path):
    (tmp_path / "empty.nii.gz").write_bytes(b"")
    with pytest.raises(NiftiValidationError, match=r"empty\.nii\.gz: empty file \(0 bytes\)"):
        load_nifti(tmp_path / "empty.nii.gz")


def test_truncated_gzip(tmp_path, volume):
    path = save(tmp_path / "cut.nii.gz", volume)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(NiftiValidationError, match=r"cut\.nii\.gz: truncated gzip stream"):
        load_nifti(path)


def test_truncated_uncompressed(tmp_path, volume):
    path = save(tmp_path / "cut.nii", volume)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(NiftiValidationError, match=r"cut\.nii: truncated: \d+ bytes, the header needs \d+"):
        load_nifti(path)


def test_flipped_byte_in_compressed_stream(tmp_path, volume):
    path = save(tmp_path / "flip.nii.gz", volume)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(NiftiValidationError, match=r"flip\.nii\.gz: corrupt gzip data"):
        load_nifti(path)


def test_damage_nibabel_misses_is_caught(tmp_path, volume):
    """A stored (level-0) gzip stream with one flipped voxel byte: nibabel reads wrong voxels silently."""
    raw = nib.Nifti1Image(volume, AFFINE).to_bytes()
    blob = bytearray(gzip.compress(raw, compresslevel=0, mtime=0))
    offset = 10 + 5 + 352 + 4 * 100  # gzip header, stored-block header, NIfTI header, voxel 100
    blob[offset + 3] ^= 0x40
    path = tmp_path / "silent.nii.gz"
    path.write_bytes(bytes(blob))
    silently_wrong = np.asanyarray(nib.load(path).dataobj)
    assert np.count_nonzero(silently_wrong != volume) == 1  # nibabel alone returns a wrong voxel, no error
    with pytest.raises(NiftiValidationError, match=r"silent\.nii\.gz: corrupt gzip data, CRC or length check failed"):
        load_nifti(path)
    assert load_nifti(path, check_crc=False)[0].shape == volume.shape  # the check is what catches it


def test_four_d_volume(tmp_path, volume):
    path = save(tmp_path / "four.nii.gz", np.stack([volume, volume], axis=-1))
    with pytest.raises(NiftiValidationError, match=r"four\.nii\.gz: expected a 3D volume, got shape \(12, 12, 8, 2\)"):
        load_nifti(path)


def test_two_d_volume(tmp_path):
    path = save(tmp_path / "flat.nii.gz", np.ones((5, 6), dtype=np.float32))
    with pytest.raises(NiftiValidationError, match=r"flat\.nii\.gz: expected a 3D volume, got shape \(5, 6\)"):
        load_nifti(path)


def test_not_nifti(tmp_path):
    path = tmp_path / "text.nii"
    path.write_bytes(b"this is not a nifti file at all" * 20)
    with pytest.raises(NiftiValidationError, match=r"text\.nii: cannot read as NIfTI"):
        load_nifti(path)


def test_nan_voxels(tmp_path, volume):
    volume[1, 2, 3] = np.nan
    path = save(tmp_path / "nan.nii.gz", volume)
    with pytest.raises(NiftiValidationError, match=r"nan\.nii\.gz: 1 voxel\(s\) are NaN or Inf"):
        load_nifti(path)


def test_check_gzip_integrity_passes_a_good_file(tmp_path, volume):
    path = save(tmp_path / "good.nii.gz", volume)
    assert check_gzip_integrity(path) is None


def test_save_is_atomic_and_roundtrips(tmp_path, volume):
    header = nib.Nifti1Header()
    header["descrip"] = b"source scan"
    path = save_nifti(tmp_path / "out" / "vol.nii.gz", volume, AFFINE, header, np.float32)
    assert sorted(p.name for p in path.parent.iterdir()) == ["vol.nii.gz"]  # no temporary left
    data, img = load_nifti(path)
    np.testing.assert_array_equal(data, volume)
    np.testing.assert_array_equal(img.affine, AFFINE)
    assert img.header["descrip"].tobytes().rstrip(b"\0") == b"source scan"
    assert img.get_data_dtype() == np.float32


def test_save_rejects_bad_suffix_and_affine(tmp_path, volume):
    with pytest.raises(ValueError, match=r"must end in \.nii or \.nii\.gz"):
        save_nifti(tmp_path / "vol.npy", volume, AFFINE)
    with pytest.raises(ValueError, match=r"affine must be \(4, 4\)"):
        save_nifti(tmp_path / "vol.nii", volume, np.eye(3))


@pytest.mark.parametrize("check_crc", [True, False])
@pytest.mark.parametrize("ext", [".nii", ".nii.gz"])
def test_header_declaring_fewer_slices_than_the_data_holds(tmp_path, volume, ext, check_crc):
    """dim[3] = 4 over 8 slices of data: nibabel alone loads the first half of the volume without a word."""
    path = craft(tmp_path / f"half{ext}", volume, dim=(12, 12, 4))
    assert nib.load(path).shape == (12, 12, 4)  # what nibabel alone would load
    name = path.name.replace(".", r"\.")
    with pytest.raises(
        NiftiValidationError,
        match=rf"{name}: data block larger than the header declares: shape \(12, 12, 4\) float32 is 2304 bytes "
        r"of voxels, but the file holds 4608",
    ):
        load_nifti(path, check_crc=check_crc)


@pytest.mark.parametrize("check_crc", [True, False])
@pytest.mark.parametrize("members", [1, 3])
def test_multi_member_gzip_is_sized_as_a_whole(tmp_path, volume, members, check_crc):
    """gzip's trailer sizes only the last member: a good multi-member file loads, extra data in it is caught."""
    good = craft(tmp_path / "good.nii.gz", volume, members=members)
    np.testing.assert_array_equal(load_nifti(good, check_crc=check_crc)[0], volume)
    half = craft(tmp_path / "half.nii.gz", volume, dim=(12, 12, 4), members=members)
    with pytest.raises(NiftiValidationError, match=r"half\.nii\.gz: data block larger than the header declares"):
        load_nifti(half, check_crc=check_crc)


@pytest.mark.parametrize("check_crc", [True, False])
def test_gzip_data_shorter_than_declared_is_caught_before_reading(tmp_path, check_crc):
    """A (64, 64, 64) float32 header (1 MiB) over 4 KB of voxels: found by sizing the stream, not by reading."""
    data = np.random.default_rng(0).bytes(4096)
    path = craft(tmp_path / "short.nii.gz", np.zeros((4, 4, 4), np.float32), dim=(64, 64, 64), data=data)
    with pytest.raises(NiftiValidationError, match=r"short\.nii\.gz: truncated: 4448 bytes decompressed, the "
                       r"header needs 1048928 for shape \(64, 64, 64\) float32"):  # fmt: skip
        load_nifti(path, check_crc=check_crc)


def _bomb(path: Path, side: int, dtype) -> Path:
    """A ~4 KB .nii.gz whose header declares side^3 voxels of dtype over 4 KB of random voxel bytes."""
    data = np.random.default_rng(0).bytes(4096)
    path = craft(path, np.zeros((4, 4, 4), dtype), dim=(side,) * 3, data=data)
    assert path.stat().st_size < 5000
    return path


@pytest.mark.parametrize("check_crc", [True, False])
@pytest.mark.parametrize(("side", "dtype"), [(600, np.int16), (500, np.float32)])
def test_declared_size_a_small_gzip_file_cannot_hold(tmp_path, side, dtype, check_crc):
    """Under MAX_VOXELS, but 432 or 500 MB from 4 KB: rejected from the header and the file size alone."""
    path = _bomb(tmp_path / "bomb.nii.gz", side, dtype)
    need = 352 + side**3 * np.dtype(dtype).itemsize
    with pytest.raises(
        NiftiValidationError,
        match=rf"bomb\.nii\.gz: the header declares shape \({side}, {side}, {side}\) {np.dtype(dtype).name} "
        rf"\({need} bytes\), more than a {path.stat().st_size}-byte gzip file can hold",
    ):
        load_nifti(path, check_crc=check_crc)


@pytest.mark.parametrize(("side", "dtype"), [(800, np.int16), (2000, np.float32)])
def test_volumes_above_max_voxels_are_refused(tmp_path, side, dtype):
    """The bombs of the issue (1 GB and 32 GB declared in 4 KB) exceed MAX_VOXELS; so would a real such scan."""
    path = _bomb(tmp_path / "bomb.nii.gz", side, dtype)
    with pytest.raises(NiftiValidationError, match=rf"bomb\.nii\.gz: shape \({side}, {side}, {side}\) has "
                       rf"{side**3} voxels, more than art_seg\.data\.nifti\.MAX_VOXELS = 268435456"):  # fmt: skip
        load_nifti(path)


def test_max_voxels_is_the_documented_bound(tmp_path, volume, monkeypatch):
    path = save(tmp_path / "scan.nii", volume)
    monkeypatch.setattr(nifti, "MAX_VOXELS", 12 * 12 * 8 - 1)
    with pytest.raises(NiftiValidationError, match=r"scan\.nii: shape \(12, 12, 8\) has 1152 voxels"):
        load_nifti(path)
    monkeypatch.setattr(nifti, "MAX_VOXELS", 12 * 12 * 8)
    assert load_nifti(path)[0].shape == (12, 12, 8)


@pytest.mark.parametrize("ext", [".nii", ".nii.gz"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, 0.0, -1.0])
def test_non_finite_or_non_positive_voxel_spacing(tmp_path, volume, ext, bad):
    """A NaN pixdim (the affine comes from the sform, so it stays finite) would reach HD95 as a NaN spacing."""
    path = craft(tmp_path / f"spacing{ext}", volume, pixdim=(1.0, bad, 1.0))
    name = path.name.replace(".", r"\.")
    with pytest.raises(NiftiValidationError, match=rf"{name}: voxel spacing \(pixdim\[1:4\]\) must be finite "
                       rf"and > 0, got \(1\.0, {bad}, 1\.0\)"):  # fmt: skip
        load_nifti(path)


def test_out_of_memory_while_reading_names_the_file(tmp_path, volume, monkeypatch):
    path = save(tmp_path / "scan.nii.gz", volume)

    def no_memory(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(nib.arrayproxy.ArrayProxy, "get_unscaled", no_memory)
    with pytest.raises(NiftiValidationError, match=r"scan\.nii\.gz: out of memory reading shape \(12, 12, 8\)"):
        load_nifti(path)


# 4-D files (the Decathlon's one file per case, channels on the 4th axis): the same checks, every volume counted.


@pytest.mark.parametrize("ext", [".nii.gz", ".nii"])
def test_four_d_file_reads_each_volume_once_in_any_order(tmp_path, volume, ext):
    stack = np.stack([volume + 1000 * k for k in range(4)], axis=-1)
    path = save(tmp_path / f"case{ext}", stack, dtype=np.int16)
    img = nifti.open_nifti(path, volumes=4)
    outs = [np.empty(volume.shape, np.float32) for _ in range(3)]
    nifti.read_volumes_into(img, outs, path, [2, 0, 3])
    for out, k in zip(outs, [2, 0, 3]):
        np.testing.assert_array_equal(out, stack[..., k].astype(np.int16))
    assert img.in_memory is False


def test_four_d_header_scaling_applies_to_every_volume(tmp_path):
    img = nib.Nifti1Image(np.arange(48, dtype=np.int16).reshape(2, 3, 4, 2), AFFINE)
    img.header.set_slope_inter(0.5, 10.0)
    nib.save(img, tmp_path / "scaled.nii.gz")
    opened = nifti.open_nifti(tmp_path / "scaled.nii.gz", volumes=2)
    outs = [np.empty((2, 3, 4), np.float32) for _ in range(2)]
    nifti.read_volumes_into(opened, outs, tmp_path / "scaled.nii.gz", [0, 1])
    expected = np.arange(48).reshape(2, 3, 4, 2) * 0.5 + 10.0
    for k in range(2):
        np.testing.assert_allclose(outs[k], expected[..., k])


def test_four_d_volume_count_must_match(tmp_path, volume):
    path = save(tmp_path / "case.nii.gz", np.stack([volume] * 3, axis=-1))
    with pytest.raises(NiftiValidationError, match=r"case\.nii\.gz: expected a 4-D image of 4 volumes \(x, y, z, 4\), "
                       r"one per channel, got shape \(12, 12, 8, 3\)"):  # fmt: skip
        nifti.open_nifti(path, volumes=4)
    with pytest.raises(NiftiValidationError, match=r"expected a 4-D image of 3 volumes.*got shape \(12, 12, 8\)"):
        nifti.open_nifti(save(tmp_path / "three_d.nii.gz", volume), volumes=3)
    assert nifti.open_nifti(save(tmp_path / "one.nii.gz", volume), volumes=1).shape == (12, 12, 8)
    with pytest.raises(ValueError, match="volumes must be >= 1"):
        nifti.open_nifti(path, volumes=0)


def test_four_d_files_count_every_volume_against_max_voxels(tmp_path, volume, monkeypatch):
    path = save(tmp_path / "case.nii", np.stack([volume] * 4, axis=-1))
    monkeypatch.setattr(nifti, "MAX_VOXELS", 4 * 12 * 12 * 8 - 1)  # each volume fits, the file does not
    with pytest.raises(NiftiValidationError, match=r"case\.nii: shape \(12, 12, 8, 4\) has 4608 voxels"):
        nifti.open_nifti(path, volumes=4)


@pytest.mark.parametrize("check_crc", [True, False])
def test_four_d_bomb_and_truncation_refused_before_reading(tmp_path, volume, check_crc):
    bomb = craft(tmp_path / "bomb.nii.gz", np.stack([volume] * 4, axis=-1), dim=(600, 600, 600, 4))
    with pytest.raises(NiftiValidationError, match=r"bomb\.nii\.gz: (the header declares|shape \(600, 600, 600, 4\))"):
        nifti.open_nifti(bomb, volumes=4, check_crc=check_crc)
    cut = craft(tmp_path / "cut.nii.gz", np.stack([volume] * 4, axis=-1), dim=(12, 12, 8, 5))
    with pytest.raises(NiftiValidationError, match=r"cut\.nii\.gz: truncated: .* shape \(12, 12, 8, 5\)"):
        nifti.open_nifti(cut, volumes=5, check_crc=check_crc)
