"""Region (sigmoid) models through the command line (issue 13): `art-seg evaluate` scores perfect softmax and region
models at Dice 1.0 per region in summary.csv, `art-seg attack` writes a region model's predictions as BraTS label
maps, a sigmoid model without regions is refused in one line, and `art-seg demo --regions` writes the study table
of region models.

The loader (art_seg.defences.load_segmenter) rebuilds art_seg's UNets only, so the oracle models are handed to
the commands by replacing `art_seg.cli.common.load_model`; everything after loading is the commands' own code."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest

from art_seg.cli import attack, evaluate
from art_seg.cli.main import main
from art_seg.data import classes_to_labels, find_subjects, load_arrays, save_nifti
from art_seg.data.synthetic import phantom_affine
from art_seg.defences import save_checkpoint, segmenter_settings
from art_seg.estimators import PyTorchSegmenter
from art_seg.models import UNet3D
from tests.evaluation.oracles import region_oracle, softmax_oracle

SHAPE = (8, 8, 8)


@pytest.fixture(scope="module")
def oracle_subjects(tmp_path_factory):
    """Three BraTS subjects whose t1 (input channel 0) is 100 + 100 * class everywhere, the same number of voxels
    of each class in each (so z-scoring maps class k to the same value z_k in all), no voxel outside the brain;
    and the z_k, so that an oracle reads the class map back from the preprocessed t1."""
    root = tmp_path_factory.mktemp("oracle_data")
    rng = np.random.default_rng(0)
    base = rng.integers(0, 4, size=SHAPE)
    affine = phantom_affine(SHAPE)
    for k in range(3):
        classes = rng.permutation(base.ravel()).reshape(SHAPE)
        subject = f"BraTS20_Training_{k + 1:03d}"
        folder = root / subject
        save_nifti(folder / f"{subject}_t1.nii.gz", (100 + 100 * classes).astype(np.int16), affine, None, np.int16)
        for name in ("t1ce", "t2", "flair"):
            noise = rng.integers(50, 60, size=SHAPE).astype(np.int16)
            save_nifti(folder / f"{subject}_{name}.nii.gz", noise, affine, None, np.int16)
        save_nifti(folder / f"{subject}_seg.nii.gz", classes_to_labels(classes), affine, None, np.uint8)
    x, y, _ = load_arrays(find_subjects(root), multiple=1)
    assert x.shape[2:] == SHAPE  # nothing cropped or padded
    centres = np.array([x[0, 0][y[0] == k][0] for k in range(4)])
    for i in range(3):
        np.testing.assert_allclose(x[i, 0], centres[y[i]], atol=1e-5)
    return root, centres


def oracles(centres: np.ndarray) -> dict[str, PyTorchSegmenter]:
    kwargs = dict(shape=SHAPE, in_channels=4, centres=centres, scale=50.0)
    return {
        "softmax": softmax_oracle(**kwargs),
        **{preset: region_oracle(preset, **kwargs) for preset in ("brats", "monai_brats", "nnunet_brats")},
    }


def test_evaluate_scores_perfect_softmax_and_region_models_at_dice_one(oracle_subjects, tmp_path, monkeypatch):
    data, centres = oracle_subjects
    models = oracles(centres)
    monkeypatch.setattr(evaluate, "load_model", lambda path, device_type, **_: (models[path.stem], {"multiple": 1}))
    output = tmp_path / "evaluated"
    arguments = ["evaluate", "--model", *[f"{name}={name}.pt" for name in models], "--data", str(data)]
    assert main([*arguments, "--attacks", "fgm", "--eps", "0.1", "--quiet", "--output", str(output)]) == 0
    with (output / "summary.csv").open() as f:
        summary = list(csv.DictReader(f))
    assert {(line["model"], line["region"]) for line in summary} == {
        (m, r) for m in models for r in ("WT", "TC", "ET")
    }
    for line in summary:
        assert float(line["clean_mean"]) == 1.0, line
    report = (output / "report.md").read_text()
    for model in models:
        assert f"## {model}" in report
    clean_rows = [r for r in map(json.loads, (output / "results.jsonl").read_text().splitlines()) if r["eps"] == 0]
    assert len(clean_rows) == 4 * 3 and all(r["dice"] == {"WT": 1.0, "TC": 1.0, "ET": 1.0} for r in clean_rows)


def test_attack_writes_a_region_models_predictions_as_brats_label_maps(oracle_subjects, tmp_path, monkeypatch):
    data, centres = oracle_subjects
    model = oracles(centres)["monai_brats"]  # channels TC, WT, ET
    monkeypatch.setattr(attack, "load_model", lambda path, device_type, **_: (model, {"multiple": 1}))
    output = tmp_path / "attacked"
    arguments = ["attack", "--model", "m.pt", "--input", str(data), "--attack", "fgm", "--eps", "1e-3", "--quiet"]
    assert main([*arguments, "--output", str(output)]) == 0
    for subject in find_subjects(data):
        truth = np.asarray(nib.load(subject.seg).dataobj)
        for kind in ("clean", "adversarial"):  # an eps of 1e-3 moves no voxel across a class
            written = nib.load(output / subject.id / f"{subject.id}_prediction_{kind}.nii.gz")
            np.testing.assert_array_equal(np.asarray(written.dataobj), truth)  # BraTS values 0, 1, 2, 4
    summary = json.loads((output / "attack_summary.json").read_text())
    assert [entry["dice_clean"] for entry in summary] == [{"WT": 1.0, "TC": 1.0, "ET": 1.0}] * 3


def test_a_sigmoid_model_without_regions_is_refused_in_one_line(oracle_subjects, tmp_path, capsys):
    data, _ = oracle_subjects
    model = UNet3D(4, 3, base_filters=2, depth=1)
    bare = PyTorchSegmenter(model, "dice_ce", input_shape=(4, *SHAPE), nb_classes=3, activation="sigmoid",
                            device_type="cpu")  # fmt: skip
    path = save_checkpoint(tmp_path / "bare.pt", model=model, segmenter=segmenter_settings(bare))
    output = tmp_path / "o"
    assert main(["evaluate", "--model", str(path), "--data", str(data), "--quiet", "--output", str(output)]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"art-seg evaluate: error: model '{path}': a sigmoid model with 3 channels and no region")
    assert "\n" not in error and not (output / "results.jsonl").exists()


def test_demo_regions_trains_region_models_and_writes_their_study_table(tmp_path, capsys):
    output = tmp_path / "demo"
    arguments = ["--subjects", "4", "--shape", "16", "16", "16", "--base-filters", "4", "--depth", "1", "--quiet"]
    arguments += ["--threads", "2", "--epochs", "1", "--defence-epochs", "1", "--eval-eps", "0.3", "--iterations", "1"]
    arguments += ["--regions"]
    assert main(["demo", *arguments, "--output", str(output)]) == 0
    assert "region (WT, TC, ET) models" in capsys.readouterr().out
    rows = [json.loads(line) for line in (output / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 3 * (1 + 4)  # 2 held-out subjects x 3 models x (clean + 4 attacks x 1 eps)
    assert all(list(row["dice"]) == ["WT", "TC", "ET"] for row in rows)
    settings = json.loads((output / "run.json").read_text())["fingerprints"]["models"]
    for name in ("undefended", "distilled", "adversarial"):
        assert settings[name]["inference"]["activation"] == "sigmoid"
        assert settings[name]["inference"]["regions"]["names"] == ["WT", "TC", "ET"]
    report = (output / "report.md").read_text()
    assert "region models, 'brats': sigmoid channels WT, TC, ET" in report
    for text in ("## undefended", "## distilled", "## adversarial", "Dice WT", "Gradient-masking check"):
        assert text in report
    assert all((output / "models" / f"{name}.pt").is_file() for name in ("undefended", "distilled", "adversarial"))


@pytest.mark.parametrize("command", ["train", "demo", "benchmark"])
def test_an_unknown_regions_preset_is_a_one_line_usage_error_naming_it(command, tmp_path, capsys):
    output = tmp_path / "o"
    assert main([command, "--regions", "brats2025", "--quiet", "--output", str(output)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"art-seg {command}: error: --regions must be one of (")
    assert "got 'brats2025'" in error and error.count("\n") == 1 and not output.exists()
