"""Finding BraTS subjects in each year's layout."""

from __future__ import annotations

import errno
import os

import pytest

from art_seg.data import Subject, SubjectError, find_subjects
from tests.data.builders import LAYOUT_CONVENTIONS, LAYOUTS, write_subject


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("ext", [".nii.gz", ".nii"])
def test_each_layout_is_found(tmp_path, layout, ext):
    written = write_subject(tmp_path, layout, ext=ext)
    (subject,) = find_subjects(tmp_path)
    assert subject.id == LAYOUTS[layout][0]
    assert subject.layout == layout
    assert subject.label_convention == LAYOUT_CONVENTIONS.get(layout, "brats2018")
    assert list(subject.paths) == ["t1", "t1ce", "t2", "flair"]
    suffixes = LAYOUTS[layout][2]
    assert [p.name for p in subject.paths.values()] == [written[s].name for s in suffixes[:4]]
    assert subject.seg == written["seg"]
    assert subject.group == ("HGG" if layout == "brats2018" else None)


def test_many_subjects_sorted_and_mixed_layouts(tmp_path):
    for k in (3, 1, 2):
        write_subject(tmp_path, "brats2020", subject_id=f"BraTS20_Training_00{k}", seed=k)
    write_subject(tmp_path, "brats2023")
    ids = [s.id for s in find_subjects(tmp_path)]
    assert ids == ["BraTS-GLI-00000-000", "BraTS20_Training_001", "BraTS20_Training_002", "BraTS20_Training_003"]


def test_flat_folder(tmp_path):
    for k in (1, 2):
        written = write_subject(tmp_path / "tmp", "brats2021", subject_id=f"BraTS2021_0000{k}")
        for key, path in written.items():
            if key not in ("image", "label"):
                path.rename(tmp_path / path.name)
    assert [s.id for s in find_subjects(tmp_path)] == ["BraTS2021_00001", "BraTS2021_00002"]


def test_modality_order_and_2023_names(tmp_path):
    write_subject(tmp_path, "brats2023")
    (subject,) = find_subjects(tmp_path, modalities=("t2f", "t1ce"))
    assert subject.modalities == ("flair", "t1ce")
    assert subject.paths["flair"].name == "BraTS-GLI-00000-000-t2f.nii.gz"


def test_subject_without_segmentation_loads_for_prediction(tmp_path):
    write_subject(tmp_path, "brats2020", with_seg=False)
    (subject,) = find_subjects(tmp_path)
    assert subject.seg is None and not subject.has_seg
    with pytest.raises(SubjectError, match="no segmentation file"):
        find_subjects(tmp_path, require_seg=True, on_error="raise")


def test_missing_modality_raises_naming_it(tmp_path):
    written = write_subject(tmp_path, "brats2020")
    written["t1ce"].unlink()
    with pytest.raises(SubjectError, match=r"BraTS20_Training_001: missing modality \['t1ce'\]"):
        find_subjects(tmp_path, on_error="raise")


def test_missing_modality_is_skipped_with_a_warning(tmp_path):
    write_subject(tmp_path, "brats2020", subject_id="BraTS20_Training_001")
    bad = write_subject(tmp_path, "brats2020", subject_id="BraTS20_Training_002")
    bad["flair"].unlink()
    with pytest.warns(UserWarning, match=r"skipping subject.*BraTS20_Training_002.*missing modality \['flair'\]"):
        subjects = find_subjects(tmp_path)
    assert [s.id for s in subjects] == ["BraTS20_Training_001"]


def test_two_files_for_one_modality(tmp_path):
    written = write_subject(tmp_path, "brats2020")
    written["t2"].with_name("BraTS20_Training_001_t2.nii").write_bytes(b"x")
    with pytest.raises(SubjectError, match="more than one file for a modality.*t2"):
        find_subjects(tmp_path, on_error="raise")


def test_duplicate_subject_id_in_two_folders(tmp_path):
    write_subject(tmp_path / "a", "brats2020")
    write_subject(tmp_path / "b", "brats2020")
    with pytest.raises(SubjectError, match="ids must be unique"):
        find_subjects(tmp_path, on_error="raise")


def test_misnamed_brats2020_segmentation_is_found(tmp_path):
    written = write_subject(tmp_path, "brats2020", subject_id="BraTS20_Training_355")
    odd = written["seg"].with_name("W39_1998.09.19_Segm.nii")
    written["seg"].rename(odd)
    (subject,) = find_subjects(tmp_path)
    assert subject.seg == odd


