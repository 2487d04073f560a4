"""``art-seg attack``: attack one BraTS subject or a folder of them; write adversarial NIfTI and predictions."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from art_seg.cli.common import (
    add_common_arguments,
    add_inference_arguments,
    add_model_arguments,
    apply_inference_arguments,
    check_spacing,
    find_model_subjects,
    load_model,
    model_options,
    checked_attack_specs,
    setup,
    subject_options,
    write_json,
)
from art_seg.data import (
    SubjectMeta,
    iter_subjects,
    write_perturbation,
    write_prediction,
    write_volume,
)
from art_seg.estimators import PyTorchSegmenter
from art_seg._files import writable_folder
from art_seg.evaluation.attack_specs import ATTACK_NAMES, AttackSpec
from art_seg.evaluation.scoring import region_dice


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "attack",
        help="attack BraTS subjects with a trained model; write adversarial NIfTI and predictions",
        description="Load a model (a model.pt from 'art-seg train' or 'art-seg demo', an nnU-Net trained-model "
        "folder or a MONAI bundle folder), attack each subject under --input "
        "(one subject folder or a folder of them) inside its brain mask, and write per subject, over the source "
        "scans: the adversarial image (one file per modality, scanner units), the perturbation, and the clean and "
        "adversarial predictions (BraTS label values). Dice is printed where a segmentation exists. A subject that "
        "cannot be read is skipped with a warning; the command fails when every subject is skipped.",
    )
    parser.add_argument(
        "--model", required=True, help="model to attack: model.pt, an nnU-Net trained-model folder or a MONAI bundle"
    )
    parser.add_argument("--input", required=True, help="a BraTS subject folder, or a folder of subjects")
    parser.add_argument("--attack", default="i-fgsm", help=f"one of {', '.join(ATTACK_NAMES)} (default: i-fgsm)")
    parser.add_argument("--eps", type=float, default=0.3, help="L-inf budget, z-scored intensity (default: 0.3)")
    parser.add_argument("--iterations", type=int, default=10, help="steps of iterative attacks (default: 10)")
    add_model_arguments(parser)
    add_inference_arguments(parser)
    add_common_arguments(parser, output="art-seg-attack")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    device_type = setup(args)
    [spec] = checked_attack_specs([args.attack], [args.eps], args.iterations)
    output = writable_folder(args.output)
    segmenter, loading = load_model(args.model, device_type, **model_options(args))
    apply_inference_arguments(segmenter, args)
    subjects = find_model_subjects(args.input, loading)
    if not subjects:
        raise ValueError(f"no BraTS subjects found under --input {args.input!r}")
    attack = spec.build(segmenter, args.eps)
    summary = []
    loaded = iter_subjects(subjects, **subject_options(loading))  # warns for each subject it skips; raises if all are
    for image, label, meta in tqdm(loaded, total=len(subjects), desc="art-seg attack", disable=args.quiet):
        check_spacing(segmenter, meta.header.get_zooms()[:3], image.shape[1:])
        summary.append(attack_subject(segmenter, attack, spec, args.eps, image, label, meta, output))
    write_json(output / "attack_summary.json", summary)
    n_skipped = len(subjects) - len(summary)
    skipped_text = f"; skipped {n_skipped} that could not be read (see the warnings)" if n_skipped else ""
    print(f"wrote {len(summary)} subject(s) to {output}{skipped_text}")


def attack_subject(
    segmenter: PyTorchSegmenter,
    attack: Any,
    spec: AttackSpec,
    eps: float,
    image: np.ndarray,
    label: np.ndarray | None,
    meta: SubjectMeta,
    output: Path,
) -> dict[str, Any]:
    """Attack one loaded subject; write its adversarial image, perturbation and predictions; its summary entry.

    Predictions are written as class label maps (a region model's masks painted into classes by
    :meth:`~art_seg.estimators.PyTorchSegmenter.to_label_map`), in BraTS label values; Dice is per BraTS region
    (:func:`~art_seg.evaluation.scoring.region_dice`: a region model on its channels). Without a segmentation the
    attack's true labels are the clean prediction.
    """
    x = image[None]
    clean = segmenter.predict_labels(x, batch_size=1)
    clean_map = segmenter.to_label_map(clean)[0]
    target = clean_map[None] if label is None else label[None]
    y = spec.target(target) if spec.target is not None else target
    mask = np.broadcast_to(meta.brain_mask[None, None], x.shape).astype(np.float32)
    x_adv = attack.generate(x, y, mask=mask) if spec.masked else attack.generate(x, y)
    adversarial = segmenter.predict_labels(x_adv, batch_size=1)
    folder = output / meta.subject_id
    write_volume(folder / f"{meta.subject_id}_adversarial.nii.gz", x_adv[0], meta, per_modality=True)
    write_perturbation(folder / f"{meta.subject_id}_perturbation.nii.gz", x_adv[0] - image, meta)
    write_prediction(folder / f"{meta.subject_id}_prediction_clean.nii.gz", clean_map, meta)
    write_prediction(
        folder / f"{meta.subject_id}_prediction_adversarial.nii.gz", segmenter.to_label_map(adversarial)[0], meta
    )
    entry: dict[str, Any] = {"subject": meta.subject_id, "attack": spec.name, "eps": eps}
    if label is not None:
        entry["dice_clean"] = region_dice(segmenter, clean[0], label)
        entry["dice_adversarial"] = region_dice(segmenter, adversarial[0], label)
        dice = json.dumps(entry["dice_clean"]) + " -> " + json.dumps(entry["dice_adversarial"])
        print(f"{meta.subject_id}: Dice {dice}")
    return entry
