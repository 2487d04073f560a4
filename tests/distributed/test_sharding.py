"""Distributed helpers and the sharding logic, in one process: without a process group the helpers are no-ops,
so a run of ``W`` processes is played rank by rank with ``world_size`` and ``rank`` patched."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from art_seg import distributed
from art_seg.attacks import FGSM
from art_seg.defences import AdversarialTrainer, SegmentationTrainer, training
from art_seg.evaluation import read_results
from tests.distributed import _worker


@pytest.fixture()
def as_rank(monkeypatch):
    """``as_rank(r, w)``: make this process look like rank ``r`` of ``w`` (collectives stay no-ops)."""

    def patch(rank: int, world: int) -> None:
        monkeypatch.setattr(distributed, "rank", lambda: rank)
        monkeypatch.setattr(distributed, "world_size", lambda: world)

    return patch


def without_seconds(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


# ----------------------------------------------------------------------------------------------- helpers
def test_helpers_without_a_process_group(monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.init_from_env() is False
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert distributed.init_from_env("gloo") is False
    assert (distributed.is_distributed(), distributed.rank(), distributed.world_size()) == (False, 0, 1)
    value = {"a": [1, 2]}
    assert distributed.broadcast_object(value) is value
    assert distributed.all_sum([1, 2.5]) == [1.0, 2.5]
    distributed.barrier()
    distributed.shutdown()


def test_init_from_env_bad_settings(monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE must be an integer >= 1, got 'two'"):
        distributed.init_from_env()
    monkeypatch.setenv("WORLD_SIZE", "0")
    with pytest.raises(ValueError, match="WORLD_SIZE must be >= 1, got 0"):
        distributed.init_from_env()
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="backend must be one available in this torch build .*got 'carrier-pigeon'"):
        distributed.init_from_env("carrier-pigeon")
    with pytest.raises(TypeError, match="backend must be str"):
        distributed.init_from_env(2)
    assert not distributed.is_distributed()


@pytest.mark.parametrize(
    ("size", "parts", "bounds"),
    [
        (4, 2, [(0, 2), (2, 4)]),
        (5, 3, [(0, 2), (2, 4), (4, 5)]),
        (3, 2, [(0, 2), (2, 3)]),
        (1, 2, [(0, 1), (1, 1)]),
        (0, 3, [(0, 0)] * 3),
        (7, 1, [(0, 7)]),
    ],
)
def test_shard_bounds(size, parts, bounds) -> None:
    assert [distributed.shard_bounds(size, parts, r) for r in range(parts)] == bounds


def test_shard_bounds_cover_in_order_and_differ_by_at_most_one() -> None:
    for size in range(12):
        for parts in range(1, 6):
            bounds = [distributed.shard_bounds(size, parts, r) for r in range(parts)]
            assert [a for a, _ in bounds[1:]] == [b for _, b in bounds[:-1]]
            assert bounds[0][0] == 0 and bounds[-1][1] == size
            lengths = [b - a for a, b in bounds]
            assert max(lengths) - min(lengths) <= 1 and lengths == sorted(lengths, reverse=True)


def test_shard_bounds_bad_arguments() -> None:
    with pytest.raises(ValueError, match="index must be <= 1, got 2"):
        distributed.shard_bounds(4, 2, 2)
    with pytest.raises(ValueError, match="parts must be >= 1, got 0"):
        distributed.shard_bounds(4, 0, 0)


# ---------------------------------------------------------------------------------------------- training
def test_global_batch_must_split_evenly_over_the_processes(as_rank) -> None:
    as_rank(0, 2)
    x, y = _worker.data(4)
    with pytest.raises(ValueError, match="batch_size must be a multiple of the number of processes 2 .*got 3"):
        SegmentationTrainer(_worker.segmenter()).fit(x, y, batch_size=3, nb_epochs=1)


class _Recorder(SegmentationTrainer):
    def _step(self, x_batch, y_batch, share, batch_size, where):
        self.steps.append((x_batch.copy(), share))
        return 0.5, 0.25  # no training: only the slicing is under test


def test_each_rank_trains_its_contiguous_slice_of_the_same_global_batch(as_rank, monkeypatch) -> None:
    monkeypatch.setattr(training, "_data_parallel", lambda model, device: None)
    x, y = _worker.data(5)
    x_marked = x.copy()
    x_marked[:, 0, 0, 0, 0] = np.arange(5)  # sample ids, to follow the samples
    slices, means = {}, []
    for rank in (0, 1):
        as_rank(rank, 2)
        trainer = _Recorder(_worker.segmenter(), seed=3)
        trainer.steps = []
        history = trainer.fit(x_marked, y, batch_size=4, nb_epochs=1)
        slices[rank] = [(batch[:, 0, 0, 0, 0].astype(int).tolist(), share) for batch, share in trainer.steps]
        means.append((history[0].loss, history[0].dice))
    # what all_sum would have made of the two ranks' share-weighted sums: the plain mean over the global batches
    assert np.mean(means, axis=0).tolist() == [0.5, 0.25]
    order = torch.randperm(5, generator=torch.Generator().manual_seed(training.epoch_seed(3, 0))).tolist()
    assert slices[0] == [(order[0:2], 1.0), ([order[4]], 2.0)]
    # rank 1's last slice is empty: a weight-0 step on a stand-in sample joins the all-reduce
    assert slices[1] == [(order[2:4], 1.0), ([order[4]], 0.0)]


def test_ranks_draw_their_own_random_state(as_rank, monkeypatch) -> None:
    monkeypatch.setattr(training, "_data_parallel", lambda model, device: None)
    draws = {}

    class Draw(SegmentationTrainer):
        def _step(self, x_batch, y_batch, share, batch_size, where):
            draws[self.name] = float(torch.rand(()))
            return 0.0, 0.0

    x, y = _worker.data(2)
    for name, (rank, world) in {"alone": (0, 1), "rank0": (0, 2), "rank1": (1, 2)}.items():
        as_rank(rank, world)
        trainer = Draw(_worker.segmenter(), seed=0)
        trainer.name = name
        trainer.fit(x, y, batch_size=2, nb_epochs=1)
    # rank 0 draws what a single process draws, the other ranks their own
    assert draws["alone"] == draws["rank0"] != draws["rank1"]
    assert training.epoch_seed(0, 0) == training.epoch_seed(0, 0, rank=0) != training.epoch_seed(0, 0, rank=1)


class _Counting(AdversarialTrainer):
    """Records how many samples each step attacks, in :attr:`attacked`."""

    def __init__(self, seg, ratio):
        attack = FGSM(seg, eps=0.2)
        generate = attack.generate

        def counted(x, *args, **kwargs):
            self.attacked[-1] += len(x)
            return generate(x, *args, **kwargs)

        attack.generate = counted
        super().__init__(seg, attack, ratio=ratio, seed=0)
        self.attacked = []

    def _step(self, *args):
        self.attacked.append(0)
        return super()._step(*args)


@pytest.mark.parametrize(("n", "batch_size", "ratio"), [(4, 2, 0.5), (5, 4, 0.5), (6, 6, 0.25)])
def test_adversarial_samples_per_global_batch_do_not_depend_on_the_processes(
    as_rank, monkeypatch, n, batch_size, ratio
) -> None:
    # with the CLI defaults (batch 2, ratio 0.5) on 2 processes each rank held one sample and round(0.5) == 0
    # attacked none: adversarial training silently became plain training
    monkeypatch.setattr(training, "_data_parallel", lambda model, device: None)
    x, y = _worker.data(n)
    attacked = {}
    for world in (1, 2):
        per_rank = []
        for rank in range(world):
            as_rank(rank, world)
            trainer = _Counting(_worker.segmenter(), ratio)
            trainer.fit(x, y, batch_size=batch_size, nb_epochs=1)
            per_rank.append(trainer.attacked)
        attacked[world] = np.sum(per_rank, axis=0).tolist()  # per global batch, over the ranks
    sizes = [min(batch_size, n - start) for start in range(0, n, batch_size)]
    assert attacked[1] == attacked[2] == [math.ceil(ratio * size) for size in sizes]


def test_only_rank_0_writes_checkpoints(as_rank, monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(training, "_data_parallel", lambda model, device: None)
    as_rank(1, 2)
    x, y = _worker.data(4)
    SegmentationTrainer(_worker.segmenter(), checkpoint_dir=tmp_path / "ckpt").fit(x, y, batch_size=2, nb_epochs=1)
    assert not (tmp_path / "ckpt").exists()


# -------------------------------------------------------------------------------------------- evaluation
def test_sharded_evaluation_played_rank_by_rank_equals_one_process(as_rank, tmp_path) -> None:
    seg = _worker.segmenter()
    samples = _worker.samples()[:3]
    whole = _worker.evaluator(seg).run(samples, tmp_path / "whole")

    folder = tmp_path / "sharded"
    as_rank(1, 2)
    ones = _worker.evaluator(seg).run(samples, folder)
    assert {row["subject"] for row in ones} == {"subject_001"}
    with (folder / "results.rank1.jsonl").open("a") as f:  # an interrupted write on rank 1
        f.write('{"model": "m", "attack": "clean"')
    as_rank(0, 2)
    with pytest.warns(UserWarning, match="results.rank1.jsonl' ends in a partial line"):
        rows = _worker.evaluator(seg).run(samples, folder)
    assert sorted(p.name for p in folder.glob("results*")) == ["results.rank0.jsonl", "results.rank1.jsonl"]
    assert without_seconds(rows) == without_seconds(whole)  # merged, in single-process order
    assert [r["subject"] for r in read_results(folder / "results.rank0.jsonl")] == ["subject_000"] * 2 + [
        "subject_002"
    ] * 2

    # resumed by one process: everything is done already, nothing is added
    as_rank(0, 1)
    again = _worker.evaluator(seg).run(samples, folder)
    assert without_seconds(again) == without_seconds(whole)
    assert read_results(folder / "results.jsonl") == []

    # and by three: only the missing subject is evaluated, by the rank it falls to (position 3 % 3 == 0)
    more = _worker.samples()
    as_rank(1, 3)
    assert len(_worker.evaluator(seg).run(more, folder)) == 3 * 2  # rank 0 has not run yet
    as_rank(0, 3)
    assert len(_worker.evaluator(seg).run(more, folder)) == 4 * 2
    assert [r["subject"] for r in read_results(folder / "results.rank0.jsonl")][-2:] == ["subject_003"] * 2


def test_read_results_merges_the_files_of_a_folder(tmp_path) -> None:
    def row(subject: str) -> str:
        return json.dumps({"model": "m", "attack": "clean", "eps": 0.0, "subject": subject}) + "\n"

    (tmp_path / "results.rank10.jsonl").write_text(row("s10"))
    (tmp_path / "results.rank2.jsonl").write_text(row("s2") + '{"model": "m", "sub')
    (tmp_path / "results.jsonl").write_text(row("s"))
    (tmp_path / "results.rankX.jsonl").write_text("not results")
    (tmp_path / "run.json").write_text("{}")
    assert [r["subject"] for r in read_results(tmp_path)] == ["s", "s2", "s10"]
    assert [r["subject"] for r in read_results(tmp_path / "results.rank2.jsonl")] == ["s2"]
    assert read_results(tmp_path / "missing") == []
    (tmp_path / "results.rank3.jsonl").write_text("[1]\n")
    with pytest.raises(ValueError, match="results.rank3.jsonl' line 1 is not a JSON object"):
        read_results(tmp_path)
