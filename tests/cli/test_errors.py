"""art-seg's failures: one line naming the file and the problem, never a traceback, a non-zero exit status, and
earlier results left whole (full or read-only disk, malformed checkpoints, unreadable subjects)."""

from __future__ import annotations

import argparse
import errno
import fractions
import os

import pytest
import torch

from art_seg.cli import attack as attack_command
from art_seg.cli.common import CommandError
from art_seg.cli.main import main
from art_seg.cli.train import new_segmenter
from art_seg.data import NiftiValidationError, find_subjects, make_brats_phantom
from art_seg.defences import save_checkpoint, segmenter_settings
from art_seg.defences.checkpoint import CHECKPOINT_FORMAT
from art_seg import _files
from tests.helpers import fail_writes, one_error_line

SHAPE = (24, 24, 16)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """An untrained tiny model.pt (what the commands load; its Dice does not matter here)."""
    settings = argparse.Namespace(seed=0, base_filters=4, depth=2, lr=1e-3)
    segmenter = new_segmenter((4, *SHAPE), settings, "cpu")
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_checkpoint(path, model=segmenter.model, segmenter=segmenter_settings(segmenter))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    make_brats_phantom(folder, n_subjects=3, shape=SHAPE, seed=3)
    return folder


WEIGHTS_ONLY_REFUSAL = (
    "checkpoint 'm.pt' is damaged or not a torch file: Weights only load failed. This file can still be loaded, "
    "to do so you have two options, \x1b[1mdo those steps only if you trust the source of the checkpoint\x1b[0m. "
    "\n\t(1) Re-running `torch.load` with `weights_only` set to `False` will likely succeed, but it can result in "
    "arbitrary code execution.\n\tWeightsUnpickler error: Unsupported global: GLOBAL x.Y was not an allowed global "
    "by default. Please use `torch.serialization.add_safe_globals([x.Y])` to allowlist it.\n\nCheck the "
    "documentation of torch.load to learn more."
)


@pytest.mark.parametrize(
    "error, code, expected",
    [
        (OSError(errno.ENOSPC, "No space left on device", "/out/report.md"), 1,
         "'/out/report.md': No space left on device"),
        (OSError(errno.EROFS, "Read-only file system", "/out/results.jsonl"), 1,
         "'/out/results.jsonl': Read-only file system"),
        (PermissionError(errno.EACCES, "Permission denied", "/in/seg.nii.gz"), 1,
         "'/in/seg.nii.gz': Permission denied"),
        (OSError(errno.ENOSPC, "No space left on device"), 1,
         "No space left on device (output folder 'out')"),
        (MemoryError("Unable to allocate 24.0 GiB for an array"), 1, "out of memory: Unable to allocate 24.0 GiB"),
        (RuntimeError("non-finite loss at epoch 3, batch 2"), 1, "non-finite loss at epoch 3, batch 2"),
        (KeyError("architecture"), 1, "missing entry 'architecture'"),
        (NiftiValidationError("/in/t1.nii.gz", "affine holds NaN or Inf:\n[[nan]]"), 1, "t1.nii.gz"),
        (ValueError(WEIGHTS_ONLY_REFUSAL), 1, "checkpoint 'm.pt' is damaged or not a torch file: "
         "torch.load(weights_only=True) refused it: Unsupported global: GLOBAL x.Y was not an allowed global by "
         "default."),
        (CommandError("--eps must be > 0, got -1"), 2, "--eps must be > 0, got -1"),
    ],
)  # fmt: skip
def test_every_failure_is_one_line_and_a_non_zero_exit(monkeypatch, capsys, error, code, expected) -> None:
    def failing(args):
        raise error

    monkeypatch.setattr(attack_command, "run", failing)
    assert main(["attack", "--model", "m.pt", "--input", "in", "--output", "out"]) == code
    line = one_error_line(capsys, "attack")
    assert expected in line
    assert "False" not in line and "safe_globals" not in line and "\x1b" not in line


