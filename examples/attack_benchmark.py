"""Speed and memory of art_seg's iterative attack against ART's and against a bare PyTorch loop: the harness of
``benchmark_attacks.py`` (and the memory probes of ``benchmark_sliding_window.py``), imported by those scripts
from this folder; not part of the installed package.

Measured on one model and input in one run, and reported as ratios, so that the figures mean the same on
any machine:

- time per iteration of :class:`~art_seg.attacks.IterativeFGSM`, of ART's ``BasicIterativeMethod`` run on
  the same :class:`~art_seg.estimators.PyTorchSegmenter`, and of a bare loop (forward, backward, sign step,
  projection, clip), each divided by the bare loop's;
- peak memory of a 10-step ``IterativeFGSM`` divided by that of one forward+backward pass. On CUDA this is
  ``torch.cuda.max_memory_allocated``; on a CPU it is the peak resident set size above the baseline (Linux
  ``/proc/self/status``), each workload in a fresh process started with glibc's mmap threshold fixed at
  64 KiB. Without that, glibc keeps freed tensor memory and fragments it, and even two plain
  forward+backward passes peak about 1.2x higher than one; with it, freed tensors go back to the system and
  the peak follows the tensors alive at once;
- time of one loss gradient with a per-voxel attack loss (CosPGD's cosine-scaled cross-entropy) through
  ``PyTorchSegmenter.loss_gradient``, which evaluates it as one ``(N,)`` vector of per-sample losses per batch,
  and through a Python loop over samples (how per-sample losses were evaluated before), each divided by a bare
  PyTorch forward + loss + backward written as the CosPGD authors write it (:func:`per_sample_loss_time`), in
  2D and in 3D. The three are timed in turn within each repetition, so that load on a shared machine reaches
  them alike, and on the CPU in process CPU time.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

EPS, EPS_STEP = 0.1, 0.02
T = TypeVar("T")


@dataclass(frozen=True)
class BenchmarkConfig:
    """What to measure on: a UNet3D with 4 input channels and 4 classes on random z-scored volumes.

    Args:
        size: cube side of the volume in voxels (must divide by ``2**depth``).
        batch_size: volumes per batch.
        base_filters: UNet3D filters at full resolution.
        depth: UNet3D down-samplings.
        iterations: attack iterations timed per repetition.
        repeats: timing repetitions; the median is reported.
        device: ``"cpu"`` or ``"cuda"``.
        threads: CPU threads for torch (``None`` leaves torch's default).
        seed: seed of the model weights and the input.
    """

    size: int = 48
    batch_size: int = 2
    base_filters: int = 8
    depth: int = 3
    iterations: int = 5
    repeats: int = 3
    device: str = "cpu"
    threads: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("size", "batch_size", "base_filters", "iterations", "repeats"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if not isinstance(self.depth, int) or self.depth < 0:
            raise ValueError(f"depth must be an integer >= 0, got {self.depth!r}")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {self.device!r}")
        if self.size % 2**self.depth:
            raise ValueError(f"size must divide by 2**depth = {2**self.depth}, got {self.size}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device is 'cuda' but torch.cuda.is_available() is False")


def _setup(config: BenchmarkConfig):
    from art_seg.estimators import PyTorchSegmenter
    from art_seg.models import UNet3D

    if config.threads is not None:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    model = UNet3D(4, 4, base_filters=config.base_filters, depth=config.depth).to(config.device).eval()
    estimator = PyTorchSegmenter(
        model,
        "ce",
        input_shape=(4, config.size, config.size, config.size),
        nb_classes=4,
        clip_values=(-5.0, 5.0),
        device_type="gpu" if config.device == "cuda" else "cpu",
    )
    generator = torch.Generator().manual_seed(config.seed)
    shape = (config.batch_size, 4, config.size, config.size, config.size)
    x = torch.randn(shape, generator=generator).clamp(-4, 4).to(config.device)
    y = torch.randint(0, 4, (config.batch_size, *shape[2:]), generator=generator).to(config.device)
    return model, estimator, x, y


def bare_loop(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, iterations: int) -> torch.Tensor:
    """The reference: i-FGSM written directly in PyTorch (cross-entropy, sign step, projection, clip)."""
    x_adv = x
    for _ in range(iterations):
        x_adv = x_adv.detach().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(x_adv), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = (x + (x_adv.detach() + EPS_STEP * grad.sign() - x).clamp(-EPS, EPS)).clamp(-5.0, 5.0)
    return x_adv


def _forward_backward(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    x_in = x.detach().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model(x_in), y, reduction="sum")
    torch.autograd.grad(loss, x_in)


def _workloads(config: BenchmarkConfig) -> dict[str, Callable[[], object]]:
    from art.attacks.evasion import BasicIterativeMethod

    from art_seg.attacks import IterativeFGSM

    model, estimator, x, y = _setup(config)
    n = config.iterations
    ours = IterativeFGSM(estimator, eps=EPS, eps_step=EPS_STEP, max_iter=n, batch_size=config.batch_size)
    art = BasicIterativeMethod(
        estimator, eps=EPS, eps_step=EPS_STEP, max_iter=n, batch_size=config.batch_size, verbose=False
    )
    x_np, y_np = x.cpu().numpy(), y.cpu().numpy()
    ten_steps = IterativeFGSM(estimator, eps=EPS, eps_step=EPS_STEP, max_iter=10, batch_size=config.batch_size)
    return {
        "bare PyTorch loop": lambda: bare_loop(model, x, y, n),
        "art_seg IterativeFGSM": lambda: ours.generate(x, y),
        "ART BasicIterativeMethod": lambda: art.generate(x_np, y_np),
        "forward+backward": lambda: _forward_backward(model, x, y),
        "IterativeFGSM, 10 steps": lambda: ten_steps.generate(x, y),
    }


def _synchronise(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_per_iteration(config: BenchmarkConfig) -> dict[str, float]:
    """Median seconds per attack iteration of the bare loop, art_seg's i-FGSM and ART's BIM."""
    workloads = _workloads(config)
    result = {}
    for name in ("bare PyTorch loop", "art_seg IterativeFGSM", "ART BasicIterativeMethod"):
        run = workloads[name]
        run()  # warm-up: allocator, kernels, ART's lazy set-up
        times = []
        for _ in range(config.repeats):
            _synchronise(config.device)
            start = time.perf_counter()
            run()
            _synchronise(config.device)
            times.append((time.perf_counter() - start) / config.iterations)
        result[name] = statistics.median(times)
    return result


def rss_kib(field: str) -> int:
    """A memory figure of this process from Linux's ``/proc/self/status`` in KiB: ``"VmRSS"`` (resident set size
    now) or ``"VmHWM"`` (its peak since the process started or since ``5`` was written to
    ``/proc/self/clear_refs``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def in_fresh_process(function: Callable[..., T], *arguments: Any) -> T:
    """``function(*arguments)`` in a fresh spawned process whose glibc returns freed memory to the system (mmap
    threshold fixed at 64 KiB), so that its peak resident set size follows the memory alive at once.

    ``function`` must be importable by name (defined at the top level of a module). Raises what the worker
    raised, or the pool's error when the worker died (e.g. killed for memory).
    """
    context = multiprocessing.get_context("spawn")
    previous = os.environ.get("MALLOC_MMAP_THRESHOLD_")
    os.environ["MALLOC_MMAP_THRESHOLD_"] = "65536"  # read by glibc when each fresh process starts
    try:
        with context.Pool(1) as pool:
            return pool.apply(function, arguments)
    finally:
        if previous is None:
            del os.environ["MALLOC_MMAP_THRESHOLD_"]
        else:
            os.environ["MALLOC_MMAP_THRESHOLD_"] = previous


def _peak_bytes_in_this_process(config: BenchmarkConfig, name: str) -> int:
    run = _workloads(config)[name]
    if config.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
        run()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - baseline
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak resident set size to the current one
    baseline = rss_kib("VmRSS")
    run()
    return (rss_kib("VmHWM") - baseline) * 1024


def peak_memory(config: BenchmarkConfig) -> dict[str, int]:
    """Peak bytes above the baseline of one forward+backward and of a 10-step IterativeFGSM."""
    names = ("forward+backward", "IterativeFGSM, 10 steps")
    if config.device == "cuda":
        return {name: _peak_bytes_in_this_process(config, name) for name in names}
    return {name: in_fresh_process(_peak_bytes_in_this_process, config, name) for name in names}


def run_attack_benchmark(config: BenchmarkConfig) -> dict[str, object]:
    """Both measurements, and their ratios to the bare loop and to one forward+backward pass."""
    times = time_per_iteration(config)
    memory = peak_memory(config)
    bare = times["bare PyTorch loop"]
    return {
        "config": asdict(config),
        "seconds_per_iteration": times,
        "time_ratio_to_bare_loop": {name: t / bare for name, t in times.items()},
        "peak_bytes": memory,
        "memory_ratio_10_steps_to_forward_backward": memory["IterativeFGSM, 10 steps"] / memory["forward+backward"],
    }


@dataclass(frozen=True)
class LossTimingConfig:
    """What the per-sample loss is timed on: a UNet3D (``spatial_dims`` 2 or 3), 4 input channels, 4 classes.

    Args:
        spatial_dims: 2 (images ``size x size``) or 3 (volumes ``size^3``).
        size: side in pixels / voxels (must divide by ``2**depth``).
        batch_size: samples per batch.
        base_filters, depth: of the UNet3D.
        calls: loss gradients per timing.
        repeats: timing repetitions; the median is reported.
        device, threads, seed: as in :class:`BenchmarkConfig`.
    """

    spatial_dims: int = 2
    size: int = 64
    batch_size: int = 8
    base_filters: int = 8
    depth: int = 3
    calls: int = 3
    repeats: int = 5
    device: str = "cpu"
    threads: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {self.spatial_dims!r}")
        for name in ("size", "batch_size", "base_filters", "calls", "repeats"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if self.size % 2**self.depth:
            raise ValueError(f"size must divide by 2**depth = {2**self.depth}, got {self.size}")


def _cospgd_bare(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The CosPGD authors' loss gradient: forward, cross-entropy per voxel scaled by the (detached) cosine of the
    softmax to the one-hot label, mean, backward."""
    x_in = x.detach().requires_grad_(True)
    logits = model(x_in)
    ce = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    onehot = torch.nn.functional.one_hot(y, logits.shape[1]).movedim(-1, 1).to(logits.dtype)
    cosine = torch.nn.functional.cosine_similarity(logits.softmax(1), onehot, dim=1).detach()
    (grad,) = torch.autograd.grad((cosine * ce).mean(), x_in)
    return grad


def per_sample_loss_time(config: LossTimingConfig) -> dict[str, float]:
    """Median seconds per loss gradient: the bare loop, art_seg's batched per-sample loss, a per-sample loop.

    On the CPU the seconds are the process's CPU time (all its threads), which other processes on a shared
    machine disturb far less than wall-clock time; on CUDA, wall-clock time after synchronising.
    """
    from functools import partial

    from art_seg.attacks.cospgd import cospgd_loss
    from art_seg.estimators import PyTorchSegmenter
    from art_seg.models import UNet3D

    if config.threads is not None:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    dims = config.spatial_dims
    model = UNet3D(4, 4, base_filters=config.base_filters, depth=config.depth, spatial_dims=dims)
    model = model.to(config.device).eval()
    shape = (4, *[config.size] * dims)
    estimator = PyTorchSegmenter(
        model, "ce", input_shape=shape, nb_classes=4, clip_values=(-5.0, 5.0),
        device_type="gpu" if config.device == "cuda" else "cpu",
    )  # fmt: skip
    generator = torch.Generator().manual_seed(config.seed)
    x = torch.randn((config.batch_size, *shape), generator=generator).clamp(-4, 4).to(config.device)
    y = torch.randint(0, 4, (config.batch_size, *shape[1:]), generator=generator).to(config.device)
    batched = partial(cospgd_loss, activation="softmax")  # has a reduction keyword: one call per batch

    def looped(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # no reduction keyword: per sample
        return cospgd_loss(logits, target)

    workloads = {
        "bare PyTorch (CosPGD authors)": lambda: _cospgd_bare(model, x, y),
        "art_seg batched per-sample": lambda: estimator.loss_gradient(x, y, loss=batched),
        "Python loop over samples": lambda: estimator.loss_gradient(x, y, loss=looped),
    }
    times: dict[str, list[float]] = {name: [] for name in workloads}
    for run in workloads.values():
        run()  # warm-up
    clock = time.perf_counter if config.device == "cuda" else time.process_time
    for _ in range(config.repeats):
        for name, run in workloads.items():
            _synchronise(config.device)
            start = clock()
            for _ in range(config.calls):
                run()
            _synchronise(config.device)
            times[name].append((clock() - start) / config.calls)
    return {name: statistics.median(values) for name, values in times.items()}


def format_loss_timing(config: LossTimingConfig, seconds: dict[str, float]) -> str:
    """A plain-text table of :func:`per_sample_loss_time`'s result, with ratios to the bare loop."""
    spatial = " x ".join([str(config.size)] * config.spatial_dims)
    bare = seconds["bare PyTorch (CosPGD authors)"]
    lines = [
        f"{config.spatial_dims}D per-sample loss gradient (CosPGD loss): batch {config.batch_size} x 4 x {spatial}, "
        f"UNet3D(base_filters={config.base_filters}, depth={config.depth}), {config.calls} calls x "
        f"{config.repeats} repeats (median), {'CPU' if config.device == 'cpu' else 'wall-clock'} seconds",
        f"{'loss gradient':<32}{'s / call':>11}{'x bare loop':>13}",
    ]
    lines += [f"{name:<32}{t:>11.4f}{t / bare:>13.3f}" for name, t in seconds.items()]
    return "\n".join(lines)


def format_report(result: dict[str, object]) -> str:
    """A plain-text table of :func:`run_attack_benchmark`'s result."""
    config = result["config"]
    lines = [
        f"volume {config['batch_size']} x 4 x {config['size']}^3, UNet3D(base_filters={config['base_filters']}, "
        f"depth={config['depth']}), device {config['device']}, {config['iterations']} iterations x "
        f"{config['repeats']} repeats (median)",
        "",
        f"{'attack':<28}{'s / iteration':>15}{'x bare loop':>13}",
    ]
    for name, seconds in result["seconds_per_iteration"].items():
        lines.append(f"{name:<28}{seconds:>15.4f}{result['time_ratio_to_bare_loop'][name]:>13.3f}")
    memory = result["peak_bytes"]
    lines += [
        "",
        f"peak memory, one forward+backward: {memory['forward+backward'] / 2**20:10.1f} MiB",
        f"peak memory, 10-step IterativeFGSM: {memory['IterativeFGSM, 10 steps'] / 2**20:9.1f} MiB",
        f"ratio: {result['memory_ratio_10_steps_to_forward_backward']:.3f}",
    ]
    return "\n".join(lines)


__all__ = [
    "BenchmarkConfig",
    "LossTimingConfig",
    "bare_loop",
    "format_loss_timing",
    "format_report",
    "in_fresh_process",
    "peak_memory",
    "per_sample_loss_time",
    "rss_kib",
    "run_attack_benchmark",
    "time_per_iteration",
]
