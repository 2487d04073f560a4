"""Benchmark art_seg's IterativeFGSM against ART's BasicIterativeMethod and a bare PyTorch loop.

Prints time per iteration (and its ratio to the bare loop) and the peak memory of a 10-step attack against
one forward+backward pass, all measured in this run on the same model and input.

    python examples/benchmark_attacks.py                      # 2 x 4 x 48^3 on the CPU
    python examples/benchmark_attacks.py --size 128 --device cuda --base-filters 16 --depth 4
"""

from __future__ import annotations

import argparse
import json

from attack_benchmark import BenchmarkConfig, format_report, run_attack_benchmark  # examples/attack_benchmark.py


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
    args = parser.parse_args()
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
