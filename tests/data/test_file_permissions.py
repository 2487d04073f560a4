"""Files written by art_seg get the umask's permissions, not tempfile's 0o600 (issue 12.13): NIfTI volumes and
training checkpoints go through the same atomic writer as the evaluation outputs."""

from __future__ import annotations

import os
import stat

import nibabel as nib
import numpy as np
import pytest
import torch

from art_seg.data.nifti import save_nifti
from art_seg.defences.checkpoint import read_checkpoint, save_checkpoint
from art_seg.models import UNet3D


@pytest.fixture(params=[0o022, 0o077])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


@pytest.mark.parametrize("name", ["volume.nii.gz", "volume.nii"])
def test_nifti_files_get_the_umask_permissions(tmp_path, umask, name) -> None:
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    path = save_nifti(tmp_path / name, array, np.eye(4))
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    np.testing.assert_array_equal(nib.load(path).get_fdata(), array)
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary left


def test_checkpoints_get_the_umask_permissions(tmp_path, umask) -> None:
    model = UNet3D(in_channels=1, nb_classes=2, base_filters=2, depth=1)
    path = save_checkpoint(tmp_path / "last.pt", model=model)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    torch.testing.assert_close(read_checkpoint(path)["model"], model.state_dict())
