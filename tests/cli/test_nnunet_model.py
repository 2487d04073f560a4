"""``art-seg attack`` and ``art-seg evaluate --predictions`` with ``--model`` an nnU-Net trained-model folder, end to
end on phantom BraTS files: the written predictions open on the source grid, in the data's label values (BraTS 2018
here, not nnU-Net's 1 edema, 2 necrosis, 3 enhancing), and equal nnU-Net's own prediction from the same files."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

pytest.importorskip("nnunetv2")

from art_seg.cli.main import main  # noqa: E402
from art_seg.data import make_brats_phantom  # noqa: E402
from art_seg.data.labels import classes_to_labels, labels_to_classes  # noqa: E402
from tests.integrations.nnunet_builders import BRATS_REGIONS, make_nnunet_folder, nnunet_predictor  # noqa: E402
from tests.helpers import torch_threads  # noqa: E402

QUICK = ["--quiet", "--threads", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Two phantom subjects (BraTS 2020 layout, labels 0, 1, 2, 4) and a region-based nnU-Net folder (two folds,
    ``transpose_forward`` (2, 0, 1), mirroring over one axis), and nnU-Net's own prediction of each subject."""
    root = tmp_path_factory.mktemp("nnunet_cli")
    subjects = make_brats_phantom(root / "data", n_subjects=2, shape=(24, 24, 20), seed=5)
    folder = make_nnunet_folder(root / "model", BRATS_REGIONS, transpose_forward=(2, 0, 1), mirror_axes=(0,))
    return root, subjects, folder, {subject.id: _nnunet_prediction(folder, subject) for subject in subjects}


def _nnunet_prediction(folder, subject) -> np.ndarray:
    """nnU-Net's own prediction from the subject's files (folds 0 and 1, mirroring on), in BraTS 2018 values, on
    nibabel's axes."""
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    data, properties = SimpleITKIO().read_images([str(subject.paths[m]) for m in ("t1", "t1ce", "t2", "flair")])
    with torch_threads(1), nnunet_predictor(folder, (0, 1), True) as predictor:  # tiny networks: one thread
        segmentation = predictor.predict_single_npy_array(data, properties)
    return classes_to_labels(labels_to_classes(segmentation.transpose(2, 1, 0), "msd_brats"), "brats2018")


def test_attack_writes_nnunets_prediction_on_the_source_grid_in_the_datas_labels(setup):
    root, subjects, folder, expected = setup
    output, subject = root / "attack", subjects[0]
    command = ["attack", "--model", str(folder), "--folds", "0", "1", "--input", str(subject.folder),
               "--attack", "fgsm", "--eps", "0.1", "--output", str(output), *QUICK]  # fmt: skip
    assert main(command) == 0
    source = nib.load(subject.paths["t1"])
    for kind in ("clean", "adversarial"):
        written = nib.load(output / subject.id / f"{subject.id}_prediction_{kind}.nii.gz")
        assert written.shape == source.shape and np.allclose(written.affine, source.affine)
        assert set(np.unique(np.asarray(written.dataobj)).tolist()) <= {0, 1, 2, 4}
    clean = np.asarray(nib.load(output / subject.id / f"{subject.id}_prediction_clean.nii.gz").dataobj)
    assert len(np.unique(expected[subject.id])) >= 2, "degenerate case: nnU-Net predicts one label everywhere"
    assert (clean == expected[subject.id]).mean() >= 0.999


def test_evaluate_scores_an_nnunet_folder_and_writes_nnunets_predictions(setup):
    root, subjects, folder, expected = setup
    output = root / "evaluate"
    command = ["evaluate", "--model", f"nnunet={folder}", "--folds", "0", "1", "--data", str(root / "data"),
               "--attacks", "fgsm", "--eps", "0.1", "--predictions", "--output", str(output), *QUICK]  # fmt: skip
    assert main(command) == 0
    rows = [json.loads(line) for line in (output / "results.jsonl").read_text().splitlines()]
    assert len(rows) == len(subjects) * 2  # clean and FGSM at one eps
    assert {row["model"] for row in rows} == {"nnunet"}
    assert (output / "report.md").is_file()
    for subject in subjects:
        written = nib.load(output / "predictions" / "nnunet" / f"{subject.id}_prediction.nii.gz")
        source = nib.load(subject.paths["t1"])
        assert written.shape == source.shape and np.allclose(written.affine, source.affine)
        assert (np.asarray(written.dataobj) == expected[subject.id]).mean() >= 0.999


def test_data_nnunet_would_resample_is_refused(setup, tmp_path, capsys):
    """Scans at 2 mm for a model planned at 1 mm: nnU-Net would resample them; art_seg refuses, saying so."""
    folder = setup[2]
    (subject,) = make_brats_phantom(tmp_path / "data", n_subjects=1, shape=(24, 24, 20), seed=6, spacing=2.0)
    command = ["attack", "--model", str(folder), "--input", str(subject.folder), "--attack", "fgsm",
               "--output", str(tmp_path / "out"), *QUICK]  # fmt: skip
    assert main(command) == 1
    assert "nnU-Net would resample" in capsys.readouterr().err
