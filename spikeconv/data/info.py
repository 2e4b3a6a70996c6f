"""Static facts about a named data set, known without loading it."""

from __future__ import annotations

import math
from dataclasses import dataclass

from spikeconv.errors import ConfigError


@dataclass(frozen=True)
class DatasetInfo:
    """Name, class count, sample shape and default per-channel normalisation of a data set.

    Models and workflows need these numbers before any data is read (to build the first layer, or
    to fold a normalisation into the network), so each registered data set declares them once.

    Attributes:
        name: Registry name, equal to the ``name`` of the datasets the loader returns.
        num_classes: Number of labels; labels run from 0 to ``num_classes - 1``.
        sample_shape: ``(C, H, W)`` of one sample as returned by the dataset.
        mean: Per-channel mean of the training split, pixels scaled to [0, 1].
        std: Per-channel standard deviation of the training split, pixels scaled to [0, 1].
    """

    name: str
    num_classes: int
    sample_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("DatasetInfo.name must not be empty")
        if self.num_classes < 1:
            raise ConfigError(f"DatasetInfo {self.name}: num_classes must be >= 1")
        if len(self.sample_shape) != 3 or any(s < 1 for s in self.sample_shape):
            raise ConfigError(f"DatasetInfo {self.name}: sample_shape must be 3 positive sizes")
        channels = self.sample_shape[0]
        if len(self.mean) != channels or len(self.std) != channels:
            raise ConfigError(
                f"DatasetInfo {self.name}: mean and std need one value per channel ({channels})"
            )
        if not all(math.isfinite(m) for m in self.mean):
            raise ConfigError(f"DatasetInfo {self.name}: mean must be finite")
        if not all(math.isfinite(s) and s > 0 for s in self.std):
            raise ConfigError(f"DatasetInfo {self.name}: std must be finite and > 0")
