"""``art-seg demo``: the founding study end to end on the synthetic phantom, in minutes on a CPU.

Generates the phantom, trains an undefended UNet3D, distils it and adversarially trains it (both fine-tuned from
the undefended model to fit a CPU budget), attacks all three with FGSM, i-FGSM, ti-FGSM and ART's PGD over an eps
grid, runs the gradient-masking check on the defended models, and writes the study-style report, with the BraTS
2023/2024 lesion-wise Dice and HD95 (GLI rules) next to Dice and the lesions each attack removed. Everything is
kept in ``--output``; running the same command again resumes (trained models are reused, finished evaluations
are not redone).

With ``--regions`` the three models are region models, as most shared BraTS models are: the same UNet3D with one
sigmoid channel per region of a preset (``brats``: WT, TC, ET), trained with Dice + binary cross-entropy on the
region masks of the class maps, and scored on the same WT, TC and ET as the softmax models.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from art_seg._checks import check_number
from art_seg.cli.common import (
    add_common_arguments,
    add_phantom_arguments,
    checking_arguments,
    setup,
    subjects_or_phantom,
)
from art_seg.cli.train import add_training_arguments, new_segmenter, save_model, train
from art_seg.data import REGION_CLASSES, REGION_PRESETS, load_arrays, region_spec, train_val_split
from art_seg.defences import copy_segmenter
from art_seg.estimators import PyTorchSegmenter
from art_seg.evaluation import (
    RobustnessEvaluator,
    gradient_masking_check,
    lesion_effects,
    plot_overlay,
    samples_from_arrays,
    summarise,
    write_report,
)
from art_seg._files import writable_folder
from art_seg.evaluation.attack_specs import attack_spec
from art_seg.models import UNet3D

ATTACKS = ["fgsm", "i-fgsm", "ti-fgsm", "pgd"]
#: Recorded beside Dice: the BraTS 2023/2024 ranking metrics, GLI rules.
METRICS, CHALLENGE = ("dice", "lesion-dice", "lesion-hd95"), "GLI"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="the founding study end to end on the synthetic phantom",
        description=__doc__.split("\n\n")[1].replace("\n", " ") if __doc__ else None,
    )
    add_training_arguments(parser)
    parser.add_argument(
        "--defence-epochs", type=int, default=20, help="fine-tuning epochs of each defence (default: 20)"
    )
    group = parser.add_argument_group("evaluation")
    group.add_argument(
        "--eval-eps",
        type=float,
        nargs="+",
        default=[0.1, 0.25, 0.5],
        help="eps grid, z-scored intensity units (default: 0.1 0.25 0.5)",
    )
    group.add_argument("--iterations", type=int, default=5, help="steps of the iterative attacks (default: 5)")
    parser.add_argument(
        "--regions",
        nargs="?",
        const="brats",
        default=None,
        choices=sorted(REGION_PRESETS),
        help="train region models instead: one sigmoid channel per region of this preset (default when given: "
        "brats, i.e. WT, TC, ET); give them another --output than a softmax demo's",
    )
    add_phantom_arguments(parser, subjects=16)
    add_common_arguments(parser, output="art-seg-demo")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    device_type = setup(args)
    with checking_arguments():  # every check before the long work starts
        evaluator_attacks = [attack_spec(name, iterations=args.iterations) for name in ATTACKS]
        for eps in args.eval_eps:
            check_number("--eval-eps", eps, low=0, low_inclusive=False)
        for name in ("epochs", "defence_epochs", "batch_size"):
            check_number(f"--{name.replace('_', '-')}", getattr(args, name), low=1, integer=True)
    output = writable_folder(args.output)
    subjects = subjects_or_phantom(args, output / "phantom")
    train_subjects, test_subjects = train_val_split(subjects, args.val_fraction, seed=args.seed)
    x, y, _ = load_arrays(train_subjects, multiple=2**args.depth)
    print(
        f"phantom: {len(subjects)} subjects {tuple(args.shape)}; {len(train_subjects)} to train, "
        f"{len(test_subjects)} held out"
    )

    models = train_models(args, device_type, (x, y), output)
    kind = "softmax" if args.regions is None else f"region ({', '.join(region_spec(args.regions).names)})"
    print(f"trained undefended, distilled and adversarial {kind} models in {time.perf_counter() - start:.0f} s")

    evaluator = RobustnessEvaluator(
        models,
        evaluator_attacks,
        args.eval_eps,
        iterations=args.iterations,
        metrics=METRICS,
        challenge=CHALLENGE,
        seed=args.seed,
        verbose=not args.quiet,
    )
    x_test, y_test, metas = load_arrays(test_subjects, multiple=2**args.depth)
    brains = np.stack([m.brain_mask for m in metas])
    samples = samples_from_arrays(x_test, y_test, [m.subject_id for m in metas], brains)
    rows = evaluator.run(samples, output)
    overlays = draw_overlays(evaluator, samples[0], output / "overlays")
    notes = [lesion_note(rows), masking_note(models, x_test, y_test, brains, args)]
    title = "art-seg demo: robustness on the synthetic BraTS phantom"
    if args.regions is not None:
        title += f" (region models, {args.regions!r}: sigmoid channels {', '.join(region_spec(args.regions).names)})"
    report = write_report(rows, output, title=title, overlays=overlays, notes=notes)
    print_findings(rows)
    print(f"\nreport: {report}  ({time.perf_counter() - start:.0f} s in all)")


def train_models(
    args: argparse.Namespace, device_type: str, data: tuple[np.ndarray, np.ndarray], output: Path
) -> dict[str, PyTorchSegmenter]:
    """Undefended (trained from scratch), distilled and adversarially trained (fine-tuned from it)."""
    checkpoints = output / "checkpoints"
    undefended = demo_segmenter(data[0].shape[1:], args, device_type)
    trainer = train("none", undefended, data, None, args, checkpoints / "undefended")
    save_model(output / "models" / "undefended.pt", undefended, trainer, {"defence": "none"})
    defence_args = argparse.Namespace(**{**vars(args), "epochs": args.defence_epochs})
    models = {"undefended": undefended}
    for name, defence in (("distilled", "distillation"), ("adversarial", "adversarial")):
        segmenter = copy_segmenter(undefended)
        teacher = copy_segmenter(undefended) if defence == "distillation" else None
        trainer = train(defence, segmenter, data, None, defence_args, checkpoints / name, teacher=teacher)
        save_model(output / "models" / f"{name}.pt", segmenter, trainer, {"defence": defence, "fine_tuned": True})
        models[name] = segmenter
    return models


def demo_segmenter(in_shape: tuple[int, ...], args: argparse.Namespace, device_type: str) -> PyTorchSegmenter:
    """The undefended model before training: ``art-seg train``'s UNet3D with Dice + CE over the 4 classes, or
    with ``--regions`` the same UNet3D with one sigmoid channel per region of the preset, Dice + binary
    cross-entropy per channel, trained on the class maps (the estimator turns them into region masks)."""
    if args.regions is None:
        return new_segmenter(in_shape, args, device_type)
    spec = region_spec(args.regions)
    torch.manual_seed(args.seed)
    model = UNet3D(in_shape[0], spec.nb_regions, base_filters=args.base_filters, depth=args.depth)
    return PyTorchSegmenter(
        model,
        "dice_ce",
        input_shape=in_shape,
        nb_classes=spec.nb_regions,
        activation="sigmoid",
        regions=spec,
        optimizer=torch.optim.Adam(model.parameters(), lr=args.lr),
        device_type=device_type,
    )


def draw_overlays(evaluator: RobustnessEvaluator, sample: Any, folder: Path) -> list[tuple[str, Path]]:
    """Slice overlays of the first held-out subject at the largest eps: each model under i-FGSM, and ti-FGSM."""
    eps = max(evaluator.eps)
    folder.mkdir(parents=True, exist_ok=True)
    clean = {
        name: model.to_label_map(model.predict_labels(sample.image[None], batch_size=1))[0]
        for name, model in evaluator.models.items()
    }
    cases = [(name, "i-FGSM") for name in evaluator.models] + [("undefended", "ti-FGSM")]
    overlays = []
    for model, attack in cases:
        x_adv, prediction = evaluator.attack_sample(model, attack, eps, sample)
        path = folder / f"overlay_{model}_{attack}.png"
        plot_overlay(
            sample.image,
            sample.label,
            clean[model],
            prediction,
            x_adv - sample.image,
            path,
            title=f"{sample.subject}: {model} model, {attack} at eps {eps}",
        )
        overlays.append((f"{model} model under {attack}, eps {eps} (FLAIR; perturbation magnified)", path))
    return overlays


def masking_note(
    models: dict[str, PyTorchSegmenter], x: np.ndarray, y: np.ndarray, brains: np.ndarray, args: argparse.Namespace
) -> str:
    """The gradient-masking check of the defended models (attacks confined to the brain), as Markdown."""
    eps = max(args.eval_eps)
    masks = np.broadcast_to(brains[:, None], x.shape).astype(np.float32)

    def make_attack(estimator: PyTorchSegmenter, loss: Any) -> Any:
        attack = attack_spec("i-fgsm", iterations=args.iterations).build(estimator, eps)
        attack.set_params(loss=loss)
        return attack

    lines = [
        f"**Gradient-masking check** (i-FGSM, eps {eps}; mean Dice over WT, TC and ET). A defence that only hides "
        "gradients shows a plain white-box figure well above the margin-loss or transfer figures.",
        "",
        "| model | clean | white-box | margin loss | transfer from undefended | strongest | masking suspected |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("distilled", "adversarial"):
        check = gradient_masking_check(
            models[name], make_attack, x, y, reference=models["undefended"], regions=REGION_CLASSES, mask=masks
        )
        values = dict(check.rows())
        lines.append(
            f"| {name} | {values['clean']:.3f} | {values['white-box']:.3f} | {values['white-box, margin loss']:.3f} "
            f"| {values['transfer from reference']:.3f} | {values['strongest of the above']:.3f} "
            f"| {'yes' if check.masking_suspected else 'no'} |"
        )
    return "\n".join(lines)


def lesion_note(rows: list[dict[str, Any]], attack: str = "ti-FGSM") -> str:
    """How many whole-tumour lesions ``attack`` (the targeted "no tumour" attack) removed from each model's clean
    prediction, and how many false lesions it created, at every eps, as a Markdown paragraph."""
    effects = [e for e in lesion_effects(rows) if e.attack == attack and e.region == "WT"]
    if not effects:
        return f"**Lesions removed by {attack}**: no whole-tumour lesion was scored."
    parts = [
        f"{e.model} at eps {e.eps:g}: {e.removed} of the {e.found_clean} lesions found on clean images removed, "
        f"{e.created} false lesions created"
        for e in effects
    ]
    lesions = effects[0].lesions
    return (
        f"**Lesions removed by {attack}** (the targeted \"no tumour\" attack; whole tumour, BraTS 2023 {CHALLENGE} "
        f"lesion rules, {lesions} ground-truth lesions over {effects[0].n} held-out subjects): " + "; ".join(parts)
        + ". Lesion-wise Dice scores each missed or false lesion 0, so it falls faster than whole-volume Dice."
    )


def print_findings(rows: list[dict[str, Any]]) -> None:
    """Per model and attack at the largest eps: mean WT Dice, its % drop and the Wilcoxon p against clean, the
    lesion-wise WT Dice beside it, and the lesions ti-FGSM removed."""
    summaries = [s for s in summarise(rows) if s.region == "WT"]
    lesion = {(s.model, s.attack, s.eps): s for s in summarise(rows, metric="lesion-dice") if s.region == "WT"}
    eps = max(s.eps for s in summaries)
    print(f"\nwhole-tumour Dice at eps {eps} (Wilcoxon signed-rank against clean, two-sided), lesion-wise Dice:")
    for s in summaries:
        if s.eps == eps:
            l = lesion[s.model, s.attack, s.eps]
            print(
                f"  {s.model:<12} {s.attack:<8} {s.clean_mean:.3f} -> {s.mean:.3f} "
                f"({s.reduction_percent:5.1f}% lower)  p = {s.comparison.p_value:.4f}   "
                f"lesion Dice {l.clean_mean:.3f} -> {l.mean:.3f}"
            )
    print(lesion_note(rows).replace("**", ""))
