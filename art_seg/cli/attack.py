"""``art-seg attack``: attack one BraTS subject or a folder of them; write adversarial NIfTI and predictions."""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from art_seg.cli.common import (
    add_common_arguments,
    add_inference_arguments,
    apply_inference_arguments,
    setup,
    write_json,
)
from art_seg.data import find_subjects, iter_subjects, write_perturbation, write_prediction, write_volume
from art_seg.defences import load_segmenter
from art_seg.evaluation._files import writable_folder
from art_seg.evaluation.attack_specs import ATTACK_NAMES, attack_spec
from art_seg.metrics import dice_per_region


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "attack",
        help="attack BraTS subjects with a trained model; write adversarial NIfTI and predictions",
        description="Load a model.pt (from 'art-seg train' or 'art-seg demo'), attack each subject under --input "
        "(one subject folder or a folder of them) inside its brain mask, and write per subject, over the source "
        "scans: the adversarial image (one file per modality, scanner units), the perturbation, and the clean and "
        "adversarial predictions (BraTS label values). Dice is printed where a segmentation exists.",
    )
    parser.add_argument("--model", required=True, help="model.pt to attack")
    parser.add_argument("--input", required=True, help="a BraTS subject folder, or a folder of subjects")
    parser.add_argument("--attack", default="i-fgsm", help=f"one of {', '.join(ATTACK_NAMES)} (default: i-fgsm)")
    parser.add_argument("--eps", type=float, default=0.3, help="L-inf budget, z-scored intensity (default: 0.3)")
    parser.add_argument("--iterations", type=int, default=10, help="steps of iterative attacks (default: 10)")
    add_inference_arguments(parser)
    add_common_arguments(parser, output="art-seg-attack")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    device_type = setup(args)
    spec = attack_spec(args.attack, iterations=args.iterations)
    if not args.eps > 0:
        raise ValueError(f"--eps must be > 0, got {args.eps}")
    output = writable_folder(args.output)
    segmenter, checkpoint = load_segmenter(args.model, device_type=device_type)
    apply_inference_arguments(segmenter, args)
    multiple = 2 ** int(checkpoint["architecture"]["config"].get("depth", 4))
    subjects = find_subjects(args.input)
    if not subjects:
        raise ValueError(f"no BraTS subjects found under --input {args.input!r}")
    attack = spec.build(segmenter, args.eps)
    summary = []
    loaded = iter_subjects(subjects, multiple=multiple)
    for image, label, meta in tqdm(loaded, total=len(subjects), desc="art-seg attack", disable=args.quiet):
        x = image[None]
        clean = segmenter.predict(x, batch_size=1).argmax(1)[0]
        target = clean[None] if label is None else label[None]
        y = spec.target(target) if spec.target is not None else target
        mask = np.broadcast_to(meta.brain_mask[None, None], x.shape).astype(np.float32)
        x_adv = attack.generate(x, y, mask=mask) if spec.masked else attack.generate(x, y)
        adversarial = segmenter.predict(x_adv, batch_size=1).argmax(1)[0]
        folder = output / meta.subject_id
        write_volume(folder / f"{meta.subject_id}_adversarial.nii.gz", x_adv[0], meta, per_modality=True)
        write_perturbation(folder / f"{meta.subject_id}_perturbation.nii.gz", x_adv[0] - image, meta)
        write_prediction(folder / f"{meta.subject_id}_prediction_clean.nii.gz", clean, meta)
        write_prediction(folder / f"{meta.subject_id}_prediction_adversarial.nii.gz", adversarial, meta)
        entry: dict[str, Any] = {"subject": meta.subject_id, "attack": spec.name, "eps": args.eps}
        if label is not None:
            entry["dice_clean"] = dice_per_region(clean, label)
            entry["dice_adversarial"] = dice_per_region(adversarial, label)
            print(
                f"{meta.subject_id}: Dice "
                + json.dumps(entry["dice_clean"])
                + " -> "
                + json.dumps(entry["dice_adversarial"])
            )
        summary.append(entry)
    write_json(output / "attack_summary.json", summary)
    print(f"wrote {len(summary)} subjects to {output}")
