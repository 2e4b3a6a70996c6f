"""Batches and fixed subsets of a data set, reproducible from a seed."""

from __future__ import annotations

import logging

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from spikeconv.errors import ConfigError, DataError

logger = logging.getLogger("spikeconv")


def _positive(value: int, option: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{option} must be a positive integer, not {value!r}")


def make_loader(dataset: Dataset, *, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """Return a single-process DataLoader; with ``shuffle`` its order depends only on ``seed``.

    The generator is the loader's own, so the order does not depend on (or change) torch's global
    random state: the same seed gives the same batches in every run.

    Raises:
        ConfigError: ``batch_size <= 0``.
    """
    _positive(batch_size, "batch_size")
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, num_workers=0, generator=generator
    )


def calibration_indices(size: int, *, num_samples: int, seed: int = 0) -> torch.Tensor:
    """The sorted indices :func:`calibration_subset` draws (so other splits can avoid them)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(size, generator=generator)[: min(num_samples, size)].sort().values


def calibration_subset(dataset: Dataset, *, num_samples: int, seed: int = 0) -> Dataset:
    """Return ``num_samples`` samples drawn without replacement from ``dataset`` with ``seed``.

    Calibration must see the same images in every run (thresholds depend on them) and must use
    training data only, so pass a training split. Indices are sorted so that files are read in
    order. When ``num_samples`` exceeds the data set, all of it is returned.

    Raises:
        ConfigError: ``num_samples <= 0``.
        DataError: ``dataset`` is empty.
    """
    _positive(num_samples, "num_samples")
    size = len(dataset)
    if size == 0:
        raise DataError("calibration data set is empty")
    if num_samples > size:
        logger.info("calibration: asked for %d samples, using all %d", num_samples, size)
    indices = calibration_indices(size, num_samples=num_samples, seed=seed)
    subset = getattr(dataset, "subset", None)
    if callable(subset):
        return subset(indices)
    return Subset(dataset, indices.tolist())
