"""SEA against the demo's attacks on the demo's models: Dice per region, gradient evaluations and seconds.

On the held-out phantom subjects of an ``art-seg demo`` (attacks inside the brain, L-inf, eps in z-scored units),
for the undefended, distilled and adversarially trained models, prints mean Dice of whole tumour, tumour core and
enhancing tumour under

- i-FGSM, 5 steps (the demo's headline attack, its Dice + CE loss, step eps / 4);
- APGD on the model's Dice + CE loss;
- the worst-case ensemble of ``benchmark_strong_attacks.py`` (i-FGSM on Dice + CE and on CE, SegPGD, CosPGD,
  APGD-CE, APGD-DLR, APGD masked CE, APGD Dice + CE), ``--iterations`` each;
- SEA (its default five APGD losses, ``--sea-iterations`` each, 300 in the paper) and its cheaper preset (a
  quarter of the iterations);

with the loss gradients each attack evaluated per subject (counted at the estimator) and its seconds, and how
often SEA kept each member. Then it says whether SEA's Dice is at most the strongest other attack's in every
region and model, and the cheap preset's gap to full SEA.

Uses the models and phantom of an ``art-seg demo`` run when given its folder, else trains them as the demo does
(its sizes and defences; ``--epochs`` / ``--defence-epochs`` shorten the training)::

    python examples/benchmark_sea.py --demo art-seg-demo --threads 2 --eps 0.1 0.25 0.5
    python examples/benchmark_sea.py --shape 32 32 16 --epochs 20 --defence-epochs 5 --subjects 4 \\
        --iterations 5 --sea-iterations 20 --threads 2     # a reduced run
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from art_seg.attacks import SEA, AutoPGDSegmentation, CosPGD, IterativeFGSM, SegPGD, WorstCaseEnsemble
from art_seg.attacks.sea import DEFAULT_LOSSES
from art_seg.cli.demo import train_models
from art_seg.cli.main import build_parser
from art_seg.data import REGIONS, find_subjects, load_arrays, make_brats_phantom, train_val_split
from art_seg.defences import load_segmenter
from art_seg.evaluation import attack_spec, mean_region_dice

MODELS = ("undefended", "distilled", "adversarial")


def demo_models(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """The demo's three models: loaded from ``--demo``, or trained as ``art-seg demo`` trains them."""
    if args.demo:
        return {name: load_segmenter(Path(args.demo) / "models" / f"{name}.pt")[0] for name in MODELS}
    demo_args = build_parser().parse_args(
        ["demo", "--epochs", str(args.epochs), "--defence-epochs", str(args.defence_epochs), "--output", str(root),
         "--seed", str(args.seed), "--quiet", "--shape", *map(str, args.shape)]
    )  # fmt: skip
    train_subjects, _ = train_val_split(find_subjects(root / "phantom"), demo_args.val_fraction, seed=args.seed)
    x, y, _ = load_arrays(train_subjects, multiple=2**demo_args.depth)
    return train_models(demo_args, "cpu", (x, y), root)


