"""SegPGD, CosPGD, APGD and the worst-case ensemble against i-FGSM, at the same eps and iteration count.

On held-out phantom subjects (attacks inside the brain, L-inf, eps in z-scored intensity units), prints mean Dice of
whole tumour, tumour core and enhancing tumour and the Dice reduction against clean for each attack, for an
undefended UNet3D and a distilled one (fine-tuned from it, T = 5), with the distilled model's Dice under the
ensemble next to its i-FGSM Dice. i-FGSM runs twice: on the models' own Dice + cross-entropy loss, and on
cross-entropy, the loss SegPGD, CosPGD and APGD-CE reweight or schedule (the like-for-like comparison).

Uses the models and phantom of an ``art-seg demo`` run when given its folder (fast), else trains them (2 minutes)::

    python examples/benchmark_strong_attacks.py --demo art-seg-demo      # after `art-seg demo`
    python examples/benchmark_strong_attacks.py                          # trains first
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from art_seg.attacks import AutoPGDSegmentation, CosPGD, IterativeFGSM, SegPGD, WorstCaseEnsemble
from art_seg.data import REGIONS, find_subjects, load_arrays, make_brats_phantom, train_val_split
from art_seg.defences import DistillationTrainer, SegmentationTrainer, copy_segmenter, load_segmenter
from art_seg.estimators import PyTorchSegmenter
from art_seg.evaluation import mean_region_dice
from art_seg.models import UNet3D


def trained_models(x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, PyTorchSegmenter]:
    torch.manual_seed(seed)
    model = UNet3D(in_channels=4, nb_classes=4, base_filters=8, depth=3)
    undefended = PyTorchSegmenter(
        model, "dice_ce", input_shape=x.shape[1:], nb_classes=4,
        optimizer=torch.optim.Adam(model.parameters(), lr=3e-3), device_type="cpu",
    )  # fmt: skip
    SegmentationTrainer(undefended, seed=seed).fit(x, y, batch_size=2, nb_epochs=40)
    distillation = DistillationTrainer(
        copy_segmenter(undefended), teacher=copy_segmenter(undefended), train_teacher=True, temperature=5.0, seed=seed
    )
    distillation.fit(x, y, batch_size=2, nb_epochs=20)
    return {"undefended": undefended, "distilled": distillation.student}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", default=None, help="an art-seg demo output folder to take models and data from")
    parser.add_argument("--eps", type=float, default=0.25, help="L-inf budget, z-scored units (default 0.25)")
    parser.add_argument("--iterations", type=int, default=10, help="iterations of every attack (default 10)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(args.demo) / "phantom" if args.demo else Path(scratch)
        if not args.demo:
            make_brats_phantom(root, n_subjects=16, shape=(48, 48, 32), seed=args.seed)
        train_subjects, test_subjects = train_val_split(find_subjects(root), 0.5, seed=args.seed)
        x_test, y_test, metas = load_arrays(test_subjects, multiple=8)
        if args.demo:
            models = {n: load_segmenter(Path(args.demo) / "models" / f"{n}.pt")[0] for n in ("undefended", "distilled")}
        else:
            models = trained_models(*load_arrays(train_subjects, multiple=8)[:2], seed=args.seed)
    mask = np.broadcast_to(np.stack([m.brain_mask for m in metas])[:, None], x_test.shape).astype(np.float32)

    eps, n = args.eps, args.iterations
    print(f"{len(x_test)} held-out subjects, L-inf eps {eps} (z-scored), {n} iterations each, attacks inside the brain")
    for name, segmenter in models.items():
        members = {
            "i-FGSM (Dice+CE)": IterativeFGSM(segmenter, eps=eps, eps_step=eps / 4, max_iter=n),
            "i-FGSM (CE)": IterativeFGSM(segmenter, eps=eps, eps_step=eps / 4, max_iter=n, loss="ce"),
            "SegPGD": SegPGD(segmenter, eps=eps, eps_step=eps / 4, max_iter=n),
            "CosPGD": CosPGD(segmenter, eps=eps, eps_step=eps / 4, max_iter=n),
            "APGD-CE": AutoPGDSegmentation(segmenter, eps=eps, max_iter=n),
            "APGD-DLR": AutoPGDSegmentation(segmenter, eps=eps, max_iter=n, loss="dlr"),
            "APGD-masked-CE": AutoPGDSegmentation(segmenter, eps=eps, max_iter=n, loss="masked_ce"),
            "APGD (Dice+CE)": AutoPGDSegmentation(segmenter, eps=eps, max_iter=n, loss="own"),
        }
        members["worst-case ensemble"] = WorstCaseEnsemble(list(members.values()))
        clean = mean_region_dice(segmenter, x_test, y_test)
        print(f"\n{name} model\n{'attack':<22}" + "".join(f"{r:>8}" for r in REGIONS) + "   WT/TC/ET reduction    s")
        print(f"{'clean':<22}" + "".join(f"{clean[r]:8.3f}" for r in REGIONS))
        for attack_name, attack in members.items():
            start = time.perf_counter()
            x_adv = attack.generate(x_test, y_test, mask=mask)
            seconds = time.perf_counter() - start
            dice = mean_region_dice(segmenter, x_adv, y_test)
            drops = "/".join(f"{100 * (clean[r] - dice[r]) / clean[r]:.0f}%" for r in REGIONS)
            print(f"{attack_name:<22}" + "".join(f"{dice[r]:8.3f}" for r in REGIONS) + f"   {drops:<20}{seconds:5.0f}")


if __name__ == "__main__":
    main()
