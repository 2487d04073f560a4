"""Reading dataset.json (nnU-Net v2, the Decathlon): channel names and labels in art_seg's terms, bad files."""

from __future__ import annotations

import json

import pytest

from art_seg.data import LabelConvention, SubjectError, get_convention
from art_seg.data.dataset_json import channel_modality, read_dataset_json
from tests.data.builders import MSD_LABELS, MSD_MODALITY, write_json

BRATS_CHANNELS = {"0": "T1", "1": "T1ce", "2": "T2", "3": "Flair"}
NNUNET_BRATS_REGIONS = {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]}


def nnunet_json(labels: dict, channels: dict = BRATS_CHANNELS, **extra) -> dict:
    return {"channel_names": channels, "labels": labels, "numTraining": 1, "file_ending": ".nii.gz", **extra}


@pytest.fixture
def folder(tmp_path):
    return tmp_path / "Dataset001_Test"


def test_msd_task01_is_read_in_art_seg_terms(folder):
    """MSD's channels FLAIR, T1w, t1gd, T2w and labels 1 edema, 2 non-enhancing, 3 enhancing."""
    write_json(folder / "dataset.json", {"name": "BRATS", "modality": MSD_MODALITY, "labels": MSD_LABELS,
                                         "numTraining": 1, "training": [{"image": "./imagesTr/a.nii.gz",
                                                                         "label": "./labelsTr/a.nii.gz"}],
                                         "test": ["./imagesTs/b.nii.gz"]})  # fmt: skip
    desc = read_dataset_json(folder)  # the folder or the file
    assert desc.format == "msd" and desc.name == "BRATS"
    assert desc.channel_names == ("FLAIR", "T1w", "t1gd", "T2w")
    assert desc.modalities == ("flair", "t1", "t1ce", "t2") and desc.brats_channels
    assert desc.select_channels() == (("t1", 1), ("t1ce", 2), ("t2", 3), ("flair", 0))
    assert desc.select_channels(["t2f", "t1c"]) == (("flair", 0), ("t1ce", 2))
    assert desc.label_convention == "msd_brats" and desc.brats_labels and not desc.has_regions
    assert get_convention(desc.label_convention).values == (0, 2, 1, 3)  # art_seg class -> MSD value
    assert desc.training == ((folder / "./imagesTr/a.nii.gz", folder / "./labelsTr/a.nii.gz"),)
    assert desc.test == (folder / "./imagesTs/b.nii.gz",)


def test_nnunet_brats_regions_are_nnunets_brats_labels(folder):
    """nnU-Net's Dataset137_BraTS2021: region-based, 1 edema, 2 necrosis, 3 enhancing (values are derived from the
    nested regions: ET = {3}, core = TC - ET = {2}, edema = WT - TC = {1})."""
    path = write_json(folder / "dataset.json", nnunet_json(NNUNET_BRATS_REGIONS, regions_class_order=[1, 2, 3]))
    desc = read_dataset_json(path)
    assert desc.format == "nnunet" and desc.has_regions and desc.regions_class_order == (1, 2, 3)
    assert desc.label_convention == "msd_brats" and desc.brats_labels
    assert desc.modalities == ("t1", "t1ce", "t2", "flair")
    assert desc.select_channels() == (("t1", 0), ("t1ce", 1), ("t2", 2), ("flair", 3))
    assert desc.labels[1] == ("whole tumor", (1, 2, 3))


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"background": 0, "edema": 1, "non-enhancing tumor": 2, "enhancing tumour": 3}, "msd_brats"),
        ({"background": 0, "NCR": 1, "ED": 2, "ET": 3}, "brats2023"),
        ({"background": 0, "necrotic core": 1, "peritumoral edema": 2, "enhancing tumor": 3}, "brats2023"),
        ({"background": 0, "NETC": 1, "SNFH": 2, "ET": 3, "RC": 4}, "brats2024"),
        ({"background": 0, "whole tumor": [1, 2, 3], "tumor core": [1, 3], "ET": [3], "resection cavity": [4]},
         "brats2024"),  # fmt: skip
    ],
)
def test_brats_labels_map_to_the_registered_convention(folder, labels, expected):
    assert read_dataset_json(write_json(folder / "dataset.json", nnunet_json(labels))).label_convention == expected


def test_brats_tissues_in_another_numbering_get_a_convention_of_their_own(folder):
    labels = {"background": 0, "enhancing": 1, "edema": 2, "necrosis": 3}
    desc = read_dataset_json(write_json(folder / "dataset.json", nnunet_json(labels)))
    assert isinstance(desc.label_convention, LabelConvention) and desc.brats_labels
    assert desc.label_convention.values == (0, 3, 2, 1)  # classes core, edema, enhancing
    assert desc.label_convention.region_classes == {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}


