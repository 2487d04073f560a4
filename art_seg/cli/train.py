"""``art-seg train``: train a UNet3D on BraTS data or the phantom, plain, distilled or adversarially."""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from art_seg import distributed
from art_seg._checks import check_choice
from art_seg.cli.common import (
    CommandError,
    add_common_arguments,
    add_phantom_arguments,
    checking_arguments,
    setup,
    subjects_or_phantom,
    write_json,
)
from art_seg.data import NB_CLASSES, REGION_PRESETS, load_arrays, region_spec, train_val_split
from art_seg.defences import (
    AdversarialTrainer,
    AdversarialTrainerMadryPGD,
    DistillationTrainer,
    SegmentationTrainer,
    load_segmenter,
    save_checkpoint,
    segmenter_settings,
)
from art_seg.estimators import PyTorchSegmenter
from art_seg._files import writable_folder
from art_seg.evaluation.attack_specs import attack_spec
from art_seg.models import UNet3D

DEFENCES = ("none", "distillation", "adversarial", "madry")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a 3D UNet (plain, distilled or adversarially)",
        description="Train UNet3D on a BraTS folder (--data) or on the synthetic phantom, with the Dice + "
        "cross-entropy loss (with --regions: a region model, one sigmoid channel per region, Dice + binary "
        "cross-entropy on the region masks), on whole cropped volumes (under 'torchrun --nproc_per_node N', with "
        "DDP; --batch-size is then the global batch). Writes <output>/model.pt (load it with "
        "art_seg.defences.load_segmenter or pass it to 'art-seg attack' and 'art-seg evaluate'), the training "
        "history, and checkpoints from which --resume carries on.",
    )
    add_training_arguments(parser)
    parser.add_argument("--defence", choices=DEFENCES, default="none", help="training (default: none, plain)")
    parser.add_argument("--from-model", default=None, help="start from this model.pt (fine-tuning)")
    parser.add_argument("--resume", action="store_true", help="carry on from the checkpoints in --output")
    add_phantom_arguments(parser, subjects=16)
    add_common_arguments(parser, output="art-seg-train")
    parser.set_defaults(run=run)


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training")
    group.add_argument("--epochs", type=int, default=40, help="epochs (default: 40)")
    group.add_argument("--batch-size", type=int, default=2, help="volumes per step (default: 2)")
    group.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default: 3e-3)")
    group.add_argument("--base-filters", type=int, default=8, help="UNet3D filters at the top level (default: 8)")
    group.add_argument("--depth", type=int, default=3, help="UNet3D down-sampling steps (default: 3)")
    group.add_argument("--val-fraction", type=float, default=0.5, help="held-out subjects (default: 0.5)")
    group.add_argument("--temperature", type=float, default=5.0, help="distillation temperature T (default: 5)")
    group.add_argument("--train-attack", default="fgsm", help="adversarial training attack (default: fgsm)")
    group.add_argument("--train-eps", type=float, default=0.3, help="adversarial training eps, z-scored (default: 0.3)")
    group.add_argument("--ratio", type=float, default=0.5, help="adversarial share of each batch (default: 0.5)")
    group.add_argument(
        "--regions",
        nargs="?",
        const="brats",
        default=None,
        metavar="PRESET",
        help=f"train a region model instead: one sigmoid channel per region of this preset, one of "
        f"{', '.join(REGION_PRESETS)} (default when given: brats, i.e. WT, TC, ET)",
    )


def check_regions_argument(args: argparse.Namespace) -> None:
    """Refuse an unknown ``--regions`` preset (a :class:`~art_seg.cli.common.CommandError` naming the value)."""
    if args.regions is not None:
        with checking_arguments():
            check_choice("--regions", args.regions, REGION_PRESETS)


def new_segmenter(
    in_shape: tuple[int, ...], args: argparse.Namespace, device_type: str, regions: str | None = None
) -> PyTorchSegmenter:
    """A fresh UNet3D in a segmenter with Dice + CE and Adam; inputs are z-scored, so no clip values.

    Args:
        in_shape: ``(C, D, H, W)`` of one input volume.
        args: the command's ``--seed``, ``--base-filters``, ``--depth`` and ``--lr``.
        device_type: ``"cpu"`` or ``"gpu"``.
        regions: ``None`` for a softmax model over the 4 classes; a preset name of
            :data:`~art_seg.data.REGION_PRESETS` for a region model: one sigmoid channel per region, Dice +
            binary cross-entropy per channel, trained on class maps (the estimator turns them into region masks).

    Raises:
        ValueError: an unknown preset name.
    """
    spec = None if regions is None else region_spec(regions)
    nb_outputs = NB_CLASSES if spec is None else spec.nb_regions
    torch.manual_seed(args.seed)
    model = UNet3D(in_shape[0], nb_outputs, base_filters=args.base_filters, depth=args.depth)
    return PyTorchSegmenter(
        model,
        "dice_ce",
        input_shape=in_shape,
        nb_classes=nb_outputs,
        activation="softmax" if spec is None else "sigmoid",
        regions=spec,
        optimizer=torch.optim.Adam(model.parameters(), lr=args.lr),
        device_type=device_type,
    )


