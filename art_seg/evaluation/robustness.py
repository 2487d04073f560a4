"""``RobustnessEvaluator``: Dice per subject and region, clean and under each attack and eps, for several models.

Results are written as they are made, one JSON line per (model, condition, subject) to ``results.jsonl``::

    {"model": "undefended", "attack": "i-FGSM", "eps": 0.3, "subject": "BraTS20_Training_003",
     "dice": {"WT": 0.71, "TC": 0.52, "ET": 0.49}, "seconds": 1.9,
     "fingerprint": {"setup": "5f0c...", "data": "a93e..."}}

(``"attack": "clean"`` and ``"eps": 0.0`` for clean input; every other metric of the run's metric set under its
own key, e.g. ``"hd95"`` in mm or ``"lesion-dice"``, and ``"lesions"`` with lesion metrics: see
:mod:`art_seg.evaluation.metric_sets`). Each line is
appended, flushed and synced before the next is started, so an interrupted run leaves complete lines and at most
one partial last line; running again drops that line and computes only what is missing. Every attack run is
seeded from the run's seed and its (model, attack, eps, subject) alone, so a resumed run gives the results of an
uninterrupted one.

Resuming (see :mod:`art_seg.evaluation.fingerprints`): every row carries the fingerprint of what made it, its
"setup" (the model's weights and inference settings, the attack's class and parameters at that eps, the seed,
regions, HD95 setting and metric set with its challenge and NSD tolerance) and its "data" (the sample's arrays,
spacing and HD95 penalty). ``run.json`` keeps the run's settings and the fingerprints of its models, attacks
and metric set. Running into a folder that holds results:

- other settings (model names, attack names, eps grid, regions, iterations, seed): refused;
- a model or attack changed under the same name (other weights, sliding window, autocast, attack parameters):
  its rows are dropped, with a warning naming what changed, and computed again; the other rows are kept;
- another metric set (HD95 or not included), lesion challenge or NSD tolerance: every row is dropped, with a
  warning saying so, and computed again with the new metrics (a row never holds metrics of two settings);
- a subject whose data changed: refused (its rows were made on other data);
- results of an older art_seg without fingerprints: refused (nothing to check them against).

So the rows of a folder always come from one set of inputs. One run writes to a folder at a time: a run holds
the folder's lock (:func:`~art_seg._files.folder_lock`) from its checks to its return, and a second
run started on it meanwhile is refused.

Several processes (``torch.distributed`` with ``W > 1`` processes, e.g. under ``torchrun``; see
:mod:`art_seg.distributed`): every process iterates the same samples, and process ``r`` evaluates those at
positions ``i`` with ``i % W == r``, appending to its own ``results.rank<r>.jsonl``; process 0 holds the
folder's lock for all of them. A run reads every results file of the folder (``results.jsonl`` and
``results.rank*.jsonl``) to know what is done, so it resumes a run made with any number of processes. Each row
is made exactly as in a single process (same per-row seed), so the rows, and a report made from them, are those
of a single-process run.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import warnings
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from art_seg import distributed
from art_seg._checks import check_finite, check_number, check_type
from art_seg.data import REGION_CLASSES, Subject, iter_subjects
from art_seg.estimators import PyTorchSegmenter
from art_seg._files import (
    atomic_write_text,
    check_regular_file,
    folder_lock,
    open_append,
    writable_folder,
)
from art_seg.evaluation.attack_specs import AttackSpec, attack_spec
from art_seg.evaluation.fingerprints import attack_fingerprint, digest, model_fingerprint, scoring_fingerprint
from art_seg.evaluation.metric_sets import check_metrics, score_masks
from art_seg.evaluation.scoring import region_channels, region_masks

__all__ = [
    "EvaluationSample",
    "RobustnessEvaluator",
    "grid_diagonal",
    "read_results",
    "samples_from_arrays",
    "samples_from_subjects",
]

RESULTS, SETTINGS = "results.jsonl", "run.json"
FORMAT = 2  # of run.json: 2 holds fingerprints, older ones did not
START_OVER = "use another output folder, or move that folder's results*.jsonl and run.json away to start over"
RANK_RESULTS = re.compile(r"results\.rank(\d+)\.jsonl")


@dataclass(frozen=True)
class EvaluationSample:
    """One subject to evaluate.

    Attributes:
        subject: its id (unique in a run).
        image: ``(C, *spatial)`` float32, z-scored intensities.
        label: ``(*spatial)`` class indices.
        mask: ``(*spatial)`` bool, where attacks may perturb (e.g. the brain), or ``None`` for everywhere.
        spacing: voxel size in mm per spatial axis (for HD95), or ``None`` for 1 mm.
        hd95_penalty: HD95 in mm of a region empty in exactly one of prediction and truth, or ``None`` for the
            diagonal of this sample's grid. Give every sample of a sweep the same: the diagonal of the original
            scan grid, before cropping (373.13 mm for BraTS' 240 x 240 x 155 at 1 mm), as
            :func:`samples_from_subjects` does.
    """

    subject: str
    image: np.ndarray
    label: np.ndarray
    mask: np.ndarray | None = None
    spacing: tuple[float, ...] | None = None
    hd95_penalty: float | None = None


def grid_diagonal(shape: Sequence[int], spacing: Sequence[float] | None = None) -> float:
    """Diagonal in mm of a grid of ``shape`` voxels of ``spacing`` mm (``None``: 1 mm): ``sqrt(sum((n * s)^2))``.

    Example:
        >>> round(grid_diagonal((240, 240, 155)), 2)
        373.13
    """
    spacing = (1.0,) * len(shape) if spacing is None else spacing
    return math.sqrt(sum((int(n) * float(s)) ** 2 for n, s in zip(shape, spacing, strict=True)))


def samples_from_arrays(
    x: np.ndarray,
    y: np.ndarray,
    subjects: Sequence[str] | None = None,
    masks: np.ndarray | None = None,
    spacing: tuple[float, ...] | None = None,
    hd95_penalty: float | None = None,
) -> list[EvaluationSample]:
    """Samples from stacked arrays ``x`` ``(N, C, *spatial)``, ``y`` ``(N, *spatial)`` (and ``masks`` like ``y``).

    ``subjects`` default to ``"subject_000"``, ``"subject_001"``, ... ``hd95_penalty`` (mm) defaults to the
    diagonal of the arrays' grid at ``spacing``, the same for every sample; give the original grid's diagonal
    (:func:`grid_diagonal`) when the arrays were cropped from larger scans.
    """
    check_type("x", x, np.ndarray)
    check_type("y", y, np.ndarray)
    if y.shape != (x.shape[0], *x.shape[2:]):
        raise ValueError(f"y must have shape {(x.shape[0], *x.shape[2:])} (N, *spatial) for x {x.shape}, got {y.shape}")
    if masks is not None and masks.shape != y.shape:
        raise ValueError(f"masks must have the shape of y {y.shape}, got {masks.shape}")
    subjects = [f"subject_{i:03d}" for i in range(len(x))] if subjects is None else list(subjects)
    if len(subjects) != len(x) or len(set(subjects)) != len(subjects):
        raise ValueError(f"subjects must be {len(x)} unique ids, got {subjects!r}")
    if hd95_penalty is None:
        hd95_penalty = grid_diagonal(y.shape[1:], spacing)
    check_number("hd95_penalty", hd95_penalty, low=0)
    return [
        EvaluationSample(s, x[i], y[i], None if masks is None else masks[i].astype(bool), spacing, hd95_penalty)
        for i, s in enumerate(subjects)
    ]


def samples_from_subjects(
    subjects: Iterable[Subject], *, multiple: int = 8, **kwargs: Any
) -> Iterator[EvaluationSample]:
    """Load BraTS subjects one at a time (cropped, padded to ``multiple``, z-scored), with the brain as mask.

    Each sample's HD95 penalty is the diagonal of its original scan grid in mm (before cropping), so that a
    region missed on one side costs the same on every subject, whatever its crop: 373.13 mm on BraTS' 240 x 240 x
    155 grid at 1 mm. A subject that fails to load is skipped with a warning naming it; one without a
    segmentation too (nothing to score). ``kwargs`` go to :func:`~art_seg.data.load_subject`.
    """
    for loaded in iter_subjects(subjects, multiple=multiple, **kwargs):
        subject = loaded.meta.subject_id
        if loaded.label is None:
            warnings.warn(f"skipping subject {subject}: it has no segmentation to score against", stacklevel=2)
            continue
        spacing = tuple(float(z) for z in loaded.meta.header.get_zooms()[:3])
        penalty = grid_diagonal(loaded.meta.original_shape, spacing)
        yield EvaluationSample(subject, loaded.image, loaded.label, loaded.meta.brain_mask, spacing, penalty)


def read_results(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a ``results.jsonl``, or of every results file of an output folder.

    A file: its rows in file order (a partial last line, from an interrupted write, is left out); ``[]`` when it
    does not exist. A folder: the rows of its ``results.jsonl`` then of each ``results.rank<r>.jsonl`` (written by
    process ``r`` of a distributed run), ``r`` ascending, each read as a file.

    Raises:
        ValueError: a complete line that is not a JSON object (names the file and line), or a results file that
            is not a regular file (a FIFO, a folder: it is not opened).
    """
    path = Path(path)
    if path.is_dir():
        return [row for file in _results_files(path) for row in read_results(file)]
    return [row for _, _, row in _read_lines(path)]


def _read_lines(path: Path) -> list[tuple[int, str, dict[str, Any]]]:
    """``(line number, line, row)`` of each complete, non-empty line of a results file; ``[]`` if it is missing."""
    check_regular_file(path)
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    complete = text.split("\n")[:-1]  # the text after the last newline is empty or a partial line
    rows = []
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{str(path)!r} line {number} is not JSON ({error}); the results file is damaged"
            ) from None
        if not isinstance(row, dict):
            raise ValueError(f"{str(path)!r} line {number} is not a JSON object")
        rows.append((number, line, row))
    return rows


