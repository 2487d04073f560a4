"""``--model`` given as a MONAI bundle folder, end to end on phantom data in the BraTS layout: ``art-seg evaluate``
scores it and (``--predictions``), as ``art-seg attack`` does, writes its predictions over the source scans in the
data's BraTS labels (checked against the bundle run the way MONAI runs it, with the BraTS bundle's own label
conversion); and the errors of a ``--model`` that is no model, or of nnU-Net options given for another kind."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from art_seg.cli.main import main
from art_seg.data import find_subjects, load_subject, make_brats_phantom
from art_seg.evaluation import read_results
from art_seg.integrations import model_kind
from tests.integrations.bundles import TO_BUNDLE, write_bundle
from tests.helpers import one_error_line

monai_bundle = pytest.importorskip("monai.bundle")

SHAPE = (24, 24, 16)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("brats")
    make_brats_phantom(folder, n_subjects=2, shape=SHAPE, seed=5)
    return folder


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return write_bundle(tmp_path_factory.mktemp("models") / "brats_bundle", seed=3)


def bundle_labels(folder, image):
    """The BraTS labels the bundle itself gives ``image`` (art_seg's channels): its network and inferer from
    ConfigParser, sigmoid and threshold 0.5, and the BraTS bundle's conversion (ET -> 4, else TC -> 1, else WT -> 2).
    Also the probabilities, to leave out float32 ties at 0.5."""
    parser = monai_bundle.ConfigParser()
    parser.read_config(str(folder / "configs" / "inference.json"))
    network = parser.get_parsed_content("network")
    network.load_state_dict(torch.load(folder / "models" / "model.pt", weights_only=True))
    network.eval()
    with torch.no_grad():
        logits = parser.get_parsed_content("inferer")(torch.from_numpy(image[None, TO_BUNDLE]), network)
    probabilities = torch.sigmoid(logits)[0]
    x = (probabilities >= 0.5).numpy()
    labels = np.where(x[2], 4, np.where(x[0], 1, np.where(x[1], 2, 0)))
    return labels, np.abs(probabilities.numpy() - 0.5).min(axis=0) < 1e-6


def test_kinds_are_recognised_from_the_contents(tmp_path, bundle):
    assert model_kind(bundle) == "monai"
    (tmp_path / "model.pt").write_bytes(b"x")
    assert model_kind(tmp_path / "model.pt") == "art_seg"
    nnunet = tmp_path / "Dataset001_BraTS" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    nnunet.mkdir(parents=True)
    for name in ("plans.json", "dataset.json"):
        (nnunet / name).write_text("{}")
    with pytest.raises(ValueError, match="has plans.json and dataset.json but no fold_X/ folder"):
        model_kind(nnunet)
    (nnunet / "fold_0").mkdir()
    assert model_kind(nnunet) == "nnunet"
    with pytest.raises(ValueError, match=r"is a folder of none of the known kinds \(expected an art_seg checkpoint"):
        model_kind(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        model_kind(tmp_path / "missing")


def check_predictions(data, bundle, path_of):
    """The prediction file ``path_of(subject id)`` of each subject, read back with nibabel: the source scan's grid
    and affine, BraTS 2020 label values, and equal to the bundle's own prediction (uncropped) wherever the
    bundle's float32 sigmoid is not a tie at 0.5."""
    for subject in find_subjects(data):
        image, _, meta = load_subject(subject, multiple=2)  # the bundle's "2*n"
        written = nib.load(path_of(subject.id))
        source = nib.load(subject.paths["t1"])
        assert written.shape == source.shape == SHAPE
        np.testing.assert_allclose(written.affine, source.affine)
        labels = np.asarray(written.dataobj)
        expected, tie = bundle_labels(bundle, image)
        assert set(np.unique(labels)) <= {0, 1, 2, 4} and len(np.unique(expected)) > 1
        inside = meta.crop_pad.invert(np.ones(meta.shape, dtype=bool))
        np.testing.assert_array_equal(labels[~inside], 0)
        ok = meta.crop_pad.invert(~tie, fill=True)
        np.testing.assert_array_equal(labels[ok], meta.crop_pad.invert(expected)[ok])


def test_evaluate_runs_a_bundle_end_to_end_and_writes_its_predictions(tmp_path, data, bundle):
    out = tmp_path / "evaluate"
    argv = ["evaluate", "--model", str(bundle), "--data", str(data), "--attacks", "fgsm", "--eps", "0.2",
            "--predictions", "--device", "cpu", "--threads", "1", "--quiet", "--output", str(out)]  # fmt: skip
    assert main(argv) == 0
    rows = read_results(out)
    assert {row["model"] for row in rows} == {"brats_bundle"}
    assert {row["subject"] for row in rows} == {s.id for s in find_subjects(data)}
    assert {row["attack"] for row in rows} == {"clean", "FGSM"}
    for row in rows:
        assert all(0.0 <= row["dice"][region] <= 1.0 for region in ("WT", "TC", "ET")), row
    assert (out / "report.md").is_file()
    predictions = out / "predictions" / "brats_bundle"
    check_predictions(data, bundle, lambda subject: predictions / f"{subject}_prediction.nii.gz")


def test_attack_writes_bundle_predictions_in_the_original_grid_and_brats_labels(tmp_path, data, bundle):
    out = tmp_path / "attack"
    argv = ["attack", "--model", str(bundle), "--input", str(data), "--attack", "fgsm", "--eps", "0.2",
            "--device", "cpu", "--threads", "1", "--quiet", "--output", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert len(json.loads((out / "attack_summary.json").read_text())) == 2
    check_predictions(data, bundle, lambda subject: out / subject / f"{subject}_prediction_clean.nii.gz")


def test_model_errors_are_one_line(tmp_path, capsys, data, bundle):
    def run(*extra):
        return main(["evaluate", "--data", str(data), "--device", "cpu", "--quiet", "--output",
                     str(tmp_path / "out"), "--model", *extra])  # fmt: skip

    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(str(empty)) == 1
    line = one_error_line(capsys, "evaluate")
    assert line.startswith(f"model '{empty}' is a folder of none of the known kinds (expected an art_seg checkpoint")
    assert "nnU-Net trained-model folder (plans.json, dataset.json, fold_X/)" in line
    assert "MONAI bundle folder (configs/inference.json)" in line

    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint\n")
    assert run(str(text)) == 1
    assert str(text) in one_error_line(capsys, "evaluate")

    assert run(str(bundle), "--folds", "0", "1") == 2
    line = one_error_line(capsys, "evaluate")
    assert line == f"--folds apply to nnU-Net model folders; --model '{bundle}' is a MONAI bundle folder"
    assert run(str(bundle), "--checkpoint", "checkpoint_best.pth") == 2
    assert "--checkpoint apply to nnU-Net model folders" in one_error_line(capsys, "evaluate")
    assert run(str(bundle), "--folds", "zero") == 2
    assert one_error_line(capsys, "evaluate") == "--folds must be fold numbers or 'all', got 'zero'"
    assert run(str(tmp_path / "missing")) == 1
    assert "does not exist (expected an art_seg checkpoint file" in one_error_line(capsys, "evaluate")