def test_other_datasets_keep_their_own_labels_and_channels(folder):
    desc = read_dataset_json(write_json(folder / "dataset.json", nnunet_json(
        {"background": 0, "Anterior": 1, "Posterior": 2}, {"0": "MRI"}, name="Hippocampus")))  # fmt: skip
    convention = desc.label_convention
    assert not desc.brats_labels and not desc.brats_channels
    assert convention.name == "Hippocampus" and convention.values == (0, 1, 2)
    assert convention.class_names == ("background", "Anterior", "Posterior") and convention.regions == ()
    assert desc.modalities == ("MRI",) and desc.select_channels() == (("MRI", 0),)
    with pytest.raises(SubjectError, match=r"dataset\.json: no channel \['T1'\]; the channels are \['MRI'\]"):
        desc.select_channels(["T1"])


def test_unrecognised_channels_keep_file_order_and_repeated_names_are_numbered(folder):
    desc = read_dataset_json(write_json(folder / "dataset.json", nnunet_json(
        {"background": 0, "lesion": 1}, {"0": "T2", "1": "ADC", "2": "ADC"})))  # fmt: skip
    assert desc.modalities == ("T2_0", "ADC_1", "ADC_2") and not desc.brats_channels
    assert [k for _, k in desc.select_channels()] == [0, 1, 2]


def test_region_based_own_labels(folder):
    labels = {"background": 0, "kidney": [1, 2], "tumour": [2]}
    convention = read_dataset_json(write_json(folder / "dataset.json", nnunet_json(labels))).label_convention
    assert convention.values == (0, 1, 2) and convention.class_names == ("background", "label_1", "tumour")
    assert convention.region_classes == {"kidney": (1, 2), "tumour": (2,)}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"labels": {"background": 0}, "numTraining": 1, "file_ending": ".nii.gz"},
         r"missing key\(s\) \['channel_names'\]; an nnU-Net v2 dataset\.json needs"),
        ({"channel_names": BRATS_CHANNELS, "labels": {"background": 0, "a": 1}},
         r"missing key\(s\) \['numTraining', 'file_ending'\]"),
        ({"modality": MSD_MODALITY, "labels": MSD_LABELS}, r"missing key\(s\) \['numTraining', 'training'\]; a Decath"),
        (nnunet_json({"background": 0, "a": 1, "b": 3}), r"label values must be consecutive integers .* \[0, 1, 3\]"),
        (nnunet_json({"background": 1, "a": 0}), "must give background the value 0, got 1"),
        (nnunet_json({"background": 0, "a": 1, "ignore": 2}), "'ignore' label"),
        (nnunet_json({"background": 0, "a": "x"}), "label 'a' must be a non-negative integer, got 'x'"),
        (nnunet_json({"background": 0, "a": 1}, {"0": "T1", "2": "T2"}), r"number the channels 0, 1, 2, \.\.\."),
        (nnunet_json({"background": 0, "a": 1}, file_ending=".mha"), r"file_ending '\.mha' is not supported"),
        (nnunet_json({"background": 0, "a": 1}, numTraining=-1), "numTraining must be a non-negative integer"),
        ({"modality": MSD_MODALITY, "labels": MSD_LABELS, "numTraining": 1, "training": [{"image": "a"}]},
         r"training\[0\] must hold 'image' and 'label'"),
        (nnunet_json({"background": 0, "a": 1}, dataset={"c": {"images": ["x.nii.gz"], "label": "y.nii.gz"}}),
         "explicit 'dataset' file lists are not supported"),
    ],
)  # fmt: skip
def test_bad_dataset_json_names_the_file_and_the_problem(folder, content, message):
    path = write_json(folder / "dataset.json", content)
    with pytest.raises(SubjectError, match=rf"Dataset001_Test/dataset\.json: .*{message}"):
        read_dataset_json(path)


def test_unreadable_dataset_json(folder):
    (folder).mkdir()
    (folder / "dataset.json").write_text("{'not': json")
    with pytest.raises(SubjectError, match=r"dataset\.json: cannot read as JSON \(JSONDecodeError"):
        read_dataset_json(folder / "dataset.json")
    with pytest.raises(SubjectError, match=r"absent/dataset\.json: file not found"):
        read_dataset_json(folder / "absent" / "dataset.json")
    (folder / "dataset.json").write_text(json.dumps([1, 2]))
    with pytest.raises(SubjectError, match="expected a JSON object, got list"):
        read_dataset_json(folder)


@pytest.mark.parametrize(
    ("name", "modality"),
    [("T1", "t1"), ("T1w", "t1"), ("t1n", "t1"), ("T1ce", "t1ce"), ("T1Gd", "t1ce"), ("T1-contrast", "t1ce"),
     ("t1c", "t1ce"), ("T2", "t2"), ("T2w", "t2"), ("FLAIR", "flair"), ("T2-FLAIR", "flair"), ("t2f", "flair"),
     ("Flair", "flair"), ("CT", None), ("MRI", None), ("ADC", None), ("seg", None)],
)  # fmt: skip
def test_channel_names(name, modality):
    assert channel_modality(name) == modality