def attacks(segmenter: Any, eps: float, args: argparse.Namespace) -> dict[str, Any]:
    n, step = args.iterations, eps / 4
    members = [
        IterativeFGSM(segmenter, eps=eps, eps_step=step, max_iter=n),
        IterativeFGSM(segmenter, eps=eps, eps_step=step, max_iter=n, loss="ce"),
        SegPGD(segmenter, eps=eps, eps_step=step, max_iter=n),
        CosPGD(segmenter, eps=eps, eps_step=step, max_iter=n),
        AutoPGDSegmentation(segmenter, eps=eps, max_iter=n),
        AutoPGDSegmentation(segmenter, eps=eps, max_iter=n, loss="dlr"),
        AutoPGDSegmentation(segmenter, eps=eps, max_iter=n, loss="masked_ce"),
        AutoPGDSegmentation(segmenter, eps=eps, max_iter=n, loss="own"),
    ]
    sea_n, m = args.sea_iterations, len(DEFAULT_LOSSES)
    return {
        "i-FGSM (5 steps)": attack_spec("i-fgsm", iterations=5).build(segmenter, eps),
        f"APGD (Dice+CE, {n})": AutoPGDSegmentation(segmenter, eps=eps, max_iter=n, loss="own"),
        f"ensemble (8 x {n})": WorstCaseEnsemble(members),
        f"SEA ({m} x {sea_n})": SEA(segmenter, eps=eps, max_iter=sea_n, seed=args.seed),
        f"SEA fast ({m} x {sea_n // 4})": SEA(segmenter, eps=eps, max_iter=max(sea_n // 4, 1), seed=args.seed),
    }


def counting_gradients(segmenter: Any) -> list[int]:
    """Count the samples of every ``loss_gradient`` call on this estimator (ART's attacks call it too)."""
    count, original = [0], segmenter.loss_gradient

    def loss_gradient(x: Any, *rest: Any, **kwargs: Any) -> Any:
        count[0] += len(x)
        return original(x, *rest, **kwargs)

    segmenter.loss_gradient = loss_gradient
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", default=None, help="an art-seg demo output folder to take models and data from")
    parser.add_argument(
        "--eps",
        type=float,
        nargs="+",
        default=[0.25],
        help="L-inf budgets, z-scored (default 0.25; demo: 0.1 0.25 0.5)",
    )
    parser.add_argument("--iterations", type=int, default=10, help="APGD and ensemble members' iterations (10)")
    parser.add_argument("--sea-iterations", type=int, default=300, help="SEA's iterations per loss (default 300)")
    parser.add_argument("--epochs", type=int, default=40, help="training epochs without --demo (demo: 40)")
    parser.add_argument("--defence-epochs", type=int, default=20, help="defence epochs without --demo (demo: 20)")
    parser.add_argument("--subjects", type=int, default=None, help="attack only the first N held-out subjects")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=MODELS, help="which of the demo's models")
    parser.add_argument("--shape", type=int, nargs=3, default=(48, 48, 32), help="phantom shape (default: the demo's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(args.demo) if args.demo else Path(scratch)
        if not args.demo:
            make_brats_phantom(root / "phantom", n_subjects=16, shape=tuple(args.shape), seed=args.seed)
        _, test_subjects = train_val_split(find_subjects(root / "phantom"), 0.5, seed=args.seed)
        start = time.perf_counter()
        models = demo_models(args, root)
        trained = "loaded from " + args.demo if args.demo else f"trained in {time.perf_counter() - start:.0f} s"
        x, y, metas = load_arrays(test_subjects[: args.subjects], multiple=8)
    mask = np.broadcast_to(np.stack([m.brain_mask for m in metas])[:, None], x.shape).astype(np.float32)

    eps_list = " ".join(map(str, args.eps))
    print(f"models {trained}; {len(x)} held-out subjects, L-inf eps {eps_list}, attacks inside the brain")
    strongest_gap, mean_gap, fast_gap, fast_cost = [], [], [], []
    chosen = [(name, segmenter) for name, segmenter in models.items() if name in args.models]
    for (name, segmenter), eps in itertools.product(chosen, args.eps):
        gradients = counting_gradients(segmenter)
        clean = mean_region_dice(segmenter, x, y)
        header = "".join(f"{r:>8}" for r in REGIONS)
        print(f"\n{name} model, eps {eps}\n{'attack':<24}{header}    mean  grads/subject       s")
        print(f"{'clean':<24}" + "".join(f"{clean[r]:8.3f}" for r in REGIONS))
        figures, grads = {}, {}
        for attack_name, attack in attacks(segmenter, eps, args).items():
            gradients[0] = 0
            t0 = time.perf_counter()
            x_adv = attack.generate(x, y, mask=mask)
            seconds = time.perf_counter() - t0
            figures[attack_name] = dice = mean_region_dice(segmenter, x_adv, y)
            grads[attack_name] = gradients[0] / len(x)
            row = "".join(f"{dice[r]:8.3f}" for r in REGIONS) + f"{np.mean([dice[r] for r in REGIONS]):8.3f}"
            print(f"{attack_name:<24}{row}{grads[attack_name]:14.0f}{seconds:8.0f}")
            if isinstance(attack, SEA):
                kept = np.bincount(attack.chosen_, minlength=len(attack.losses))
                print(f"{'':<24}kept per sample: " + ", ".join(f"{n} {k}" for n, k in zip(attack.losses, kept)))
        names = list(figures)
        sea, fast, others = figures[names[3]], figures[names[4]], names[:3]
        strongest_gap.append(max(sea[r] - min(figures[o][r] for o in others) for r in REGIONS))
        mean_gap.append(max(np.mean([sea[r] - figures[o][r] for r in REGIONS]) for o in others))
        fast_gap.append(max(fast[r] - sea[r] for r in REGIONS))
        fast_cost.append(grads[names[4]] / grads[names[3]])
    print(
        f"\nSEA's Dice minus the strongest other attack's, worst region, model and eps: {max(strongest_gap):+.4f} "
        f"({'SEA at least as strong in every region' if max(strongest_gap) <= 0 else 'SEA weaker in some region'})"
        f"\nSEA's mean Dice over regions minus the strongest other attack's, worst model and eps: {max(mean_gap):+.4f}"
        f"\ncheap preset's Dice minus full SEA's, worst region, model and eps: {max(fast_gap):+.4f}, "
        f"at {max(fast_cost):.0%} of its gradient evaluations"
    )


if __name__ == "__main__":
    main()