def _results_files(folder: Path) -> list[Path]:
    """The results files of an output folder: ``results.jsonl``, then ``results.rank<r>.jsonl`` by rank.

    Raises:
        ValueError: one of them is not a regular file.
    """
    ranked = sorted(
        (int(match[1]), file)
        for file in folder.glob("results.rank*.jsonl")
        if (match := RANK_RESULTS.fullmatch(file.name)) and file.exists()
    )
    files = [file for file in [folder / RESULTS] if file.exists()] + [file for _, file in ranked]
    for file in files:
        check_regular_file(file)
    return files


class RobustnessEvaluator:
    """Sweep attacks and eps over subjects for one or more segmenters; record per-subject, per-region Dice.

    Args:
        models: ``{name: PyTorchSegmenter}``, e.g. ``{"undefended": ..., "distilled": ..., "adversarial": ...}``.
        attacks: attack names (see :mod:`art_seg.evaluation.attack_specs`: ``"fgsm"``, ``"i-fgsm"``,
            ``"ti-fgsm"``, ``"pgd"``, ``"fgm"``, ``"bim"``) or :class:`AttackSpec` objects (any art_seg or ART
            attack).
        eps: the eps grid, positive, in z-scored intensity units (L-inf).
        regions: ``{name: class indices}`` scored by Dice; default the BraTS regions WT, TC, ET. Every model is
            scored on the same regions (:mod:`art_seg.evaluation.scoring`): a softmax model on its label map, a
            region model (``PyTorchSegmenter(regions=...)``, sigmoid) on the channel of each region, whatever the
            channel order, against the region's mask of the ground truth.
        iterations: steps of the named iterative attacks; step ``eps / 4``.
        hd95: also record HD95 per region, in mm (the same as ``"hd95"`` in ``metrics``).
        metrics: the metrics recorded per region (:data:`~art_seg.evaluation.metric_sets.METRICS`: ``"dice"``,
            ``"hd95"``, ``"hd95-surfels"``, ``"nsd"``, ``"lesion-dice"``, ``"lesion-hd95"``, ``"lesion-f1"``,
            ``"lesion-nsd"``); Dice is always recorded.
        challenge: rules of the lesion metrics: ``"GLI"``, ``"SSA"``, ``"PED"``, ``"MEN"``, ``"MET"`` (BraTS
            2023/2024 lesion-wise) or ``"2025"`` (instance matching).
        nsd_tolerance: tolerance of ``"nsd"`` in mm.
        seed: seed of the run; every attack run is seeded from it and its own key.
        verbose: progress bar over subjects and conditions (on rank 0 only when distributed).

    Raises:
        ValueError: no model or attack, a bad eps grid, or a model that cannot be scored on one of ``regions`` (a
            region model with no channel made of its classes, a sigmoid model with several channels and no region
            spec), naming the model.

    Example:
        >>> evaluator = RobustnessEvaluator({"undefended": seg}, ["fgsm", "i-fgsm"], eps=[0.1, 0.3])  # doctest: +SKIP
        >>> rows = evaluator.run(samples_from_arrays(x, y), "out")  # doctest: +SKIP
    """

    def __init__(
        self,
        models: Mapping[str, PyTorchSegmenter],
        attacks: Sequence[str | AttackSpec],
        eps: Sequence[float],
        *,
        regions: Mapping[str, Sequence[int]] | None = None,
        iterations: int = 10,
        hd95: bool = False,
        metrics: Sequence[str] = ("dice",),
        challenge: str = "GLI",
        nsd_tolerance: float = 1.0,
        seed: int = 0,
        verbose: bool = False,
    ) -> None:
        if not isinstance(models, Mapping) or not models:
            raise ValueError(f"models must be a non-empty mapping of name -> PyTorchSegmenter, got {models!r}")
        for name, model in models.items():
            check_type(f"models[{name!r}]", model, PyTorchSegmenter)
        if isinstance(attacks, (str, AttackSpec)) or not attacks:
            raise ValueError(f"attacks must be a non-empty list of names or AttackSpec, got {attacks!r}")
        specs = [a if isinstance(a, AttackSpec) else attack_spec(a, iterations=iterations) for a in attacks]
        names = [s.name for s in specs]
        if len(set(names)) != len(names) or "clean" in names:
            raise ValueError(f"attack names must be unique and not 'clean', got {names}")
        eps = _check_eps(eps)
        check_type("hd95", hd95, bool)
        metrics = check_metrics(metrics, challenge)
        if hd95 and "hd95" not in metrics:
            metrics = check_metrics([*metrics, "hd95"], challenge)
        check_number("nsd_tolerance", nsd_tolerance, low=0)
        check_number("seed", seed, low=0, integer=True)
        self.models = dict(models)
        self.attacks = specs
        self.eps = eps
        self.regions = {k: tuple(int(c) for c in v) for k, v in (regions or REGION_CLASSES).items()}
        for name, model in self.models.items():
            try:
                region_channels(model, self.regions)  # every model can be scored on every region, before any work
            except ValueError as error:
                raise ValueError(f"models[{name!r}]: {error}") from None
        self.iterations = iterations
        self.metrics = metrics
        self.hd95 = "hd95" in metrics
        self.challenge = challenge
        self.nsd_tolerance = float(nsd_tolerance)
        self.seed = seed
        self.verbose = verbose

    def settings(self) -> dict[str, Any]:
        """The conditions a resumed run must share with the run that wrote the results (names, grids, seed)."""
        return {
            "models": list(self.models),
            "attacks": [s.name for s in self.attacks],
            "eps": self.eps,
            "regions": {k: list(v) for k, v in self.regions.items()},
            "iterations": self.iterations,
            "seed": self.seed,
        }

    def fingerprints(self) -> tuple[dict[str, Any], dict[tuple[str, str, float], str]]:
        """What determines the rows, computed from the models and attacks themselves.

        Returns:
            ``(summary, setups)``: ``summary`` is ``{"models": {name: model_fingerprint}, "attacks": {name:
            digest}, "scoring": {"metrics", "challenge", "nsd_tolerance"}}`` (kept in ``run.json``, to say what
            changed); ``setups`` maps each ``(model, attack, eps)``
            of the run (``("clean", 0.0)`` included) to the digest its rows carry as ``fingerprint.setup``.
        """
        models = {name: model_fingerprint(model) for name, model in self.models.items()}
        first = next(iter(self.models.values()))  # an attack's parameters do not depend on the model
        attacks = {s.name: {str(e): attack_fingerprint(s, first, e) for e in self.eps} for s in self.attacks}
        scoring = scoring_fingerprint(self.metrics, self.challenge, self.nsd_tolerance)
        common = {"regions": self.settings()["regions"], "hd95": self.hd95, "seed": self.seed}
        if scoring:  # absent for Dice and HD95 only: such runs keep the setups of earlier art_seg versions
            common["scoring"] = scoring
        setups = {}
        for name, model in models.items():
            setups[(name, "clean", 0.0)] = digest({"model": model, "attack": None, "eps": 0.0, **common})
            for spec in self.attacks:
                for eps in self.eps:
                    attack = attacks[spec.name][str(eps)]
                    setups[(name, spec.name, eps)] = digest({"model": model, "attack": attack, "eps": eps, **common})
        described = {"metrics": list(self.metrics), "challenge": self.challenge, "nsd_tolerance": self.nsd_tolerance}
        summary = {"models": models, "attacks": {n: digest(a) for n, a in attacks.items()}, "scoring": described}
        return summary, setups

    def run(self, samples: Iterable[EvaluationSample], output_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
        """Evaluate every sample; append each result to ``output_dir/results.jsonl`` as soon as it is made.

        Rows already in the folder's results files are not recomputed (resume) unless their model or attack
        changed since (see the module docstring). With ``W > 1`` processes, call it on every process with the
        same samples, in the same order: process ``r`` evaluates the samples at positions ``i % W == r`` into
        ``results.rank<r>.jsonl``, and every process returns once all are done. (Every process iterates, and so
        loads, every sample; only the attacks are shared out.) A failure on one process does not stop the
        others; ``torchrun`` ends them.

        Returns:
            All rows of the folder's results files (every process's), in the order of an uninterrupted
            single-process run (rows of subjects, models or conditions not in this run last, in file order).

        Raises:
            ValueError: ``output_dir`` cannot be written, is in use by another run, its ``run.json`` has other
                settings or no fingerprints, a subject's data differ from those of its rows, a results file is
                not a regular file, or a sample is bad.

        Warns:
            UserWarning: rows of a changed model or attack are dropped to be computed again.
        """
        output = writable_folder(output_dir)
        processes, rank = distributed.world_size(), distributed.rank()
        summary, setups = self.fingerprints()
        with ExitStack() as held:
            problem = None
            if rank == 0:  # lock, checks and clean-up by one process, before any process appends
                try:
                    held.enter_context(folder_lock(output))
                    self._prepare(output, summary, setups)
                except Exception as error:  # handed to every process, so that all raise it
                    problem = error
            problem = distributed.broadcast_object(problem)
            if problem is not None:
                raise problem
            order = self._run_samples(samples, output, setups, processes, rank)
            distributed.barrier()  # every process's rows are written
        return sorted(read_results(output), key=lambda row: order.get(_key(row), len(order)))

    def attack_sample(
        self, model: str, attack: str, eps: float, sample: EvaluationSample
    ) -> tuple[np.ndarray, np.ndarray]:
        """Re-make one adversarial example exactly as :meth:`run` did: ``(x_adv (C, *spatial), prediction)``, the
        prediction on it as a class-index label map ``(*spatial)`` (a region model's masks painted into classes by
        :meth:`~art_seg.estimators.PyTorchSegmenter.to_label_map`), e.g. for an overlay."""
        if model not in self.models:
            raise ValueError(f"model must be one of {list(self.models)}, got {model!r}")
        specs = {s.name: s for s in self.attacks}
        if attack not in specs:
            raise ValueError(f"attack must be one of {list(specs)}, got {attack!r}")
        segmenter = self.models[model]
        x_adv = self._adversarial(model, segmenter, specs[attack], float(eps), sample)
        return x_adv[0], segmenter.to_label_map(segmenter.predict_labels(x_adv, batch_size=1))[0]

    # ------------------------------------------------------------------------------------ internals
    def _evaluate(
        self, model_name: str, model: PyTorchSegmenter, spec: AttackSpec | None, eps: float, sample: EvaluationSample
    ) -> dict[str, Any]:
        t0 = time.perf_counter()
        x = sample.image[None]
        if spec is not None:
            x = self._adversarial(model_name, model, spec, eps, sample)
        prediction = model.predict_labels(x, batch_size=1)[0]
        row: dict[str, Any] = {
            "model": model_name,
            "attack": "clean" if spec is None else spec.name,
            "eps": float(eps),
            "subject": sample.subject,
        }
        row.update(
            score_masks(
                region_masks(model, prediction, sample.label, self.regions),
                self.metrics,
                challenge=self.challenge,
                spacing=sample.spacing,
                hd95_penalty=sample.hd95_penalty,
                nsd_tolerance=self.nsd_tolerance,
            )
        )
        row["seconds"] = round(time.perf_counter() - t0, 4)
        return row

    def _adversarial(
        self, model_name: str, model: PyTorchSegmenter, spec: AttackSpec, eps: float, sample: EvaluationSample
    ) -> np.ndarray:
        x, y = sample.image[None], sample.label[None]
        labels = spec.target(y) if spec.target is not None else y
        mask = None
        if sample.mask is not None and spec.masked:
            mask = np.broadcast_to(sample.mask[None, None], x.shape).astype(np.float32)
        attack = spec.build(model, eps)
        devices = [model.device] if model.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            seed = _run_seed(self.seed, model_name, spec.name, eps, sample.subject)
            torch.manual_seed(seed)
            np_state = np.random.get_state()
            np.random.seed(seed % 2**32)
            try:
                return attack.generate(x, labels) if mask is None else attack.generate(x, labels, mask=mask)
            finally:
                np.random.set_state(np_state)

    def _run_samples(
        self,
        samples: Iterable[EvaluationSample],
        output: Path,
        setups: Mapping[tuple[str, str, float], str],
        processes: int,
        rank: int,
    ) -> dict[tuple[str, str, float, str], int]:
        """Evaluate this process's share of ``samples``; return every key's place in a single-process run."""
        results = output / (RESULTS if processes == 1 else f"results.rank{rank}.jsonl")
        rows = read_results(output)
        done = {_key(row) for row in rows}
        data_of: dict[str, set[Any]] = {}  # subject -> data fingerprints of its rows
        for row in rows:
            data_of.setdefault(row["subject"], set()).add(_fingerprint(row).get("data"))
        conditions = [("clean", 0.0, None)] + [(s.name, e, s) for s in self.attacks for e in self.eps]
        per_sample = len(self.models) * len(conditions)
        total = len(range(rank, len(samples), processes)) * per_sample if isinstance(samples, Sized) else None
        progress = tqdm(total=total, desc="RobustnessEvaluator", unit="run", disable=not self.verbose or rank != 0)
        seen: set[str] = set()
        order: dict[tuple[str, str, float, str], int] = {}  # key -> place in a single-process run
        with open_append(results) as sink:
            for position, sample in enumerate(samples):
                self._check_sample(sample, seen)
                mine = position % processes == rank
                data = _data_fingerprint(sample) if mine else None
                if mine and data_of.get(sample.subject, {data}) != {data}:
                    raise ValueError(
                        f"subject {sample.subject!r}: its data (image, label, mask, spacing or HD95 penalty) differ "
                        f"from those its rows in {str(output)!r} were computed on; {START_OVER}"
                    )
                for model_name, model in self.models.items():
                    for attack_name, eps, spec in conditions:
                        key = (model_name, attack_name, float(eps), sample.subject)
                        order.setdefault(key, len(order))
                        if not mine:
                            continue
                        progress.update(1)
                        if key in done:
                            continue
                        progress.set_postfix(model=model_name, attack=attack_name, eps=eps, subject=sample.subject)
                        row = self._evaluate(model_name, model, spec, eps, sample)
                        row["fingerprint"] = {"setup": setups[key[:3]], "data": data}
                        sink.write(json.dumps(row) + "\n")
                        sink.flush()
                        os.fsync(sink.fileno())
                        done.add(key)
        progress.close()
        return order

    def _prepare(
        self, output: Path, summary: Mapping[str, Any], setups: Mapping[tuple[str, str, float], str]
    ) -> None:
        """Check ``run.json`` and the rows against this run; drop partial lines and the rows of changed models or
        attacks; then record this run's settings and fingerprints in ``run.json``."""
        path = output / SETTINGS
        check_regular_file(path)
        settings = {"format": FORMAT, **self.settings(), "fingerprints": summary}
        saved = None
        if path.exists():
            try:
                saved = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise ValueError(f"{str(path)!r} is damaged ({error}); {START_OVER}") from None
            if not isinstance(saved, dict) or saved.get("format") != FORMAT:
                raise ValueError(
                    f"{str(output)!r} holds results of an older art_seg run: its run.json has no fingerprints of "
                    f"the models and data, so its rows cannot be checked against this run; {START_OVER}"
                )
            differences = [k for k in self.settings() if saved.get(k) != settings[k]]
            if differences:
                raise ValueError(
                    f"{str(output)!r} holds results of a run with other settings ({', '.join(differences)}); "
                    "use another output folder or the same settings to resume"
                )
        files = _results_files(output)
        for file in files:
            _drop_partial_line(file)
        stale = {file: _stale_lines(file, setups) for file in files}
        dropped = [row for lines in stale.values() for _, _, row in lines]
        if dropped:
            for reason in _changes(saved, summary, dropped) or [f"{len(dropped)} rows made with other inputs"]:
                warnings.warn(f"{str(output)!r}: {reason}", stacklevel=3)
            for file, lines in stale.items():
                numbers = {number for number, _, _ in lines}
                if numbers:
                    kept = [line + "\n" for number, line, _ in _read_lines(file) if number not in numbers]
                    atomic_write_text(file, "".join(kept))
        if saved != settings:
            atomic_write_text(path, json.dumps(settings, indent=2) + "\n")

    def _check_sample(self, sample: Any, seen: set[str]) -> None:
        check_type("sample", sample, EvaluationSample)
        if sample.subject in seen:
            raise ValueError(f"subject {sample.subject!r} appears twice in the samples")
        seen.add(sample.subject)
        if sample.label.shape != sample.image.shape[1:]:
            raise ValueError(
                f"sample {sample.subject!r}: label shape {sample.label.shape} does not match image {sample.image.shape}"
            )
        check_finite(f"sample {sample.subject!r} image", sample.image)
        if self.hd95 and sample.hd95_penalty is not None:
            check_number(f"sample {sample.subject!r} hd95_penalty", sample.hd95_penalty, low=0)


def _check_eps(eps: Any) -> list[float]:
    if isinstance(eps, (int, float)) or eps is None:
        raise ValueError(f"eps must be a non-empty list of positive numbers, got {eps!r}")
    values = list(eps)
    if not values:
        raise ValueError("eps must be a non-empty list of positive numbers, got []")
    for value in values:
        check_number("eps", value, low=0, low_inclusive=False)
    if len(set(values)) != len(values):
        raise ValueError(f"eps must not repeat a value, got {values}")
    return sorted(float(v) for v in values)


def _key(row: Mapping[str, Any]) -> tuple[str, str, float, str]:
    return (row["model"], row["attack"], float(row["eps"]), row["subject"])


def _fingerprint(row: Mapping[str, Any]) -> dict[str, Any]:
    """The ``fingerprint`` of a row (``{}`` for a row of an older art_seg, which has none)."""
    fingerprint = row.get("fingerprint")
    return fingerprint if isinstance(fingerprint, dict) else {}


def _data_fingerprint(sample: EvaluationSample) -> str:
    """What a sample's rows depend on: its arrays, spacing and HD95 penalty (not its id, which is in the key)."""
    spacing = None if sample.spacing is None else [float(s) for s in sample.spacing]
    penalty = None if sample.hd95_penalty is None else float(sample.hd95_penalty)
    arrays = {"image": sample.image, "label": sample.label, "mask": sample.mask}
    return digest({**arrays, "spacing": spacing, "hd95_penalty": penalty})


def _stale_lines(file: Path, setups: Mapping[tuple[str, str, float], str]) -> list[tuple[int, str, dict[str, Any]]]:
    """The lines of ``file`` whose (model, attack, eps) is in this run with another setup fingerprint.

    Raises:
        ValueError: a row has no fingerprint (written by an older art_seg).
    """
    stale = []
    for number, line, row in _read_lines(file):
        fingerprint = _fingerprint(row)
        if not {"setup", "data"} <= fingerprint.keys():
            raise ValueError(
                f"{str(file)!r} line {number} is a row without fingerprints (written by an older art_seg): it "
                f"cannot be checked against this run; {START_OVER}"
            )
        setup = setups.get(_key(row)[:3])
        if setup is not None and fingerprint["setup"] != setup:
            stale.append((number, line, row))
    return stale


def _changes(saved: Mapping[str, Any] | None, summary: Mapping[str, Any], dropped: list[dict[str, Any]]) -> list[str]:
    """Why rows are dropped, from ``run.json``'s fingerprints against this run's: one line per changed model
    (naming what changed: weights, architecture or inference settings) or attack, with its number of rows."""
    before = (saved or {}).get("fingerprints", {})
    reasons = []
    for name, now in summary["models"].items():
        old = before.get("models", {}).get(name)
        if old is None or old == now:
            continue
        parts = [part for part in ("architecture", "weights") if old.get(part) != now[part]]
        parts += [k for k, v in now["inference"].items() if old.get("inference", {}).get(k) != v]
        count = sum(row["model"] == name for row in dropped)
        reasons.append(f"model {name!r} ({', '.join(parts)}) changed since its rows were made: recomputing {count}")
    for name, now in summary["attacks"].items():
        old = before.get("attacks", {}).get(name)
        if old is not None and old != now:
            count = sum(row["attack"] == name for row in dropped)
            reasons.append(f"attack {name!r} (its parameters) changed since its rows were made: recomputing {count}")
    reasons = [f"{reason} of its rows" for reason in reasons]
    if "scoring" in before and before["scoring"] != summary["scoring"]:
        reasons.append(
            f"the metric set or its settings changed since the rows were made ({before['scoring']} -> "
            f"{summary['scoring']}): recomputing {len(dropped)} rows"
        )
    return reasons


def _run_seed(seed: int, *key: Any) -> int:
    digest = zlib.crc32(json.dumps([str(k) for k in key]).encode())
    return int(np.random.SeedSequence([seed, digest]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _drop_partial_line(path: Path) -> None:
    """Cut an interrupted last line (no trailing newline) off ``path``."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    keep = data.rfind(b"\n") + 1
    warnings.warn(f"{str(path)!r} ends in a partial line (an interrupted run); dropping it", stacklevel=3)
    with path.open("r+b") as f:
        f.truncate(keep)
