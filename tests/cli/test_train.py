"""``art-seg train``: a resume must be the same run (settings, data, architecture); model.pt lists the subjects
actually trained on."""

from __future__ import annotations

import shutil

import pytest

from art_seg.cli.main import main
from art_seg.data import make_brats_phantom
from art_seg.defences import read_checkpoint

TINY = ["--subjects", "4", "--shape", "16", "16", "16", "--base-filters", "2", "--depth", "1", "--quiet",
        "--threads", "2", "--epochs", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A one-epoch run on the phantom (its checkpoints hold a best.pt: half the subjects validate)."""
    output = tmp_path_factory.mktemp("train")
    assert main(["train", *TINY, "--output", str(output)]) == 0
    return output


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--lr", "0.01"], "optimizer.groups[0].lr: checkpoint 0.003, now 0.01"),
        (["--val-fraction", "0.25"], "training_data: checkpoint '"),
        (["--base-filters", "4"], "last.pt' is from another architecture: config"),
    ],
)
def test_resume_with_changed_settings_is_refused_in_one_line(trained, tmp_path, capsys, change, message) -> None:
    # a changed --lr or other data used to resume silently
    output = tmp_path / "run"
    shutil.copytree(trained, output)
    capsys.readouterr()
    assert main(["train", *TINY, "--epochs", "2", "--resume", *change, "--output", str(output)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("art-seg train: error: ") and message in error and error.count("\n") == 1
    assert read_checkpoint(output / "checkpoints" / "last.pt")["epoch"] == 1


def test_resume_refuses_a_foreign_best_checkpoint(trained, tmp_path, capsys) -> None:
    other = tmp_path / "other"
    assert main(["train", *TINY, "--base-filters", "4", "--output", str(other)]) == 0
    output = tmp_path / "run"
    shutil.copytree(trained, output)
    shutil.copy(other / "checkpoints" / "best.pt", output / "checkpoints" / "best.pt")
    capsys.readouterr()
    assert main(["train", *TINY, "--epochs", "2", "--resume", "--output", str(output)]) == 1
    error = capsys.readouterr().err
    assert "best.pt' is from another architecture" in error and error.count("\n") == 1


def test_model_lists_only_the_subjects_it_was_trained_and_validated_on(tmp_path, capsys) -> None:
    # a subject skipped for a damaged file was still listed among the training subjects of model.pt
    data = tmp_path / "data"
    make_brats_phantom(data, n_subjects=5, shape=(16, 16, 16), seed=1)
    damaged = data / "BraTS20_Training_003" / "BraTS20_Training_003_flair.nii.gz"
    damaged.write_bytes(damaged.read_bytes()[:100])
    output = tmp_path / "train"
    with pytest.warns(UserWarning, match="BraTS20_Training_003"):
        assert main(["train", *TINY, "--data", str(data), "--output", str(output)]) == 0
    config = read_checkpoint(output / "model.pt")["config"]
    used = config["train_subjects"] + config["val_subjects"]
    assert "BraTS20_Training_003" not in used and len(used) == 4 and len(set(used)) == 4
    assert f"on {len(config['train_subjects'])} subjects" in capsys.readouterr().out
