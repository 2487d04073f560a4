"""What each process of the distributed tests runs (``torchrun -m tests.distributed._worker OUT``), and the
single-process references the tests compare it with (imported by ``test_distributed.py``).

Every process trains tiny UNet3Ds data-parallel, then runs a sharded robustness evaluation; rank 0 saves what the
test compares under ``OUT`` (each rank saves its own final weights, to check that the ranks agree).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from art_seg import distributed
from art_seg.attacks import FGSM
from art_seg.defences import AdversarialTrainer, DistillationTrainer, NonFiniteLossError, SegmentationTrainer
from art_seg.estimators import PyTorchSegmenter
from art_seg.evaluation import RobustnessEvaluator, samples_from_arrays, write_report
from art_seg.models import UNet3D
from tests.helpers import make_blob_task

SHAPE = (8, 8, 8)
REGIONS = {"c1": (1,), "c2": (2,)}
#: name -> (number of training samples, global batch). Last batch of "uneven": 3 samples, cut 2 + 1; of
#: "one_left": 1 sample, leaving rank 1 an empty slice
RUNS = {"even": (8, 4), "uneven": (7, 4), "one_left": (5, 4)}


def segmenter() -> PyTorchSegmenter:
    torch.manual_seed(0)
    model = UNet3D(2, 3, base_filters=2, depth=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return PyTorchSegmenter(
        model, "dice_ce", input_shape=(2, *SHAPE), nb_classes=3, optimizer=optimizer, device_type="cpu"
    )


def data(n: int) -> tuple[np.ndarray, np.ndarray]:
    return make_blob_task(n, seed=0, shape=SHAPE)


def train(name: str) -> tuple[PyTorchSegmenter, list]:
    n, batch = RUNS[name]
    seg = segmenter()
    history = SegmentationTrainer(seg, seed=0).fit(*data(n), batch_size=batch, nb_epochs=2)
    return seg, history


def train_adversarial() -> PyTorchSegmenter:
    """FGSM on every sample: deterministic, so the distributed run can match the single-process one."""
    seg = segmenter()
    AdversarialTrainer(seg, FGSM(seg, eps=0.2), ratio=1.0, seed=0).fit(*data(8), batch_size=4, nb_epochs=2)
    return seg


def train_distilled() -> PyTorchSegmenter:
    """Teacher, then student: two DDP runs in a row."""
    seg = segmenter()
    DistillationTrainer(seg, temperature=2.0, alpha=0.5, teacher_epochs=1, seed=0).fit(*data(8), 4, 2)
    return seg


class ListHeads(torch.nn.Module):
    """Deep supervision as nnU-Net's networks do it: a list of heads at full, half and quarter resolution, each
    with parameters of its own. nnU-Net's weights (2/3, 1/3, 0) leave the quarter head's without a loss."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Conv3d(2, 4, 3, padding=1)
        self.heads = torch.nn.ModuleList(torch.nn.Conv3d(4, 3, 1) for _ in range(3))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = torch.tanh(self.body(x))
        return [head(torch.nn.functional.avg_pool3d(features, 2**i)) for i, head in enumerate(self.heads)]


def train_deep_supervision() -> PyTorchSegmenter:
    """A deeply supervised model whose lowest head has weight 0 (DDP refuses parameters left without gradient)."""
    torch.manual_seed(0)
    model = ListHeads()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    seg = PyTorchSegmenter(
        model, "dice_ce", input_shape=(2, *SHAPE), nb_classes=3, optimizer=optimizer, device_type="cpu"
    )
    SegmentationTrainer(seg, seed=0).fit(*data(8), batch_size=4, nb_epochs=2)
    return seg