def test_empty_root_and_bad_options(tmp_path):
    (tmp_path / "notes.txt").write_text("no scans here")
    with pytest.raises(SubjectError, match="no BraTS subjects found"):
        find_subjects(tmp_path)
    with pytest.raises(FileNotFoundError, match="existing folder"):
        find_subjects(tmp_path / "absent")
    with pytest.raises(ValueError, match="unknown modality 'dwi'"):
        find_subjects(tmp_path, modalities=("t1", "dwi"))
    with pytest.raises(ValueError, match="must not repeat"):
        find_subjects(tmp_path, modalities=("t1", "t1n"))
    with pytest.raises(ValueError, match="on_error must be one of"):
        find_subjects(tmp_path, on_error="ignore")


def test_subject_is_hashable_and_comparable(tmp_path):
    write_subject(tmp_path, "brats2020")
    a = find_subjects(tmp_path)[0]
    b = find_subjects(tmp_path)[0]
    assert isinstance(a, Subject) and a == b and len({a, b}) == 1


def _unreadable(monkeypatch, folder) -> None:
    """Make ``folder`` unlistable. The tests run as root, for whom chmod 000 does not stop a listing, so the
    permission error is simulated: os.scandir (which os.walk calls) raises it for that folder only."""
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path) == os.fspath(folder):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_unreadable_subject_folder_is_skipped_with_a_warning(tmp_path, monkeypatch):
    write_subject(tmp_path, subject_id="BraTS20_Training_001")
    write_subject(tmp_path, subject_id="BraTS20_Training_002")
    locked = tmp_path / "BraTS20_Training_002"
    _unreadable(monkeypatch, locked)
    with pytest.warns(UserWarning, match=rf"skipping folder: {locked}: cannot read this folder \(PermissionError: "
                      r"Permission denied\)") as record:  # fmt: skip
        subjects = find_subjects(tmp_path)
    assert len(record) == 1
    assert [s.id for s in subjects] == ["BraTS20_Training_001"]
    with pytest.raises(SubjectError, match=rf"{locked}: cannot read this folder \(PermissionError"):
        find_subjects(tmp_path, on_error="raise")


def test_every_subject_skipped_says_how_many_and_why(tmp_path, monkeypatch):
    for k in (1, 2, 3, 4, 5):
        written = write_subject(tmp_path, subject_id=f"BraTS20_Training_00{k}")
        if k != 3:
            written["flair"].unlink()
    _unreadable(monkeypatch, tmp_path / "BraTS20_Training_003")
    with pytest.warns(UserWarning, match="skipping"):
        with pytest.raises(
            SubjectError,
            match=rf"^{tmp_path}: no BraTS subject left: 5 subject folders were skipped: "
            r".*BraTS20_Training_001: missing modality \['flair'\].*; "
            r".*BraTS20_Training_002: missing modality \['flair'\].*; "
            r".*BraTS20_Training_003: cannot read this folder \(PermissionError: Permission denied\); and 2 more$",
        ):
            find_subjects(tmp_path)


# BraTS 2024 post-treatment glioma: 2023 file names, time points from 100, labels with the resection cavity.


def test_post_treatment_gli_cases_make_the_whole_gli_set_brats2024(tmp_path):
    """One class count per data set: a pre-treatment GLI case found with post-treatment ones is read as brats2024
    too (its values 0..3 mean the same there); other 2023-style challenges keep brats2023."""
    write_subject(tmp_path, "brats2024", subject_id="BraTS-GLI-00005-100")
    write_subject(tmp_path, "brats2024", subject_id="BraTS-GLI-00005-101")
    write_subject(tmp_path, "brats2023", subject_id="BraTS-GLI-00000-000")
    write_subject(tmp_path, "brats2023", subject_id="BraTS-SSA-00002-000")
    found = {s.id: (s.layout, s.label_convention) for s in find_subjects(tmp_path)}
    assert found == {
        "BraTS-GLI-00000-000": ("brats2023", "brats2024"),
        "BraTS-GLI-00005-100": ("brats2024", "brats2024"),
        "BraTS-GLI-00005-101": ("brats2024", "brats2024"),
        "BraTS-SSA-00002-000": ("brats2023", "brats2023"),
    }


def test_2023_gli_cases_alone_stay_brats2023(tmp_path):
    write_subject(tmp_path, "brats2023", subject_id="BraTS-GLI-00000-000")
    write_subject(tmp_path, "brats2023", subject_id="BraTS-GLI-00000-001")
    assert {s.label_convention for s in find_subjects(tmp_path)} == {"brats2023"}


def test_label_convention_argument_applies_to_every_subject(tmp_path):
    write_subject(tmp_path, "brats2023")
    write_subject(tmp_path, "brats2020")
    assert {s.label_convention for s in find_subjects(tmp_path, label_convention="brats2024")} == {"brats2024"}
    with pytest.raises(ValueError, match="label_convention must be one of"):
        find_subjects(tmp_path, label_convention="brats2025")