def test_help_states_the_exit_statuses(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "Exit status: 0 done; 1 the run failed" in " ".join(capsys.readouterr().out.split())


def test_output_folder_under_a_file(tmp_path, model, data, capsys) -> None:
    (tmp_path / "file").write_text("a file, not a folder")
    output = tmp_path / "file" / "sub"  # NotADirectoryError
    argv = ["attack", "--model", str(model), "--input", str(data), "--quiet", "--output", str(output)]
    assert main(argv) == 1
    assert "file/sub' is not writable" in one_error_line(capsys, "attack")


def read_only_from_now_on(monkeypatch):
    """Every atomic write of art_seg._files fails as on a read-only file system."""

    def refuse(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(_files, "_open_temporary", refuse)


def test_read_only_output_gives_one_line_naming_the_file(tmp_path, model, data, monkeypatch, capsys) -> None:
    read_only_from_now_on(monkeypatch)
    subject = find_subjects(data)[0].paths["t1"].parent  # one subject is enough
    argv = ["attack", "--model", str(model), "--input", str(subject), "--attack", "fgsm", "--quiet",
            "--output", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 1
    line = one_error_line(capsys, "attack")
    # the first file written fails, an adversarial NIfTI volume (volumes go through the same atomic writer)
    first = tmp_path / "out" / subject.name / f"{subject.name}_adversarial_t1.nii.gz"
    assert line == f"{str(first)!r}: Read-only file system"


def test_full_disk_during_the_report_keeps_the_earlier_report(tmp_path, model, data, monkeypatch, capsys) -> None:
    output = tmp_path / "evaluated"
    argv = ["evaluate", "--model", f"m={model}", "--data", str(data), "--attacks", "fgsm", "--eps", "0.2",
            "--quiet", "--output", str(output)]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    report = output / "report.md"
    report.write_text(report.read_text() + "\nthe earlier report\n")
    before = {p.name: p.read_bytes() for p in output.iterdir() if p.is_file() and p.suffix in (".md", ".csv", ".png")}

    fail_writes(monkeypatch, lambda path: path.name in before)  # a full disk for the report's files
    assert main(argv) == 1
    assert one_error_line(capsys, "evaluate") == f"{str(output / 'summary.csv')!r}: No space left on device"
    after = {p.name: p.read_bytes() for p in output.iterdir() if p.is_file() and p.suffix in (".md", ".csv", ".png")}
    assert after == before
    assert not [p for p in output.iterdir() if p.name.endswith(".tmp")]


def test_malformed_checkpoints_are_named_in_one_line(tmp_path, data, capsys) -> None:
    no_architecture = tmp_path / "no_architecture.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "model": {}}, no_architecture)  # passes the safe loader
    wrong_settings = tmp_path / "wrong_settings.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "architecture": {"class": "UNet3D", "config": {}}, "segmenter": "x"},
               wrong_settings)  # fmt: skip
    pickled_code = tmp_path / "pickled_code.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "x": fractions.Fraction(1, 2)}, pickled_code)
    for path, problem in ((no_architecture, "'architecture'"), (wrong_settings, ""), (pickled_code, "Fraction")):
        argv = ["attack", "--model", str(path), "--input", str(data), "--output", str(tmp_path / "out")]
        assert main(argv) == 1, path
        line = one_error_line(capsys, "attack")
        assert f"{str(path)!r}" in line and problem in line, line
        assert "weights_only` set to `False" not in line and "safe_globals" not in line


def test_attack_fails_when_every_subject_is_skipped(tmp_path, model, capsys) -> None:
    data = tmp_path / "data"
    make_brats_phantom(data, n_subjects=2, shape=SHAPE, seed=4)
    subjects = find_subjects(data)
    flair = subjects[0].paths["flair"]
    flair.write_bytes(flair.read_bytes()[:100])  # a truncated scan: the subject cannot be loaded
    argv = ["attack", "--model", str(model), "--input", str(data), "--iterations", "1", "--quiet"]
    with pytest.warns(UserWarning, match=f"skipping subject {subjects[0].id}"):
        assert main([*argv, "--output", str(tmp_path / "one_bad")]) == 0
    out = capsys.readouterr().out
    assert "wrote 1 subject(s)" in out and "skipped 1 that could not be read" in out
    flair = subjects[1].paths["flair"]
    flair.write_bytes(flair.read_bytes()[:100])
    with pytest.warns(UserWarning, match="skipping subject"):
        assert main([*argv, "--output", str(tmp_path / "all_bad")]) == 1
    line = one_error_line(capsys, "attack")
    assert line.startswith(f"no subject could be loaded: 2 subjects were skipped: {subjects[0].id}: ")
    assert subjects[0].paths["flair"].name in line and "truncated" in line
    assert not (tmp_path / "all_bad" / "attack_summary.json").exists()
