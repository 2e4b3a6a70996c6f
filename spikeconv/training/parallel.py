"""Data-parallel training under torchrun: one global batch, split over the ranks, gradients averaged by DDP.

Every rank draws the same shuffled order and the same augmentation from the shared seed (so their
generators stay in lockstep and their shares never overlap), augments the whole global batch, and keeps
its contiguous share. DistributedDataParallel then averages the gradients, which equals the gradient
of the global batch's mean loss when the shares are equal; BatchNorm normalises each share with its own
statistics (no SyncBatchNorm), which is where a run on W processes departs from one process.
Without a process group every helper returns its input, so single-process training is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from spikeconv.runtime.device import Precision
from spikeconv.runtime.distributed import all_reduce_sum, distributed, rank, world_size

__all__ = ["GradientScaler", "local_share", "min_trailing_batch", "parallel", "reduced_counts", "sharded_batches"]


def parallel(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel inside a process group of several ranks, else ``model``."""
    if not distributed():
        return model
    ids = [device] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def local_share(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """This rank's contiguous share of a global batch (the whole batch with one process)."""
    if not distributed():
        return tensors
    return tuple(torch.tensor_split(t, world_size())[rank()] for t in tensors)


def reduced_counts(*values: float) -> list[float]:
    """Epoch sums (loss x samples, correct, samples) over all ranks, for a log that describes the global run."""
    if not distributed():
        return list(values)
    return all_reduce_sum(torch.tensor(values, dtype=torch.float64)).tolist()


def min_trailing_batch() -> int:
    """The smallest last batch kept: 2 (BatchNorm needs two samples in training) per rank."""
    return 2 * world_size()


def sharded_batches(data: Dataset | Iterable, batch_size: int) -> Iterator:
    """Batch ``i`` of a sequential pass goes to rank ``i mod W`` (all of them with one process), as the curve shards."""
    batches = DataLoader(data, batch_size=batch_size, shuffle=False) if isinstance(data, Dataset) else data
    shards, mine = world_size(), rank()
    for index, batch in enumerate(batches):
        if index % shards == mine:
            yield batch


class GradientScaler:
    """Loss scaling for float16 training (a pass-through for float32 and bfloat16, which need none)."""

    def __init__(self, precision: Precision, device: torch.device) -> None:
        self.scaler = torch.amp.GradScaler(device.type) if precision is Precision.FP16 else None

    def backward_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        self.backward(loss)
        self.step(optimizer)

    def backward(self, loss: torch.Tensor) -> None:
        """Accumulate ``loss``'s gradients (scaled for float16); several calls before one :meth:`step` add up."""
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Apply the accumulated gradients."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

