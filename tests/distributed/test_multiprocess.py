"""Two gloo processes on the CPU (torchrun) against one process: DDP training and a sharded robustness run.

One torchrun launch (``_worker.py``) does all the distributed work; each test compares a part of it with the same
work done here in one process, with one thread like the workers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist

from art_seg.defences import read_checkpoint
from art_seg.evaluation import read_results, write_report
from tests.distributed import _worker

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 2

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed with the gloo backend"
)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """Folder of a 2-process run of ``_worker.py``."""
    out = tmp_path_factory.mktemp("distributed")
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(PROCESSES),
               "-m", "tests.distributed._worker", str(out)]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"torchrun failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return out


def state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def report(run: Path, rank: int = 0) -> dict:
    return json.loads((run / f"report.rank{rank}.json").read_text())


def without_seconds(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


@pytest.mark.parametrize("name", list(_worker.RUNS))
def test_ddp_training_equals_one_process_with_the_global_batch(run, one_thread, name) -> None:
    assert report(run)["world_size"] == PROCESSES
    seg, history = _worker.train(name)
    ranks = [state(run / f"{name}.rank{r}.pt") for r in range(PROCESSES)]
    assert max_difference(ranks[0], ranks[1]) == 0.0, "the processes ended with different weights"
    assert max_difference(seg.model.state_dict(), ranks[0]) < 1e-5
    assert seg.model.state_dict().keys() == ranks[0].keys()  # the plain module, not the DDP wrapper
    # the epoch loss and Dice of the global batches
    expected = [[r.loss, r.dice] for r in history]
    np.testing.assert_allclose(report(run)[name], expected, rtol=1e-5)
    assert report(run, 1)[name] == report(run)[name]


@pytest.mark.parametrize("name", list(_worker.OTHER_RUNS))
def test_other_trainers_and_fit_generator_match_one_process(run, one_thread, name) -> None:
    seg = _worker.OTHER_RUNS[name]()
    ranks = [state(run / f"{name}.rank{r}.pt") for r in range(PROCESSES)]
    assert max_difference(ranks[0], ranks[1]) == 0.0
    assert max_difference(seg.model.state_dict(), ranks[0]) < 1e-5


def test_adversarial_training_attacks_ceil_ratio_of_each_global_batch(run) -> None:
    # CLI defaults under torchrun --nproc_per_node 2: each rank holds one sample of a global batch of 2, so
    # ceil(0.5 * 2) = 1 sample per global batch, on rank 0 (round(0.5 * 1) == 0 used to attack none at all)
    assert report(run, 0)["adversarial_counts"] == [1, 1]
    assert report(run, 1)["adversarial_counts"] == []
    assert _worker.adversarial_counts() == [1, 1]  # one process, the same global batches


def test_a_nan_loss_on_one_rank_stops_every_rank(run) -> None:
    for rank in range(PROCESSES):
        message = report(run, rank)["nan_on_rank_1"]
        assert "loss is not finite" in message and "at epoch 1, batch 1 of 1 on 1 of 2 processes" in message
    assert _worker.nan_on_rank_1() == ""  # rank 0 alone trains on


def test_checkpoints_validation_and_resume_under_ddp(run, one_thread, tmp_path) -> None:
    seg, history = _worker.train_checkpointed(tmp_path)
    ranks = [state(run / f"checkpointed.rank{r}.pt") for r in range(PROCESSES)]
    assert max_difference(ranks[0], ranks[1]) == 0.0
    assert max_difference(seg.model.state_dict(), ranks[0]) < 1e-5
    # validation does not change training: the resumed run ends where the plain one does
    assert max_difference(ranks[0], state(run / "even.rank0.pt")) < 1e-6
    expected = [[r.loss, r.dice, r.val_dice] for r in history]
    np.testing.assert_allclose(report(run)["checkpointed"], expected, rtol=1e-5)
    assert report(run, 1)["checkpointed"] == report(run)["checkpointed"]  # the same val Dice on every rank
    checkpoint = read_checkpoint(run / "checkpoints" / "last.pt")
    assert checkpoint["epoch"] == 2 and checkpoint["config"]["batch_size"] == 4
    assert max_difference(checkpoint["model"], ranks[0]) == 0.0
    assert not list((run / "checkpoints").glob(".*.tmp"))


def test_sharded_evaluation_gives_the_rows_and_report_of_one_process(run, one_thread, tmp_path) -> None:
    seg = _worker.segmenter()
    seg.model.load_state_dict(state(run / "even.rank0.pt"))
    rows = _worker.evaluator(seg).run(_worker.samples(), tmp_path)
    write_report(rows, tmp_path / "report")

    folder = run / "evaluation"
    assert sorted(p.name for p in folder.glob("results*.jsonl")) == ["results.rank0.jsonl", "results.rank1.jsonl"]
    subjects = [[row["subject"] for row in read_results(folder / f"results.rank{r}.jsonl")] for r in range(2)]
    assert subjects == [["subject_000"] * 2 + ["subject_002"] * 2, ["subject_001"] * 2 + ["subject_003"] * 2]
    # every rank returns all rows, in the order of a single-process run
    for rank in range(PROCESSES):
        assert without_seconds(report(run, rank)[f"rows.rank{rank}"]) == without_seconds(rows)
    as_set = {json.dumps(row, sort_keys=True) for row in without_seconds(read_results(folder))}
    assert as_set == {json.dumps(row, sort_keys=True) for row in without_seconds(rows)}
    assert "seconds" not in (tmp_path / "report" / "summary.csv").read_text().splitlines()[0].split(",")
    for name in ("summary.csv", "report.md"):
        assert (folder / "report" / name).read_bytes() == (tmp_path / "report" / name).read_bytes(), name
