"""nnU-Net raw datasets and Decathlon tasks: discovery, loading (channels and labels voxel by voxel), writing back."""

from __future__ import annotations

import tracemalloc

import nibabel as nib
import numpy as np
import pytest

from art_seg.data import (
    BraTSDataset,
    NiftiValidationError,
    SubjectError,
    find_subjects,
    iter_subjects,
    load_subject,
    write_prediction,
)
from art_seg.data.dataset_folders import find_dataset_subjects
from tests.data.builders import (
    AFFINE,
    MSD_CHANNEL_OF,
    MSD_VALUE_OF_CLASS,
    SHAPE,
    save,
    tiny_case,
    write_json,
    write_msd_task,
    write_nnunet_case,
)

RAW = {"crop": False, "normalize": False, "multiple": 1}  # load the files' voxels on their own grid
MSD_LABEL_VALUES = (2, 1, 3)  # tiny_case's (core, edema, enhancing) in MSD values: 2 non-enhancing, 1 edema, 3


def distinct_channels(seed: int) -> np.ndarray:
    """tiny_case's image with channel k offset by 1000 k, so that every channel is told apart voxel by voxel."""
    image, _ = tiny_case(seed)
    return image + 1000 * np.arange(4, dtype=np.float32)[:, None, None, None] * (image > 0)


def nnunet_dataset(root, labels, channels, cases=("case_001", "case_002"), test_cases=(), **extra):
    """Cases with tiny_case's label in MSD / nnU-Net BraTS values; returns case -> (image, label) as written."""
    written = {}
    for k, case in enumerate(cases):
        image = distinct_channels(k)
        _, label = tiny_case(k, label_values=MSD_LABEL_VALUES)
        write_nnunet_case(root, case, image, label)
        written[case] = (image, label)
    for k, case in enumerate(test_cases):
        write_nnunet_case(root, case, distinct_channels(10 + k), None, folder="Ts")
    content = {"channel_names": channels, "labels": labels, "numTraining": len(cases), "file_ending": ".nii.gz"}
    write_json(root / "dataset.json", {**content, **extra})
    return written


MSD_CHANNELS = {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}
MSD_LABEL_NAMES = {"background": 0, "edema": 1, "non-enhancing tumor": 2, "enhancing tumour": 3}
REGIONS = {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]}


@pytest.mark.parametrize(
    ("labels", "channels", "channel_of"),
    [
        (MSD_LABEL_NAMES, MSD_CHANNELS, MSD_CHANNEL_OF),  # nnU-Net's Dataset001_BrainTumour (from MSD Task01)
        (REGIONS, {"0": "T1", "1": "T1ce", "2": "T2", "3": "Flair"}, {"t1": 0, "t1ce": 1, "t2": 2, "flair": 3}),
    ],
    ids=["label-based", "region-based"],
)
def test_nnunet_brats_channels_and_labels_voxel_by_voxel_and_back(tmp_path, labels, channels, channel_of):
    root = tmp_path / "Dataset001_BrainTumour"
    written = nnunet_dataset(root, labels, channels)
    subjects = find_dataset_subjects(root)
    assert [s.id for s in subjects] == ["case_001", "case_002"]
    subject = subjects[0]
    assert subject.layout == "nnunet" and subject.label_convention == "msd_brats"
    assert subject.modalities == ("t1", "t1ce", "t2", "flair")
    assert subject.seg == root / "labelsTr" / "case_001.nii.gz"
    image, classes, meta = load_subject(subject, **RAW)
    source, values = written["case_001"]
    for c, modality in enumerate(meta.modalities):
        np.testing.assert_array_equal(image[c], source[channel_of[modality]])
    expected = np.select([values == 2, values == 1, values == 3], [1, 2, 3], 0)  # core 1, edema 2, enhancing 3
    np.testing.assert_array_equal(classes, expected)
    assert set(np.unique(classes)) == {0, 1, 2, 3}
    back = nib.load(write_prediction(tmp_path / "pred.nii.gz", classes, meta))
    assert back.shape == SHAPE
    np.testing.assert_array_equal(back.affine, AFFINE)
    np.testing.assert_array_equal(np.asanyarray(back.dataobj), values)  # nnU-Net's label values again


