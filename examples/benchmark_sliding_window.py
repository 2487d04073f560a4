"""Peak memory of sliding-window gradients on a whole BraTS-sized volume, on the CPU.

Measures, each in a fresh spawned process (peak resident set size from ``/proc/self/status`` with glibc's mmap
threshold fixed at 64 KiB: ``attack_benchmark.in_fresh_process`` in this folder):

- one ``loss_gradient`` of a :class:`~art_seg.estimators.PyTorchSegmenter` with a sliding window;
- an ``--iterations``-step :class:`~art_seg.attacks.IterativeFGSM` through that estimator;
- with ``--compare``, one whole-volume ``loss_gradient`` (no window) for comparison. A UNet3D of depth 3 needs
  sizes divisible by 8, so this one runs on the volume padded to the next multiple of 8 (155 -> 160). It may
  need far more memory than the machine has; a worker that dies is reported, not fatal.

Model: ``UNet3D(4, 4, base_filters=8, depth=3)`` (random weights, eval mode), cross-entropy loss; input
``1 x 4 x 240 x 240 x 155`` float32 z-scored noise, random labels. Exits non-zero if a windowed run's peak
(whole process, not only above the baseline) reaches ``--limit-gib`` (8 GiB by default).

    python examples/benchmark_sliding_window.py                  # 64^3 windows, 2 attack steps
    python examples/benchmark_sliding_window.py --iterations 1 --compare
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from attack_benchmark import in_fresh_process, rss_kib  # examples/attack_benchmark.py

SHAPE = (4, 240, 240, 155)
GIB = 2**30


def _setup(spatial: tuple[int, ...], roi: int | None, overlap: float, windows_per_batch: int, threads: int | None):
    from art_seg.estimators import PyTorchSegmenter
    from art_seg.estimators.sliding_window import SlidingWindow
    from art_seg.models import UNet3D

    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = UNet3D(4, 4, base_filters=8, depth=3).eval()
    window = None if roi is None else SlidingWindow(roi, overlap=overlap, windows_per_batch=windows_per_batch)
    estimator = PyTorchSegmenter(
        model,
        "ce",
        input_shape=(4, *spatial),
        nb_classes=4,
        clip_values=(-5.0, 5.0),
        device_type="cpu",
        sliding_window=window,
    )
    generator = torch.Generator().manual_seed(0)
    x = torch.randn((1, 4, *spatial), generator=generator).clamp_(-4, 4)
    y = torch.randint(0, 4, (1, *spatial), generator=generator)
    return estimator, x, y


def _measure(workload: str, spatial: tuple[int, ...], roi: int | None, args: dict) -> dict[str, float]:
    """Run one workload in this (fresh) process: seconds, peak RSS above the set-up's, and the whole peak RSS."""
    from art_seg.attacks import IterativeFGSM

    estimator, x, y = _setup(spatial, roi, args["overlap"], args["windows_per_batch"], args["threads"])
    if workload == "attack":
        attack = IterativeFGSM(estimator, eps=0.1, eps_step=0.05, max_iter=args["iterations"], batch_size=1)
        run = lambda: attack.generate(x, y)  # noqa: E731
    else:
        run = lambda: estimator.loss_gradient(x, y)  # noqa: E731
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak resident set size to the current one
    baseline = rss_kib("VmRSS")
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    peak = rss_kib("VmHWM")
    return {"seconds": seconds, "above_baseline_bytes": (peak - baseline) * 1024, "peak_bytes": peak * 1024}


def _in_fresh_process(*arguments) -> dict[str, float] | str:
    try:
        return in_fresh_process(_measure, *arguments)
    except Exception as error:  # a worker killed for memory surfaces as an exception or a broken pool
        return f"failed: {type(error).__name__}: {error}"


def _line(name: str, result: dict[str, float] | str) -> str:
    if isinstance(result, str):
        return f"{name:<44}{result}"
    return (
        f"{name:<44}{result['peak_bytes'] / GIB:>9.2f} GiB{result['above_baseline_bytes'] / GIB:>12.2f} GiB"
        f"{result['seconds']:>10.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--roi", type=int, default=64, help="window side in voxels (default 64)")
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--windows-per-batch", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=2, help="IterativeFGSM steps (default 2)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--limit-gib", type=float, default=8.0, help="fail if a windowed peak reaches this")
    parser.add_argument("--compare", action="store_true", help="also measure a whole-volume loss_gradient")
    args = parser.parse_args()
    options = {
        "overlap": args.overlap,
        "windows_per_batch": args.windows_per_batch,
        "iterations": args.iterations,
        "threads": args.threads,
    }
    spatial = SHAPE[1:]
    print(
        f"volume 1 x {' x '.join(map(str, SHAPE))} float32, UNet3D(4, 4, base_filters=8, depth=3), CPU, "
        f"{torch.get_num_threads() if args.threads is None else args.threads} threads; window {args.roi}^3, "
        f"overlap {args.overlap}, {args.windows_per_batch} windows per batch"
    )
    print(f"{'':<44}{'peak RSS':>13}{'above set-up':>16}{'time':>12}")
    started = time.perf_counter()
    windowed = {}
    for name, workload in (
        ("loss_gradient, sliding window", "loss_gradient"),
        (f"IterativeFGSM {args.iterations} steps, sliding window", "attack"),
    ):
        windowed[name] = _in_fresh_process(workload, spatial, args.roi, options)
        print(_line(name, windowed[name]), flush=True)
    if args.compare:
        padded = tuple(-(-s // 8) * 8 for s in spatial)
        name = f"loss_gradient, whole volume ({' x '.join(map(str, padded))})"
        print(_line(name, _in_fresh_process("loss_gradient", padded, None, options)), flush=True)
    print(f"total {time.perf_counter() - started:.0f} s")
    failed = [name for name, r in windowed.items() if isinstance(r, str) or r["peak_bytes"] >= args.limit_gib * GIB]
    if failed:
        print(f"FAIL: {failed} did not stay under {args.limit_gib} GiB")
        sys.exit(1)
    print(f"OK: every sliding-window peak stays under {args.limit_gib} GiB")


if __name__ == "__main__":
    main()
