"""Quick start: train a small 3D UNet on the synthetic BraTS phantom, then attack it with ART's and art_seg's attacks.

Generates phantom subjects (BraTS 2020 layout, no download) in a temporary folder, loads them through
``art_seg.data`` (z-scored over the brain, cropped, padded to a multiple of 8), splits them by subject, trains
``UNet3D(base_filters=8, depth=3)`` wrapped in :class:`~art_seg.estimators.PyTorchSegmenter` (Dice + cross-entropy,
Adam), then prints held-out Dice of whole tumour (WT), tumour core (TC) and enhancing tumour (ET) on clean input and
under:

- ART's ``FastGradientMethod`` and ``ProjectedGradientDescent``, unchanged, on the segmenter;
- art_seg's ``FGSM``, ``IterativeFGSM`` (i-FGSM) and ``TargetedIterativeFGSM`` (ti-FGSM, toward a "no tumour"
  map), with the perturbation confined to the brain.

eps is in z-scored intensity units (L-inf). Run (about 2 minutes on 2 CPU cores)::

    python examples/quickstart.py

Measured on 2 CPU cores with the defaults (12 subjects of 48 x 48 x 32, 8 train / 4 held out, 60 epochs): see the
README.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent

from art_seg.attacks import FGSM, IterativeFGSM, TargetedIterativeFGSM
from art_seg.attacks.targets import erase_labels
from art_seg.data import REGIONS, find_subjects, load_arrays, make_brats_phantom, train_val_split
from art_seg.estimators import PyTorchSegmenter
from art_seg.evaluation import mean_region_dice
from art_seg.models import UNet3D


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=12, help="phantom subjects in all (default 12)")
    parser.add_argument("--shape", type=int, nargs=3, default=(48, 48, 32), help="phantom grid (default 48 48 32)")
    parser.add_argument("--epochs", type=int, default=60, help="training epochs (default 60)")
    parser.add_argument("--eps", type=float, default=0.3, help="L-inf budget, z-scored units (default 0.3)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as root:
        make_brats_phantom(root, n_subjects=args.subjects, shape=tuple(args.shape), seed=args.seed)
        train_subjects, test_subjects = train_val_split(find_subjects(root), 1 / 3, seed=args.seed)
        x_train, y_train, _ = load_arrays(train_subjects, multiple=8)
        x_test, y_test, metas = load_arrays(test_subjects, multiple=8)
    brain = np.stack([m.brain_mask for m in metas])[:, None]  # (N, 1, D, H, W): where the attack may perturb

    model = UNet3D(in_channels=4, nb_classes=4, base_filters=8, depth=3)
    segmenter = PyTorchSegmenter(
        model,
        "dice_ce",
        input_shape=x_train.shape[1:],
        nb_classes=4,
        clip_values=(float(x_train.min()), float(x_train.max())),
        optimizer=torch.optim.Adam(model.parameters(), lr=3e-3),
        device_type="cpu",
    )
    segmenter.fit(x_train, y_train, batch_size=2, nb_epochs=args.epochs, seed=args.seed, verbose=True)
    print(f"trained on {len(x_train)} phantom subjects {x_train.shape[1:]} in {time.perf_counter() - start:.0f} s")

    eps, step, iters = args.eps, args.eps / 4, 10
    attacks = {
        "ART FastGradientMethod": FastGradientMethod(segmenter, eps=eps),
        "ART ProjectedGradientDescent": ProjectedGradientDescent(
            segmenter, eps=eps, eps_step=step, max_iter=iters, num_random_init=0, verbose=False
        ),
        "FGSM": FGSM(segmenter, eps=eps),
        "i-FGSM": IterativeFGSM(segmenter, eps=eps, eps_step=step, max_iter=iters),
        "ti-FGSM (erase tumour)": TargetedIterativeFGSM(segmenter, eps=eps, eps_step=step, max_iter=iters),
    }
    no_tumour = erase_labels(y_test, [1, 2, 3])
    rows = [("clean", mean_region_dice(segmenter, x_test, y_test, batch_size=2))]
    for name, attack in attacks.items():
        target = no_tumour if name.startswith("ti-FGSM") else y_test
        if name.startswith("ART"):
            x_adv = attack.generate(x_test, target)  # ART drops masks for non-classifiers
        else:
            x_adv = attack.generate(x_test, target, mask=brain)
        rows.append((name, mean_region_dice(segmenter, x_adv, y_test, batch_size=2)))

    print(f"\nheld-out Dice on {len(x_test)} subjects, L-inf eps = {eps} (z-scored units), {iters} iterations")
    print(f"{'input':<30}" + "".join(f"{r:>8}" for r in REGIONS))
    for name, scores in rows:
        print(f"{name:<30}" + "".join(f"{scores[r]:8.3f}" for r in REGIONS))
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