def train(
    defence: str,
    segmenter: PyTorchSegmenter,
    data: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray] | None,
    args: argparse.Namespace,
    checkpoints: Path,
    *,
    teacher: PyTorchSegmenter | None = None,
) -> SegmentationTrainer:
    """Train ``segmenter`` in place with the chosen defence; checkpoints in ``checkpoints`` (resumable)."""
    common: dict[str, Any] = dict(seed=args.seed, checkpoint_dir=checkpoints, verbose=not args.quiet)
    trainer: SegmentationTrainer
    if defence == "none":
        trainer = SegmentationTrainer(segmenter, **common)
    elif defence == "distillation":
        trainer = DistillationTrainer(segmenter, teacher, temperature=args.temperature, train_teacher=True, **common)
    elif defence == "adversarial":
        attack = attack_spec(args.train_attack, iterations=5).build(segmenter, args.train_eps)
        trainer = AdversarialTrainer(segmenter, attack, ratio=args.ratio, **common)
    else:
        trainer = AdversarialTrainerMadryPGD(
            segmenter, eps=args.train_eps, eps_step=args.train_eps / 4, max_iter=5, **common
        )
    trainer.fit(*data, batch_size=args.batch_size, nb_epochs=args.epochs, validation_data=validation, resume=True)
    return trainer


def save_model(path: Path, segmenter: PyTorchSegmenter, trainer: SegmentationTrainer, extra: dict[str, Any]) -> None:
    """The trained model for ``load_segmenter``, with how it was trained and its history."""
    save_checkpoint(
        path,
        model=segmenter.model,
        epoch=len(trainer.history),
        config=extra,
        state={"history": [asdict(r) for r in trainer.history]},
        segmenter=segmenter_settings(segmenter),
    )


def run(args: argparse.Namespace) -> None:
    device_type = setup(args)
    check_regions_argument(args)
    output = writable_folder(args.output)
    if args.epochs < 1:
        raise ValueError(f"--epochs must be >= 1, got {args.epochs}")
    checkpoints = output / "checkpoints"
    if checkpoints.exists() and any(checkpoints.rglob("*.pt")) and not args.resume:
        raise ValueError(f"{str(checkpoints)!r} holds checkpoints of an earlier run: pass --resume or another --output")
    subjects = subjects_or_phantom(args, output / "phantom")
    train_subjects, val_subjects = train_val_split(subjects, args.val_fraction, seed=args.seed)
    multiple = 2**args.depth
    x, y, train_metas = load_arrays(train_subjects, multiple=multiple)  # a subject that fails to load is skipped
    x_val, y_val, val_metas = load_arrays(val_subjects, multiple=multiple) if val_subjects else (None, None, [])
    validation = None if x_val is None else (x_val, y_val)
    if args.from_model:
        segmenter, _ = load_segmenter(args.from_model, device_type=device_type, learning_rate=args.lr)
        if args.regions is not None and segmenter.regions != region_spec(args.regions):
            raise CommandError(
                f"--regions {args.regions!r} does not match --from-model {args.from_model!r}, whose regions are "
                f"{None if segmenter.regions is None else segmenter.regions.names}: leave --regions out to fine-tune it"
            )
    else:
        segmenter = new_segmenter(x.shape[1:], args, device_type, regions=args.regions)
    start = time.perf_counter()
    trainer = train(args.defence, segmenter, (x, y), validation, args, checkpoints)
    extra = {
        "defence": args.defence,
        "arguments": {k: v for k, v in vars(args).items() if k != "run"},
        "train_subjects": [meta.subject_id for meta in train_metas],  # those loaded, not the skipped ones
        "val_subjects": [meta.subject_id for meta in val_metas],
    }
    if distributed.rank() != 0:  # under torchrun rank 0 writes the model
        return
    save_model(output / "model.pt", segmenter, trainer, extra)
    write_json(output / "history.json", [asdict(r) for r in trainer.history])
    last = trainer.history[-1] if trainer.history else None
    summary = "" if last is None or last.val_dice is None else f", validation Dice {last.val_dice:.3f}"
    print(f"trained {args.defence} model on {len(x)} subjects in {time.perf_counter() - start:.0f} s{summary}")
    print(f"model: {output / 'model.pt'}")
