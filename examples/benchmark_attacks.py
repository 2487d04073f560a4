"""Benchmark art_seg's IterativeFGSM against ART's BasicIterativeMethod and a bare PyTorch loop.

Prints time per iteration (and its ratio to the bare loop) and the peak memory of a 10-step attack against
one forward+backward pass, all measured in this run on the same model and input; then the time of one loss
gradient with a per-sample attack loss (CosPGD's), batched and looped over samples, against a bare PyTorch
forward + loss + backward, for a 2D batch (8 x 64 x 64) and a 3D one (2 x 32^3).

    python examples/benchmark_attacks.py                      # 2 x 4 x 48^3 on the CPU
    python examples/benchmark_attacks.py --only-loss --threads 2
    python examples/benchmark_attacks.py --size 128 --device cuda --base-filters 16 --depth 4
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from attack_benchmark import (  # examples/attack_benchmark.py
    BenchmarkConfig,
    LossTimingConfig,
    format_loss_timing,
    format_report,
    per_sample_loss_time,
    run_attack_benchmark,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=48, help="cube side in voxels (default 48)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--base-filters", type=int, default=8)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=5, help="attack iterations per timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON too")
    parser.add_argument("--only-loss", action="store_true", help="time the per-sample loss gradient only")
    parser.add_argument("--loss-repeats", type=int, default=5, help="repetitions of the loss timing (median)")
    args = parser.parse_args()
    loss_configs = [
        LossTimingConfig(spatial_dims=2, size=64, batch_size=8, repeats=args.loss_repeats, device=args.device,
                         threads=args.threads),
        LossTimingConfig(spatial_dims=3, size=32, batch_size=2, repeats=args.loss_repeats, device=args.device,
                         threads=args.threads),
    ]  # fmt: skip
    loss_times = [per_sample_loss_time(c) for c in loss_configs]
    print("\n\n".join(format_loss_timing(c, t) for c, t in zip(loss_configs, loss_times)))
    if args.json:
        print(json.dumps([{"config": asdict(c), "seconds": t} for c, t in zip(loss_configs, loss_times)], indent=2))
    if args.only_loss:
        return
    print()
    config = BenchmarkConfig(
        size=args.size,
        batch_size=args.batch_size,
        base_filters=args.base_filters,
        depth=args.depth,
        iterations=args.iterations,
        repeats=args.repeats,
        device=args.device,
        threads=args.threads,
    )
    result = run_attack_benchmark(config)
    print(format_report(result))
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