def test_nnunet_other_dataset_keeps_its_labels_channels_and_says_so(tmp_path):
    root = tmp_path / "Dataset003_Liver"
    image, _ = tiny_case(0)
    label = np.zeros(SHAPE, np.uint8)
    label[3:8, 3:8, 2:6] = 1
    label[4:6, 4:6, 3:5] = 2
    write_nnunet_case(root, "liver_0", image[:2], label)
    write_json(root / "dataset.json", {"channel_names": {"0": "CT", "1": "PET"},
                                       "labels": {"background": 0, "liver": 1, "tumour": 2},
                                       "numTraining": 1, "file_ending": ".nii.gz", "name": "Liver"})  # fmt: skip
    (subject,) = find_dataset_subjects(root)
    convention = subject.label_convention
    assert convention.name == "Liver" and convention.title == "Liver's own labels"
    assert convention.class_names == ("background", "liver", "tumour")
    assert subject.modalities == ("CT", "PET")
    loaded, classes, meta = load_subject(subject, **RAW)
    np.testing.assert_array_equal(loaded, image[:2])
    np.testing.assert_array_equal(classes, label)  # the values are the classes
    back = nib.load(write_prediction(tmp_path / "p.nii.gz", np.eye(3, dtype=np.float32)[classes].transpose(3, 0, 1, 2),
                                     meta))  # fmt: skip
    np.testing.assert_array_equal(np.asanyarray(back.dataobj), label)


def test_nnunet_splits_and_test_cases_without_labels(tmp_path):
    root = tmp_path / "Dataset001_BrainTumour"
    nnunet_dataset(root, MSD_LABEL_NAMES, MSD_CHANNELS, cases=("case_001",), test_cases=("case_900",))
    assert [(s.id, s.has_seg) for s in find_dataset_subjects(root)] == [("case_001", True), ("case_900", False)]
    assert [s.id for s in find_dataset_subjects(root, split="train")] == ["case_001"]
    (test,) = find_dataset_subjects(root, split="test")
    image, label, meta = load_subject(test, **RAW)
    assert label is None and image.shape == (4, *SHAPE)
    with pytest.warns(UserWarning, match=r"skipping subject: .*case_900: no label file \(require_seg=True\)"):
        assert [s.id for s in find_dataset_subjects(root, require_seg=True)] == ["case_001"]
    assert find_subjects(root) == find_dataset_subjects(root)  # find_subjects reads the dataset.json too


def test_nnunet_channel_files_must_match_channel_names(tmp_path):
    root = tmp_path / "Dataset001_BrainTumour"
    nnunet_dataset(root, MSD_LABEL_NAMES, MSD_CHANNELS)
    (root / "imagesTr" / "case_002_0003.nii.gz").unlink()
    message = (r"imagesTr/case_002: channel files \['case_002_0000\.nii\.gz', 'case_002_0001\.nii\.gz', "
               r"'case_002_0002\.nii\.gz'\], but .*Dataset001_BrainTumour/dataset\.json declares 4 channel\(s\) "
               r"\['FLAIR', 'T1w', 't1gd', 'T2w'\] \(files _0000 to _0003\)")  # fmt: skip
    with pytest.raises(SubjectError, match=message):
        find_dataset_subjects(root, on_error="raise")
    with pytest.warns(UserWarning, match=message):
        assert [s.id for s in find_dataset_subjects(root)] == ["case_001"]


def test_nnunet_file_names_and_num_training(tmp_path):
    root = tmp_path / "Dataset001_BrainTumour"
    nnunet_dataset(root, MSD_LABEL_NAMES, MSD_CHANNELS, numTraining=5)
    save(root / "imagesTr" / "stray.nii.gz", np.ones(SHAPE, np.float32))
    with pytest.warns(UserWarning) as caught:
        subjects = find_dataset_subjects(root)
    messages = [str(w.message) for w in caught]
    assert any("imagesTr/stray.nii.gz: not named <case>_XXXX.nii.gz" in m for m in messages)
    assert any("dataset.json: numTraining is 5 but" in m and "holds 2 cases" in m for m in messages)
    assert len(subjects) == 2


