"""A region model through the whole command line, nothing replaced: `art-seg train --regions monai_brats` writes a
model.pt of a sigmoid UNet3D with its regions; `art-seg evaluate` and `art-seg attack` load that file with their
own loader and score it on WT, TC and ET. The scores are checked against Dice computed here, with
art_seg.metrics.dice_score, from the loaded segmenter's own thresholded channels on the same subjects: MONAI's
channel order (TC, WT, ET) makes a mix-up of channels and regions show."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from art_seg.cli.common import load_model
from art_seg.cli.main import main
from art_seg.data import REGION_CLASSES, REGION_PRESETS, find_subjects, iter_subjects, labels_to_classes
from art_seg.defences import read_checkpoint
from art_seg.metrics import dice_score

PRESET = "monai_brats"
TINY = ["--subjects", "4", "--shape", "16", "16", "16", "--base-filters", "2", "--depth", "1", "--quiet",
        "--threads", "2", "--epochs", "2", "--lr", "0.01"]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``art-seg train --regions monai_brats`` on a 4-subject phantom: the output folder (model.pt, phantom/)."""
    output = tmp_path_factory.mktemp("train_regions")
    assert main(["train", *TINY, "--regions", PRESET, "--output", str(output)]) == 0
    return output


def hand_dice(segmenter, image: np.ndarray, label: np.ndarray) -> dict[str, float]:
    """WT, TC and ET Dice of the segmenter's thresholded channels on one subject, each region's channel found by
    its classes in the preset (not through art_seg.evaluation)."""
    masks = segmenter.predict_labels(image[None], batch_size=1)[0]
    spec = REGION_PRESETS[PRESET]
    return {
        name: dice_score(masks[spec.classes.index(classes)], np.isin(label, classes))
        for name, classes in REGION_CLASSES.items()
    }


def test_train_regions_writes_a_region_model_that_the_commands_load_with_its_regions(trained):
    settings = read_checkpoint(trained / "model.pt")["segmenter"]
    assert settings["activation"] == "sigmoid" and settings["nb_classes"] == 3
    assert settings["regions"]["names"] == ["TC", "WT", "ET"]
    segmenter, loading = load_model(trained / "model.pt", "cpu")
    assert segmenter.regions == REGION_PRESETS[PRESET] and segmenter.activation == "sigmoid"
    assert loading == {"multiple": 2}


def test_evaluate_scores_the_trained_region_model_as_dice_by_hand(trained, tmp_path):
    data = tmp_path / "data"  # two of the subjects
    for subject in find_subjects(trained / "phantom")[:2]:
        shutil.copytree(subject.seg.parent, data / subject.id)
    output = tmp_path / "evaluated"
    arguments = ["evaluate", "--model", f"regions={trained / 'model.pt'}", "--data", str(data)]
    assert main([*arguments, "--attacks", "fgm", "--eps", "0.2", "--quiet", "--output", str(output)]) == 0
    rows = [json.loads(line) for line in (output / "results.jsonl").read_text().splitlines()]
    clean = {row["subject"]: row["dice"] for row in rows if row["eps"] == 0}
    segmenter, loading = load_model(trained / "model.pt", "cpu")
    expected = {
        loaded.meta.subject_id: hand_dice(segmenter, loaded.image, loaded.label)
        for loaded in iter_subjects(find_subjects(data), **loading)
    }
    assert len(clean) == 2 and clean == expected  # every subject, the same floats
    values = [d for scores in expected.values() for d in scores.values()]
    assert any(0 < d < 1 for d in values), values  # the model predicts something, not all or nothing
    assert "Dice WT" in (output / "report.md").read_text()


def test_attack_scores_and_writes_the_trained_region_models_predictions(trained, tmp_path):
    output = tmp_path / "attacked"
    subject = find_subjects(trained / "phantom")[0]  # one subject folder as --input
    arguments = ["attack", "--model", str(trained / "model.pt"), "--input", str(subject.seg.parent)]
    assert main([*arguments, "--attack", "fgm", "--eps", "0.2", "--quiet", "--output", str(output)]) == 0
    summary = {entry["subject"]: entry for entry in json.loads((output / "attack_summary.json").read_text())}
    segmenter, loading = load_model(trained / "model.pt", "cpu")
    assert list(summary) == [subject.id]
    for image, label, meta in iter_subjects([subject], **loading):
        assert summary[meta.subject_id]["dice_clean"] == hand_dice(segmenter, image, label)
        written = nib.load(output / meta.subject_id / f"{meta.subject_id}_prediction_clean.nii.gz")
        classes = labels_to_classes(np.asarray(written.dataobj), meta.label_convention)
        painted = segmenter.to_label_map(segmenter.predict_labels(image[None], batch_size=1))[0]
        np.testing.assert_array_equal(meta.crop_pad.apply(classes), painted)
