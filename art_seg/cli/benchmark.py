"""``art-seg benchmark``: art_seg's attacks against ART's on one model: Dice drop and time per iteration."""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from art_seg.cli.common import (
    CommandError,
    add_common_arguments,
    add_model_arguments,
    add_phantom_arguments,
    check_spacing,
    checked_attack_specs,
    load_model,
    model_options,
    setup,
    subject_options,
    subjects_or_phantom,
    write_json,
)
from art_seg.cli.train import add_training_arguments, check_regions_argument, new_segmenter, train
from art_seg.data import REGIONS, load_arrays, train_val_split
from art_seg._files import writable_folder
from art_seg.evaluation.scoring import mean_region_dice

PAIRS = [("fgsm", "fgm"), ("i-fgsm", "bim"), ("i-fgsm", "pgd")]


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "benchmark",
        help="art_seg's attacks against ART's: Dice drop and time per iteration",
        description="Attack held-out subjects with art_seg's FGSM and i-FGSM and with ART's FastGradientMethod, "
        "BasicIterativeMethod and ProjectedGradientDescent on the same PyTorchSegmenter, at the same eps and "
        "steps; print mean WT/TC/ET Dice and seconds per attack iteration. Uses --model, or trains a small model "
        "(a region model with --regions) on the phantom first. (Peak memory against a bare PyTorch loop: "
        "examples/benchmark_attacks.py.)",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="model.pt, nnU-Net trained-model folder or MONAI bundle folder (default: train one on the phantom)",
    )
    parser.add_argument("--eps", type=float, default=0.3, help="L-inf budget, z-scored (default: 0.3)")
    parser.add_argument("--iterations", type=int, default=10, help="steps of the iterative attacks (default: 10)")
    add_model_arguments(parser)
    add_training_arguments(parser)
    add_phantom_arguments(parser, subjects=12)
    add_common_arguments(parser, output="art-seg-benchmark")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    device_type = setup(args)
    check_regions_argument(args)
    names = [name for pair in PAIRS for name in pair]
    specs = dict(zip(names, checked_attack_specs(names, [args.eps], args.iterations)))
    options = model_options(args)
    if not args.model and any(value is not None for value in options.values()):
        raise CommandError("--folds and --checkpoint apply to --model given as an nnU-Net trained-model folder")
    output = writable_folder(args.output)
    segmenter, loading = load_model(args.model, device_type, **options) if args.model else (None, {})
    loading = loading or {"multiple": 2**args.depth}
    subjects = subjects_or_phantom(args, output / "phantom", modalities=loading.get("modalities"))
    train_subjects, test_subjects = train_val_split(subjects, args.val_fraction, seed=args.seed)
    if segmenter is None:
        x, y, _ = load_arrays(train_subjects, **subject_options(loading))
        segmenter = new_segmenter(x.shape[1:], args, device_type, regions=args.regions)
        train("none", segmenter, (x, y), None, args, output / "checkpoints")
    x_test, y_test, metas = load_arrays(test_subjects, **subject_options(loading))
    for meta in metas:  # an nnU-Net model refuses data it would have resampled
        check_spacing(segmenter, meta.header.get_zooms()[:3], meta.shape)
    mask = np.broadcast_to(np.stack([m.brain_mask for m in metas])[:, None], x_test.shape).astype(np.float32)

    def dice(x_in: np.ndarray) -> dict[str, float]:
        return mean_region_dice(segmenter, x_in, y_test, batch_size=1)  # a region model scored on its channels

    results = {"clean": {"dice": dice(x_test)}}
    for name, spec in specs.items():
        attack = spec.build(segmenter, args.eps)
        steps = 1 if name in ("fgsm", "fgm") else args.iterations
        start = time.perf_counter()
        x_adv = attack.generate(x_test, y_test, mask=mask) if spec.masked else attack.generate(x_test, y_test)
        seconds = (time.perf_counter() - start) / (steps * len(x_test))
        results[spec.name] = {"dice": dice(x_adv), "seconds_per_iteration_per_volume": seconds}
    print(f"{len(x_test)} volumes {x_test.shape[1:]}, L-inf eps {args.eps}, {args.iterations} iterations")
    print(f"{'attack':<10}" + "".join(f"{r:>8}" for r in REGIONS) + "   s/iter/volume")
    for name, result in results.items():
        cells = "".join(f"{result['dice'][r]:8.3f}" for r in REGIONS)
        timing = result.get("seconds_per_iteration_per_volume")
        print(f"{name:<10}{cells}" + ("" if timing is None else f"   {timing:.4f}"))
    print("(ART FGM perturbs outside the brain: it drops masks for non-classifiers)")
    write_json(output / "benchmark.json", results)