def test_nnunet_without_images_folder(tmp_path):
    root = tmp_path / "Dataset001_BrainTumour"
    write_json(root / "dataset.json", {"channel_names": MSD_CHANNELS, "labels": MSD_LABEL_NAMES, "numTraining": 0,
                                       "file_ending": ".nii.gz"})  # fmt: skip
    with pytest.raises(SubjectError, match=r"imagesTr: no such folder"):
        find_dataset_subjects(root, split="train")
    with pytest.raises(SubjectError, match=r"Dataset001_BrainTumour: no cases found \(split='all'"):
        find_dataset_subjects(root)


def test_bad_dataset_json_stops_discovery_naming_the_file(tmp_path):
    root = tmp_path / "Dataset001_BrainTumour"
    nnunet_dataset(root, MSD_LABEL_NAMES, MSD_CHANNELS)
    write_json(root / "dataset.json", {"channel_names": MSD_CHANNELS, "labels": MSD_LABEL_NAMES})
    for find in (find_dataset_subjects, find_subjects):
        with pytest.raises(SubjectError, match=r"Dataset001_BrainTumour/dataset\.json: missing key\(s\) "
                           r"\['numTraining', 'file_ending'\]"):  # fmt: skip
            find(root, on_error="skip")


# The Decathlon: one 4-D NIfTI per case, channels FLAIR, T1w, t1gd, T2w on its 4th axis.


def msd_task(root, n_train=2, n_test=0, **extra):
    cases = {}
    for k in range(n_train):
        _, label = tiny_case(k, label_values=MSD_LABEL_VALUES)
        cases[f"BRATS_{k + 1:03d}"] = (distinct_channels(k), label)
    for k in range(n_test):
        cases[f"BRATS_{485 + k}"] = (distinct_channels(10 + k), None)
    write_msd_task(root, cases, **extra)
    return cases


def test_msd_task01_channels_and_labels_voxel_by_voxel_and_back(tmp_path):
    root = tmp_path / "Task01_BrainTumour"
    cases = msd_task(root, n_test=1)
    subjects = find_subjects(root)  # the dataset.json is found and read
    assert [(s.id, s.layout, s.has_seg) for s in subjects] == [
        ("BRATS_001", "msd", True),
        ("BRATS_002", "msd", True),
        ("BRATS_485", "msd", False),
    ]
    subject = subjects[1]
    assert subject.label_convention == "msd_brats"
    assert subject.volume_index == {"t1": (1, 4), "t1ce": (2, 4), "t2": (3, 4), "flair": (0, 4)}
    assert set(subject.paths.values()) == {root / "./imagesTr/BRATS_002.nii.gz"}
    image, classes, meta = load_subject(subject, **RAW)
    source, values = cases["BRATS_002"]  # source channels in MSD order FLAIR, T1w, t1gd, T2w
    assert meta.modalities == ("t1", "t1ce", "t2", "flair")
    for c, modality in enumerate(meta.modalities):
        np.testing.assert_array_equal(image[c], source[MSD_CHANNEL_OF[modality]])
    np.testing.assert_array_equal(np.asarray(MSD_VALUE_OF_CLASS)[classes], values)  # MSD 1 edema -> class 2 etc.
    assert np.bincount(classes.ravel()).tolist()[1:] == [1, 10, 7]
    assert meta.original_shape == SHAPE
    back = nib.load(write_prediction(tmp_path / "BRATS_002.nii.gz", classes, meta))
    assert back.shape == SHAPE and back.header["dim"][0] == 3  # a 3-D label map over the 4-D case's grid
    np.testing.assert_array_equal(back.affine, AFFINE)
    np.testing.assert_array_equal(np.asanyarray(back.dataobj), values)  # MSD's label values again
    test_image, test_label, _ = load_subject(subjects[2], **RAW)
    assert test_label is None
    np.testing.assert_array_equal(test_image[3], cases["BRATS_485"][0][0])  # flair is file channel 0


def test_msd_cropped_normalised_loading_and_batch_tools(tmp_path):
    root = tmp_path / "Task01_BrainTumour"
    msd_task(root)
    subjects = find_dataset_subjects(root, ["t1ce", "flair"])
    assert subjects[0].volume_index == {"t1ce": (2, 4), "flair": (0, 4)}
    loaded = list(iter_subjects(subjects, multiple=4))
    assert [item.image.shape[0] for item in loaded] == [2, 2]
    dataset = BraTSDataset(subjects, patch_size=4, seed=0)
    image, label = dataset[0]
    assert tuple(image.shape) == (2, 4, 4, 4) and tuple(label.shape) == (4, 4, 4)


