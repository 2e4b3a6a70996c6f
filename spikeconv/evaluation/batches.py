"""Feeding labelled data to models under evaluation: batch iteration and eval-mode scoping.

Evaluation accepts either a torch ``Dataset`` (samples) or any iterable of ``(x, y)`` batches (a
``DataLoader``, a list of tensor pairs). Both become the same stream of device-resident,
validated ``(x, y)`` batches here, so the curve and ANN scorers share one definition of "a batch".
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, IterableDataset
from tqdm import tqdm

from spikeconv.errors import ConfigError, DataError
from spikeconv.runtime.distributed import rank, world_size

__all__ = ["check_batch_size", "evaluating", "iter_batches", "split_batch"]


def check_batch_size(batch_size: int) -> int:
    """Validate a batch size: an int >= 1."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    return batch_size


class _StridedBatches:
    """Batch ``i`` of the single-process order goes to rank ``i mod W``: every batch is formed exactly as with
    one process (same samples, same size), so per-batch results, and their summed counts, are the same."""

    def __init__(self, batches: Iterable[Any], shard: int, shards: int) -> None:
        self.batches, self.shard, self.shards = batches, shard, shards

    def __len__(self) -> int:
        total = len(self.batches)  # type: ignore[arg-type]
        return max(0, (total - self.shard + self.shards - 1) // self.shards)

    def __iter__(self) -> Iterator[Any]:
        for index, batch in enumerate(self.batches):
            if index % self.shards == self.shard:
                yield batch


def _dataset_shard(data: Dataset, batch_size: int, shard: int, shards: int) -> DataLoader:
    """A map-style Dataset's batches of this rank, reading only their samples."""
    size = len(data)  # type: ignore[arg-type]
    mine = [list(range(first, min(first + batch_size, size))) for first in range(shard * batch_size, size, shards * batch_size)]
    return DataLoader(data, batch_sampler=mine)


def _as_batches(data: Any, batch_size: int, shard: bool = False) -> Iterable[Any]:
    """Wrap a torch Dataset (map-style or iterable) in a sequential DataLoader; keep the rest.

    A plain list is treated as a list of *batches*, not samples: it has ``__getitem__`` too, so
    only an actual ``torch.utils.data.Dataset`` is taken to yield single samples. With ``shard``
    under torchrun, only this rank's batches are kept (see :class:`_StridedBatches`).
    """
    shards = world_size() if shard else 1
    if isinstance(data, Dataset) and not isinstance(data, IterableDataset) and shards > 1:
        return _dataset_shard(data, batch_size, rank(), shards)
    if isinstance(data, Dataset):
        loader = DataLoader(data, batch_size=batch_size, shuffle=False)
        return _StridedBatches(loader, rank(), shards) if shards > 1 else loader
    if not isinstance(data, Iterable):
        raise DataError(
            f"data must be a torch Dataset or an iterable of (x, y) batches, "
            f"got {type(data).__name__}"
        )
    return _StridedBatches(data, rank(), shards) if shards > 1 else data


def split_batch(batch: Any, device: torch.device) -> tuple[Tensor, Tensor]:
    """Check one ``(x, y)`` batch, move it to ``device`` and return it with labels as ``[N]`` int64.

    Raises:
        DataError: The batch is not an ``(x, y)`` pair, the labels are not one integer class per
            sample, or ``x`` and ``y`` disagree on the number of samples.
    """
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise DataError(
            "each batch must be an (x, y) pair of inputs and integer class labels, "
            f"got {type(batch).__name__}"
        )
    x, y = batch
    if not isinstance(x, Tensor):
        raise DataError(f"batch inputs must be a tensor [N, ...], got {type(x).__name__}")
    y = torch.as_tensor(y)
    if y.dim() != 1 or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise DataError(
            f"labels must be integer class indices of shape [N], got dtype {y.dtype} and shape "
            f"{tuple(y.shape)}; convert one-hot labels with argmax(-1)"
        )
    if x.dim() < 1 or x.shape[0] != y.shape[0]:
        raise DataError(
            f"batch inputs {tuple(x.shape)} and labels {tuple(y.shape)} disagree on the number "
            "of samples N"
        )
    return x.to(device), y.to(device=device, dtype=torch.int64)


def iter_batches(
    data: Any, *, batch_size: int, device: torch.device, progress: bool, desc: str, shard: bool = False
) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield validated, non-empty ``(x, y)`` batches on ``device``, with a tqdm bar on stderr.

    Empty batches are skipped: a spiking network cannot simulate zero samples, and they add
    nothing to any count. ``shard`` keeps this rank's share under torchrun (every batch otherwise).
    """
    batches = _as_batches(data, check_batch_size(batch_size), shard)
    sized = getattr(batches, "batches", batches)  # a rank's share is as sized as what it is taken from
    total = len(batches) if hasattr(batches, "__len__") and hasattr(sized, "__len__") else None
    bar = tqdm(batches, total=total, desc=desc, unit="batch", file=sys.stderr, disable=not progress)
    with contextlib.closing(bar):
        for batch in bar:
            x, y = split_batch(batch, device)
            if y.shape[0] > 0:
                yield x, y


@contextlib.contextmanager
def evaluating(*modules: nn.Module | None) -> Iterator[None]:
    """Put the given modules in eval mode for the block; restore every submodule's flag after.

    Flags are saved per submodule, not per model, because ``model.train(flag)`` would overwrite
    a deliberately mixed state (e.g. a frozen BatchNorm inside a training model).
    ``None`` entries are ignored so that an optional ANN can be passed directly.
    """
    saved = [(sub, sub.training) for m in modules if m is not None for sub in m.modules()]
    try:
        for module in modules:
            if module is not None:
                module.eval()
        yield
    finally:
        for sub, flag in saved:
            sub.training = flag