def train_from_batches() -> PyTorchSegmenter:
    """``fit_generator`` on this process's share of fixed global batches of 4 (all of them in one process)."""
    x, y = data(8)
    processes, rank = distributed.world_size(), distributed.rank()
    share = slice(rank * 4 // processes, (rank + 1) * 4 // processes)
    batches = [(x[k : k + 4][share], y[k : k + 4][share]) for k in (4, 0)]
    seg = segmenter()
    SegmentationTrainer(seg, seed=0).fit_generator(batches, nb_epochs=2)
    return seg


def train_checkpointed(folder: Path) -> tuple[PyTorchSegmenter, list]:
    """The "even" run with validation and checkpoints, stopped after epoch 1 and resumed by a fresh trainer."""
    x, y = data(8)
    validation = make_blob_task(2, seed=5, shape=SHAPE)
    options = dict(seed=0, checkpoint_dir=folder, patience=3, restore_best=False)
    SegmentationTrainer(segmenter(), **options).fit(x, y, 4, 1, validation)
    seg = segmenter()
    history = SegmentationTrainer(seg, **options).fit(x, y, 4, 2, validation, resume=True)
    return seg, history


def adversarial_counts() -> list[int]:
    """Samples this process attacks per step with the CLI defaults (global batch 2, ratio 0.5), 4 samples."""
    seg = segmenter()
    attack = FGSM(seg, eps=0.2)
    counts: list[int] = []
    generate = attack.generate
    attack.generate = lambda x, *args, **kwargs: counts.append(len(x)) or generate(x, *args, **kwargs)
    AdversarialTrainer(seg, attack, ratio=0.5, seed=0).fit(*data(4), batch_size=2, nb_epochs=1)
    return counts


class NaNOnRank1(SegmentationTrainer):
    """Its loss is NaN on rank 1 only: every rank must stop with the error, none left waiting in an all-reduce."""

    def _loss(self, logits, labels, x_model):
        loss = super()._loss(logits, labels, x_model)
        return loss * float("nan") if distributed.rank() == 1 else loss


def nan_on_rank_1() -> str:
    """The error message of a run whose loss is NaN on rank 1 ("" when it trains to the end)."""
    try:
        NaNOnRank1(segmenter(), seed=0).fit(*data(4), batch_size=4, nb_epochs=1)
    except NonFiniteLossError as error:
        return str(error)
    return ""


#: more runs, each to match its single-process run: adversarial (each process attacks its own slice; FGSM on every
#: sample, so deterministic), distillation (teacher and student trained one after the other), fit_generator, deep
#: supervision with a head of weight 0
OTHER_RUNS = {
    "adversarial": train_adversarial,
    "distilled": train_distilled,
    "batches": train_from_batches,
    "deep_supervision": train_deep_supervision,
}


def evaluator(seg: PyTorchSegmenter) -> RobustnessEvaluator:
    return RobustnessEvaluator({"m": seg}, ["fgsm"], [0.3], regions=REGIONS, seed=0)


def samples() -> list:
    return samples_from_arrays(*make_blob_task(4, seed=1, shape=SHAPE))


def main(out: Path) -> None:
    distributed.init_from_env("gloo")
    rank = distributed.rank()
    report: dict = {"world_size": distributed.world_size()}
    for name in RUNS:
        seg, history = train(name)
        torch.save(seg.model.state_dict(), out / f"{name}.rank{rank}.pt")
        report[name] = [[r.loss, r.dice] for r in history]
    seg, history = train_checkpointed(out / "checkpoints")
    torch.save(seg.model.state_dict(), out / f"checkpointed.rank{rank}.pt")
    report["checkpointed"] = [[r.loss, r.dice, r.val_dice] for r in history]
    for name, train_one in OTHER_RUNS.items():
        torch.save(train_one().model.state_dict(), out / f"{name}.rank{rank}.pt")
    report["adversarial_counts"] = adversarial_counts()
    report["nan_on_rank_1"] = nan_on_rank_1()

    seg, _ = train("even")
    rows = evaluator(seg).run(samples(), out / "evaluation")
    report[f"rows.rank{rank}"] = rows
    if rank == 0:
        write_report(rows, out / "evaluation" / "report")
    (out / f"report.rank{rank}.json").write_text(json.dumps(report))
    distributed.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
