"""``art-seg evaluate``: sweep attacks and eps over held-out subjects for one or more models, then the report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from art_seg import distributed
from art_seg._checks import check_number
from art_seg.cli.common import (
    CommandError,
    add_common_arguments,
    add_inference_arguments,
    apply_inference_arguments,
    checking_arguments,
    load_model,
    setup,
)
from art_seg.data import find_subjects
from art_seg.evaluation import RobustnessEvaluator, samples_from_subjects, write_report
from art_seg.evaluation.attack_specs import ATTACK_NAMES, attack_spec
from art_seg.evaluation.metric_sets import CHALLENGE_METRICS, CHALLENGES, METRICS, check_metrics


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="Dice per subject and region under attacks over an eps grid; Wilcoxon report",
        description="Evaluate models (NAME=PATH/model.pt, or PATH alone) on the BraTS subjects under --data: clean "
        "and under each attack at each eps, Dice per subject and region written to <output>/results.jsonl as it "
        "goes (an interrupted run resumes where it stopped), then <output>/report.md with the study-style table "
        "(Wilcoxon signed-rank against clean), every chosen metric (--metrics, --challenge: e.g. the BraTS "
        "lesion-wise Dice and HD95) with the same tests, the lesions each attack removed or created, and "
        "robustness curves. Softmax and region (sigmoid) models are scored "
        "on the same WT, TC and ET: a region model on its channel of each region, whatever their order.",
    )
    parser.add_argument("--model", required=True, nargs="+", help="NAME=PATH or PATH of model.pt files")
    parser.add_argument("--data", required=True, help="folder of BraTS subjects (with segmentations)")
    parser.add_argument(
        "--attacks",
        nargs="+",
        default=["fgsm", "i-fgsm", "ti-fgsm"],
        help=f"from {', '.join(ATTACK_NAMES)} (default: fgsm i-fgsm ti-fgsm)",
    )
    parser.add_argument(
        "--eps",
        type=float,
        nargs="+",
        default=[0.1, 0.2, 0.3],
        help="eps grid, z-scored intensity units (default: 0.1 0.2 0.3)",
    )
    parser.add_argument("--iterations", type=int, default=10, help="steps of iterative attacks (default: 10)")
    parser.add_argument("--hd95", action="store_true", help="also record HD95 (mm); the same as --metrics ... hd95")
    parser.add_argument(
        "--metrics",
        nargs="+",
        default=None,
        help=f"from {', '.join(METRICS)}: recorded and reported per region, each with the same paired statistics "
        "(Dice always; default: dice, or with --challenge the challenge's lesion metrics too)",
    )
    parser.add_argument(
        "--challenge",
        default=None,
        help=f"one of {', '.join(CHALLENGES)}: rules of the lesion metrics, BraTS 2023/2024 lesion-wise or 2025 "
        "(instance matching); without --metrics also records the challenge's ranking metrics (default rules: GLI)",
    )
    parser.add_argument(
        "--nsd-tolerance", type=float, default=1.0, help="tolerance of the nsd metric in mm (default: 1.0)"
    )
    add_inference_arguments(parser)
    add_common_arguments(parser, output="art-seg-evaluate")
    parser.set_defaults(run=run)


def parse_models(values: list[str]) -> dict[str, Path]:
    """``NAME=PATH`` (or ``PATH``: the name is the file's folder) -> ``{name: path}``."""
    models: dict[str, Path] = {}
    for value in values:
        name, _, path = value.rpartition("=") if "=" in value else ("", "", value)
        path_ = Path(path)
        name = name or path_.parent.name or path_.stem
        if name in models:
            raise CommandError(f"--model names must be unique, {name!r} is given twice")
        models[name] = path_
    return models


def run(args: argparse.Namespace) -> None:
    device_type = setup(args)
    with checking_arguments():
        specs = [attack_spec(name, iterations=args.iterations) for name in args.attacks]  # unknown names fail here
        for eps in args.eps:
            check_number("--eps", eps, low=0, low_inclusive=False)
        challenge = args.challenge or "GLI"
        check_metrics(args.metrics or (), challenge)  # names the bad metric or challenge
        metrics = args.metrics or (CHALLENGE_METRICS[challenge] if args.challenge else ("dice",))
        check_metrics(metrics, challenge)
        check_number("--nsd-tolerance", args.nsd_tolerance, low=0)
    paths = parse_models(args.model)
    models = {name: load_model(path, device_type) for name, path in paths.items()}
    for segmenter, _ in models.values():
        apply_inference_arguments(segmenter, args)
    evaluator = RobustnessEvaluator(
        {name: seg for name, (seg, _) in models.items()},
        specs,
        args.eps,
        iterations=args.iterations,
        hd95=args.hd95,
        metrics=metrics,
        challenge=challenge,
        nsd_tolerance=args.nsd_tolerance,
        seed=args.seed,
        verbose=not args.quiet,
    )
    multiple = max(m for _, m in models.values())
    subjects = find_subjects(args.data)
    if not subjects:
        raise ValueError(f"no BraTS subjects found under --data {args.data!r}")
    rows = evaluator.run(samples_from_subjects(subjects, multiple=multiple), args.output)
    if distributed.rank() == 0:  # under torchrun every rank evaluated its share; one writes the report
        report = write_report(rows, args.output, title="art-seg robustness report")
        print(f"{len(rows)} results in {args.output}\nreport: {report}")
