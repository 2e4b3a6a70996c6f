"""torchrun support: join the process group, know the rank, combine counts, let rank 0 write.

spikeconv does not start processes itself: ``torchrun --nproc-per-node N -m spikeconv ...`` starts
N copies and sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` and the rendezvous address, which
:func:`process_group` reads. Without them (one plain process) every helper is a no-op, so single-
process code paths stay exactly as they were.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist

from spikeconv.errors import ConfigError

__all__ = [
    "DistributedContext",
    "all_gather_objects",
    "all_reduce_sum",
    "barrier",
    "distributed",
    "is_main_process",
    "launched_by_torchrun",
    "process_group",
    "rank",
    "world_size",
]


def launched_by_torchrun() -> bool:
    """True when the environment names more than one process (torchrun, or any launcher that sets ``WORLD_SIZE``)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if distributed() else 1


def rank() -> int:
    return dist.get_rank() if distributed() else 0


def is_main_process() -> bool:
    """Rank 0 (or the only process): the one that writes files and prints results."""
    return rank() == 0


class DistributedContext:
    """What :func:`process_group` set up: the backend, and whether it must destroy the group on exit."""

    def __init__(self, backend: str | None, owned: bool) -> None:
        self.backend, self.owned = backend, owned


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[DistributedContext]:
    """Join torchrun's process group for the block (nccl for CUDA, gloo for the CPU); a no-op for one process.

    A group already initialised by the caller is used as it is and left alone.

    Raises:
        ConfigError: torchrun's environment asks for several processes but torch has no distributed support.
    """
    if not launched_by_torchrun() or (dist.is_available() and dist.is_initialized()):
        yield DistributedContext(dist.get_backend() if distributed() else None, owned=False)
        return
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 asks for several processes, but this torch has no torch.distributed")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, device_id=device if device.type == "cuda" else None)
    try:
        yield DistributedContext(backend, owned=True)
    finally:
        dist.destroy_process_group()


def _collective_device(tensor: torch.Tensor) -> torch.device:
    """nccl reduces CUDA tensors only; gloo takes CPU tensors."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of ``tensor`` over all ranks, on ``tensor``'s device (itself with one process).

    Used for integer counts (correct predictions per step, samples), whose sums are exact in any order.
    """
    if not distributed():
        return tensor
    where = _collective_device(tensor)
    buffer = tensor.detach().to(where, copy=True)
    dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
    return buffer.to(tensor.device)


def all_gather_objects(value: Any) -> list[Any]:
    """``value`` of every rank, in rank order (``[value]`` with one process); values must pickle."""
    if not distributed():
        return [value]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def barrier() -> None:
    """Wait for every rank (after rank 0 wrote a file the others read); a no-op with one process."""
    if distributed():
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()
