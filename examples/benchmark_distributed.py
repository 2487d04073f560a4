"""Training throughput of data-parallel training (``torch.distributed``, gloo on the CPU) for 1 and 2 processes.

Trains a small UNet3D with :class:`~art_seg.defences.SegmentationTrainer` on z-scored phantom subjects
(:func:`art_seg.data.make_phantom_volumes`), the same global batch for every process count, and prints training
samples per second (the median of ``--repeats`` timed runs, after one warm-up epoch). The script launches itself
once per process count through ``python -m torch.distributed.run --standalone --nproc_per_node P``; each process
gets ``cores / P`` threads. Every run starts from the same weights and takes the same steps (the update of ``P``
processes equals that of one with the whole global batch), so the figures compare like with like::

    python examples/benchmark_distributed.py                           # 1 and 2 processes, 32^3 volumes
    python examples/benchmark_distributed.py --processes 1 2 4 --shape 48 48 48 --subjects 16 --batch-size 8

On a machine with 2 cores, 2 processes cannot be expected to beat 1: they share the cores that one process uses
with 2 threads, and add the gradient all-reduce and a copy of the data (a small gain or loss there only says how
well one process uses 2 threads on small convolutions, and on a shared machine it is mostly noise). The figure is
meant for machines with many cores (and, launched with ``torchrun`` and the nccl backend, one process per GPU).

Where a GPU is present (or with ``--precision cpu``), it then compares one process training in float32 against bf16
autocast (``PyTorchSegmenter(autocast="bfloat16")``), samples per second, on that device.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from art_seg import distributed
from art_seg.data import labels_to_classes, make_phantom_volumes, zscore_
from art_seg.defences import SegmentationTrainer
from art_seg.estimators import PyTorchSegmenter
from art_seg.models import UNet3D


def phantoms(n: int, shape: tuple[int, int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` phantom subjects: images ``(n, 4, *shape)`` z-scored over the brain, labels ``(n, *shape)`` 0..3."""
    images, labels = [], []
    for index in range(n):
        image, label = make_phantom_volumes(index, shape, seed=seed)
        zscore_(image)
        images.append(image)
        labels.append(labels_to_classes(label))
    return np.stack(images), np.stack(labels)


def worker(args: argparse.Namespace) -> None:
    """One process of a run: train, time, and (rank 0) write the result to ``args.out``."""
    distributed.init_from_env("gloo")
    x, y = phantoms(args.subjects, tuple(args.shape), args.seed)
    torch.manual_seed(args.seed)
    model = UNet3D(4, 4, base_filters=args.base_filters, depth=args.depth)
    segmenter = PyTorchSegmenter(
        model, "dice_ce", input_shape=x.shape[1:], nb_classes=4,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), device_type="cpu",
    )  # fmt: skip
    SegmentationTrainer(segmenter, seed=args.seed).fit(x, y, batch_size=args.batch_size, nb_epochs=1)  # warm-up
    timings = []
    for _ in range(args.repeats):
        distributed.barrier()
        start = time.perf_counter()
        SegmentationTrainer(segmenter, seed=args.seed).fit(x, y, batch_size=args.batch_size, nb_epochs=args.epochs)
        distributed.barrier()
        timings.append(time.perf_counter() - start)
    if distributed.rank() == 0:
        seconds = float(np.median(timings))
        result = {
            "processes": distributed.world_size(),
            "threads": torch.get_num_threads(),
            "seconds": seconds,
            "samples_per_second": args.epochs * len(x) / seconds,
        }
        Path(args.out).write_text(json.dumps(result))
    distributed.shutdown()


def precision_benchmark(args: argparse.Namespace, device_type: str) -> None:
    """Samples per second of one process training in float32 and under bf16 autocast on ``device_type``."""
    x, y = phantoms(args.subjects, tuple(args.shape), args.seed)
    rates = {}
    for autocast in (None, "bfloat16"):
        torch.manual_seed(args.seed)
        model = UNet3D(4, 4, base_filters=args.base_filters, depth=args.depth)
        segmenter = PyTorchSegmenter(
            model, "dice_ce", input_shape=x.shape[1:], nb_classes=4, autocast=autocast, device_type=device_type,
            optimizer=torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9),
        )  # fmt: skip
        trainer = SegmentationTrainer(segmenter, seed=args.seed)
        trainer.fit(x, y, batch_size=args.batch_size, nb_epochs=1)  # warm-up
        timings = []
        for _ in range(args.repeats):
            if segmenter.device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            trainer.fit(x, y, batch_size=args.batch_size, nb_epochs=args.epochs)
            if segmenter.device.type == "cuda":
                torch.cuda.synchronize()
            timings.append(time.perf_counter() - start)
        rates[autocast or "float32"] = args.epochs * len(x) / float(np.median(timings))
    device = torch.cuda.get_device_name() if device_type == "gpu" else "CPU"
    print(
        f"\none process on {device}: float32 {rates['float32']:.2f} samples/s, bf16 autocast "
        f"{rates['bfloat16']:.2f} samples/s ({rates['bfloat16'] / rates['float32']:.2f}x)"
    )


def launch(processes: int, args: argparse.Namespace, out: Path) -> dict:
    """Run this script as ``processes`` workers under torchrun; their result."""
    threads = max(1, (os.cpu_count() or 1) // processes)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
        __file__, "--worker", "--out", str(out), "--subjects", str(args.subjects),
        "--shape", *map(str, args.shape), "--batch-size", str(args.batch_size), "--epochs", str(args.epochs),
        "--repeats", str(args.repeats), "--base-filters", str(args.base_filters), "--depth", str(args.depth),
        "--seed", str(args.seed),
    ]  # fmt: skip
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="process counts to compare")
    parser.add_argument("--subjects", type=int, default=8, help="training subjects")
    parser.add_argument("--shape", type=int, nargs=3, default=[32, 32, 32], help="volume shape (each >= 16)")
    parser.add_argument("--batch-size", type=int, default=4, help="global batch (a multiple of each count)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (after one warm-up epoch)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of --epochs each; the median is shown")
    parser.add_argument("--base-filters", type=int, default=8)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--precision", choices=("auto", "cpu", "off"), default="auto",
        help="float32 against bf16: auto = on a GPU when present, cpu = on the CPU, off = skip",
    )  # fmt: skip
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    for processes in args.processes:
        if args.batch_size % processes:
            parser.error(f"--batch-size {args.batch_size} is not a multiple of {processes} processes")
    print(
        f"UNet3D(4, 4, base_filters={args.base_filters}, depth={args.depth}) on {args.subjects} phantom volumes "
        f"{tuple(args.shape)}, global batch {args.batch_size}, {args.epochs} timed epochs (median of {args.repeats} "
        f"runs), gloo, {os.cpu_count()} CPU cores"
    )
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for processes in args.processes:
            results.append(launch(processes, args, Path(folder) / f"p{processes}.json"))
    base = results[0]["samples_per_second"]
    print(f"{'processes':>9} {'threads each':>12} {'seconds':>8} {'samples/s':>10} {'speed-up':>9}")
    for r in results:
        print(
            f"{r['processes']:>9} {r['threads']:>12} {r['seconds']:>8.2f} {r['samples_per_second']:>10.2f} "
            f"{r['samples_per_second'] / base:>9.2f}"
        )
    if args.precision == "cpu" or (args.precision == "auto" and torch.cuda.is_available()):
        precision_benchmark(args, "gpu" if args.precision == "auto" else "cpu")


if __name__ == "__main__":
    main()
