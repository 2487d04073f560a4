"""Defences on the phantom: undefended, distilled and adversarially trained 3D UNets under FGSM, i-FGSM and ti-FGSM.

Trains ``UNet3D(base_filters=8, depth=3)`` on the synthetic BraTS phantom (no download), then two defended copies
fine-tuned from it:

- undefended: :class:`~art_seg.defences.SegmentationTrainer` (Dice + cross-entropy);
- distilled: :class:`~art_seg.defences.DistillationTrainer` (teacher and student at temperature ``T``, student
  deployed at ``T = 1``);
- adversarially trained: :class:`~art_seg.defences.AdversarialTrainer` with FGSM examples at the attack's eps
  replacing half of every batch (data augmentation, as in the founding study);

then attacks each at the same L-inf eps (z-scored intensity units) with FGSM, i-FGSM and ti-FGSM (toward "no
tumour", scored against the true labels) and prints held-out Dice of whole tumour (WT), tumour core (TC) and
enhancing tumour (ET). Last, the gradient-masking check for the defended models: i-FGSM with the logit-margin loss
and i-FGSM transferred from the undefended model, next to the plain i-FGSM figure.

Run (about 4 minutes on 2 CPU cores)::

    python examples/defences.py

The figures measured with the defaults are in the README.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from art_seg.attacks import FGSM, IterativeFGSM, TargetedIterativeFGSM
from art_seg.attacks.targets import erase_labels
from art_seg.data import REGION_CLASSES, REGIONS, find_subjects, load_arrays, make_brats_phantom, train_val_split
from art_seg.defences import AdversarialTrainer, DistillationTrainer, SegmentationTrainer, copy_segmenter
from art_seg.estimators import PyTorchSegmenter
from art_seg.evaluation import gradient_masking_check, mean_region_dice
from art_seg.models import UNet3D


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=16, help="phantom subjects, half held out (default 16)")
    parser.add_argument("--shape", type=int, nargs=3, default=(48, 48, 32), help="phantom grid (default 48 48 32)")
    parser.add_argument("--epochs", type=int, default=40, help="epochs of the undefended model (default 40)")
    parser.add_argument("--defence-epochs", type=int, default=20, help="fine-tuning epochs per defence (default 20)")
    parser.add_argument("--eps", type=float, default=0.3, help="L-inf budget, z-scored units (default 0.3)")
    parser.add_argument("--temperature", type=float, default=5.0, help="distillation temperature (default 5)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="progress bars")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as root:
        make_brats_phantom(root, n_subjects=args.subjects, shape=tuple(args.shape), seed=args.seed)
        train_subjects, test_subjects = train_val_split(find_subjects(root), 0.5, seed=args.seed)
        x, y, _ = load_arrays(train_subjects, multiple=8)
        x_test, y_test, _ = load_arrays(test_subjects, multiple=8)

    torch.manual_seed(args.seed)
    model = UNet3D(in_channels=4, nb_classes=4, base_filters=8, depth=3)
    undefended = PyTorchSegmenter(
        model,
        "dice_ce",
        input_shape=x.shape[1:],
        nb_classes=4,
        optimizer=torch.optim.Adam(model.parameters(), lr=3e-3),
        device_type="cpu",
    )
    eps, step, iters = args.eps, args.eps / 4, 10
    common = dict(seed=args.seed, verbose=args.verbose)
    SegmentationTrainer(undefended, **common).fit(x, y, batch_size=2, nb_epochs=args.epochs)

    # Both defences start from the undefended weights (fine-tuning): from scratch, a network trained at
    # temperature T must grow its logits T-fold, which takes many more epochs than a CPU demo affords.
    distillation = DistillationTrainer(
        copy_segmenter(undefended),
        teacher=copy_segmenter(undefended),
        train_teacher=True,
        temperature=args.temperature,
        **common,
    )
    distillation.fit(x, y, batch_size=2, nb_epochs=args.defence_epochs)
    adversarial = copy_segmenter(undefended)
    AdversarialTrainer(adversarial, FGSM(adversarial, eps=eps), ratio=0.5, **common).fit(
        x, y, batch_size=2, nb_epochs=args.defence_epochs
    )
    models = {"undefended": undefended, "distilled": distillation.student, "adversarial": adversarial}
    print(f"trained 3 models on {len(x)} phantom subjects {x.shape[1:]} in {time.perf_counter() - start:.0f} s")

    no_tumour = erase_labels(y_test, [1, 2, 3])
    attacks = {
        "FGSM": lambda s: FGSM(s, eps=eps).generate(x_test, y_test),
        "i-FGSM": lambda s: IterativeFGSM(s, eps=eps, eps_step=step, max_iter=iters).generate(x_test, y_test),
        "ti-FGSM": lambda s: TargetedIterativeFGSM(s, eps=eps, eps_step=step, max_iter=iters).generate(
            x_test, no_tumour
        ),
    }
    print(f"\nheld-out Dice on {len(x_test)} subjects, L-inf eps = {eps} (z-scored units), {iters} iterations")
    print(f"{'model':<13}{'input':<10}" + "".join(f"{r:>8}" for r in REGIONS))
    for name, segmenter in models.items():
        rows = [("clean", mean_region_dice(segmenter, x_test, y_test, batch_size=2))]
        for attack, run in attacks.items():
            rows.append((attack, mean_region_dice(segmenter, run(segmenter), y_test, batch_size=2)))
        for attack, scores in rows:
            print(f"{name:<13}{attack:<10}" + "".join(f"{scores[r]:8.3f}" for r in REGIONS))

    def make_attack(estimator: PyTorchSegmenter, loss: str | None) -> IterativeFGSM:
        return IterativeFGSM(estimator, eps=eps, eps_step=step, max_iter=iters, loss=loss)

    print("\ngradient-masking check, i-FGSM: Dice averaged over WT, TC and ET")
    for name in ("distilled", "adversarial"):
        check = gradient_masking_check(
            models[name], make_attack, x_test, y_test, reference=models["undefended"], regions=REGION_CLASSES
        )
        cells = "  ".join(f"{condition} {value:.3f}" for condition, value in check.rows())
        print(f"{name:<13}{cells}  masking suspected: {check.masking_suspected}")
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
