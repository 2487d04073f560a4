"""Small helpers for running art_seg under ``torch.distributed`` (one process per CPU group or GPU).

art_seg's trainers (:class:`~art_seg.defences.SegmentationTrainer` and its subclasses) train with
``DistributedDataParallel`` and :class:`~art_seg.evaluation.RobustnessEvaluator` shards its subjects over the
processes whenever a process group of more than one process is initialised; otherwise every helper here is a
no-op (rank 0 of a world of 1), so the same script runs alone or under ``torchrun``.

Launching (the script calls :func:`init_from_env` before it builds any segmenter):

- one machine, ``N`` processes (``N`` GPUs, or CPU process groups with the gloo backend)::

      torchrun --nproc_per_node N script.py ARGS

- ``M`` machines, run on each machine ``i = 0 .. M-1`` (``host:port`` reachable from all of them, e.g. machine 0)::

      torchrun --nnodes M --node_rank i --nproc_per_node N --rdzv_backend c10d --rdzv_endpoint host:port \\
          script.py ARGS

  Checkpoint and result folders must then be on a file system every machine sees.

On CPU set ``OMP_NUM_THREADS`` so that processes times threads does not exceed the cores (torchrun sets 1 when
unset).

Example:
    >>> from art_seg import distributed
    >>> distributed.init_from_env()  # outside torchrun: nothing to do
    False
    >>> distributed.rank(), distributed.world_size(), distributed.is_distributed()
    (0, 1, False)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist

from art_seg._checks import check_number, check_type

__all__ = [
    "all_sum",
    "barrier",
    "broadcast_object",
    "init_from_env",
    "is_distributed",
    "rank",
    "shard_bounds",
    "shutdown",
    "world_size",
]


def is_distributed() -> bool:
    """Whether a ``torch.distributed`` process group is initialised (of any size)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank in the default process group; 0 when none is initialised."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """The number of processes in the default process group; 1 when none is initialised."""
    return dist.get_world_size() if is_distributed() else 1


def init_from_env(backend: str | None = None) -> bool:
    """Initialise the default process group from torchrun's environment variables, if they ask for one.

    Reads ``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR``, ``MASTER_PORT`` (and ``LOCAL_RANK`` for the GPU), as set by
    ``torchrun``. Does nothing when ``WORLD_SIZE`` is absent or 1, or a group is already initialised. With the
    nccl backend, the process's GPU is set to ``cuda:LOCAL_RANK`` first, so that segmenters built afterwards
    (``device_type="gpu"``) use it.

    Args:
        backend: ``"nccl"``, ``"gloo"``, ...; default ``"nccl"`` when CUDA is available, else ``"gloo"``.

    Returns:
        Whether this call initialised a process group.

    Raises:
        ValueError: ``WORLD_SIZE`` is not an integer >= 1, or ``backend`` is not available in this torch build.
        RuntimeError: torch was built without ``torch.distributed``.
    """
    if backend is not None:
        check_type("backend", backend, str)
    text = os.environ.get("WORLD_SIZE")
    if text is None:
        return False
    try:
        size = int(text)
    except ValueError:
        raise ValueError(f"WORLD_SIZE must be an integer >= 1, got {text!r}") from None
    check_number("WORLD_SIZE", size, low=1, integer=True)
    if size == 1 or is_distributed():
        return False
    if not dist.is_available():
        raise RuntimeError(f"WORLD_SIZE={size} asks for {size} processes, but this torch has no torch.distributed")
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if not _backend_available(backend):
        raise ValueError(f"backend must be one available in this torch build (gloo, nccl, ...), got {backend!r}")
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, init_method="env://")
    return True


def shutdown() -> None:
    """Destroy the default process group (after a final barrier); a no-op when none is initialised."""
    if is_distributed():
        dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every process gets here; a no-op when no group is initialised."""
    if is_distributed():
        dist.barrier()


def broadcast_object(value: Any, src: int = 0) -> Any:
    """``value`` of rank ``src`` on every rank (any picklable object); ``value`` itself when not distributed."""
    if not is_distributed():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=src, device=_collective_device())
    return box[0]


def all_sum(values: Sequence[float]) -> list[float]:
    """Element-wise sum over all ranks of ``values`` (the same length on every rank), in float64.

    Returns ``values`` as floats when not distributed.
    """
    if not is_distributed():
        return [float(v) for v in values]
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def shard_bounds(size: int, parts: int, index: int) -> tuple[int, int]:
    """``(start, stop)`` of part ``index`` when ``size`` items are cut into ``parts`` contiguous parts.

    Parts differ in length by at most one, the longer ones first (as ``numpy.array_split``); with
    ``size < parts`` the last parts are empty.

    Example:
        >>> [shard_bounds(5, 3, r) for r in range(3)]
        [(0, 2), (2, 4), (4, 5)]
        >>> [shard_bounds(1, 2, r) for r in range(2)]
        [(0, 1), (1, 1)]
    """
    check_number("size", size, low=0, integer=True)
    check_number("parts", parts, low=1, integer=True)
    check_number("index", index, low=0, high=parts - 1, integer=True)
    base, extra = divmod(size, parts)
    start = index * base + min(index, extra)
    return start, start + base + (index < extra)


def _backend_available(backend: str) -> bool:
    if hasattr(dist, "is_backend_available"):  # recent torch; else the three built-in backends
        return dist.is_backend_available(backend)
    known = {"gloo": dist.is_gloo_available, "nccl": dist.is_nccl_available, "mpi": dist.is_mpi_available}
    return backend in known and known[backend]()


def _collective_device() -> torch.device:
    """Where collective tensors must live: the current GPU for nccl, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
