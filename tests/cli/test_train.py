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
    assert main(["train", *TINY, "--epochs", "2", "--resume", *change, "--output", str(output)]) == 2
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
    assert main(["train", *TINY, "--epochs", "2", "--resume", "--output", str(output)]) == 2
    error = capsys.readouterr().err
    assert "best.pt' is from another architecture" in error and error.count("\n") == 1