def test_msd_channel_count_must_match_the_modalities(tmp_path):
    root = tmp_path / "Task01_BrainTumour"
    cases = msd_task(root)
    image, _ = cases["BRATS_002"]
    bad = save(root / "imagesTr" / "BRATS_002.nii.gz", np.moveaxis(image[:3], 0, -1), dtype=np.float32)
    subjects = find_dataset_subjects(root)
    with pytest.raises(NiftiValidationError, match=r"BRATS_002\.nii\.gz: expected a 4-D image of 4 volumes "
                       r"\(x, y, z, 4\), one per channel, got shape \(12, 12, 8, 3\)"):  # fmt: skip
        load_subject(subjects[1])
    with pytest.warns(UserWarning, match=rf"skipping subject BRATS_002: {bad}"):
        assert [item.meta.subject_id for item in iter_subjects(subjects)] == ["BRATS_001"]


def test_msd_listed_files_must_exist(tmp_path):
    root = tmp_path / "Task01_BrainTumour"
    msd_task(root)
    (root / "labelsTr" / "BRATS_001.nii.gz").unlink()
    with pytest.warns(UserWarning, match=r"dataset\.json: case BRATS_001: listed file\(s\) not found: "
                      r"\[.*labelsTr/BRATS_001\.nii\.gz'\]"):  # fmt: skip
        assert [s.id for s in find_dataset_subjects(root)] == ["BRATS_002"]


def test_nnunet_v1_files_are_named_as_such(tmp_path):
    root = tmp_path / "Task001_BrainTumour"
    msd_task(root, n_train=1)
    image = root / "imagesTr" / "BRATS_001.nii.gz"
    image.rename(image.with_name("BRATS_001_0000.nii.gz"))
    with pytest.raises(SubjectError, match=r"BRATS_001\.nii\.gz'\] \(an nnU-Net v1 dataset, one file per channel"):
        find_dataset_subjects(root, on_error="raise")


def test_msd_single_channel_task_has_3d_files(tmp_path):
    root = tmp_path / "Task04_Hippocampus"
    image, _ = tiny_case(0)
    label = np.zeros(SHAPE, np.uint8)
    label[4:7, 4:7, 3:5] = 2
    save(root / "imagesTr" / "hippo_1.nii.gz", image[0], dtype=np.int16)
    save(root / "labelsTr" / "hippo_1.nii.gz", label, dtype=np.uint8)
    write_json(root / "dataset.json", {"modality": {"0": "MRI"}, "labels": {"0": "background", "1": "Anterior",
               "2": "Posterior"}, "numTraining": 1, "training": [{"image": "./imagesTr/hippo_1.nii.gz",
               "label": "./labelsTr/hippo_1.nii.gz"}]})  # fmt: skip
    (subject,) = find_dataset_subjects(root)
    assert subject.modalities == ("MRI",) and subject.volume_index == {}
    loaded, classes, _ = load_subject(subject, **RAW)
    np.testing.assert_array_equal(loaded[0], image[0])
    np.testing.assert_array_equal(classes, label)


def test_msd_loading_memory_stays_at_two_copies(tmp_path):
    """A 4-D file is read once: its raw array (all volumes) is the one temporary besides the image."""
    shape = (48, 48, 32)
    rng = np.random.default_rng(0)
    image = rng.normal(500, 50, (4, *shape)).astype(np.float32)
    label = np.zeros(shape, np.uint8)
    label[20:30, 20:30, 10:20] = 3
    write_msd_task(tmp_path, {"BRATS_001": (image, label)})
    (subject,) = find_dataset_subjects(tmp_path)
    one_volume = image.nbytes
    del image
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        loaded, _, _ = load_subject(subject, multiple=8)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert loaded.dtype == np.float32 and loaded.nbytes >= 0.9 * one_volume
    assert peak <= 2.5 * one_volume, f"peak {peak / one_volume:.2f} x one (4, D, H, W) float32 volume"
