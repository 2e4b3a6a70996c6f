"""Input normalisation as the first layer of a model.

Keeping ``(x - mean) / std`` inside the model (rather than in a data transform) means a saved
model carries its own preprocessing: conversion, calibration and evaluation all feed raw
``[0, 1]`` images, and a converted SNN sees exactly what the ANN saw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from spikeconv.errors import ConfigError

__all__ = ["InputNormalization"]


class InputNormalization(nn.Module):
    """Per-channel affine normalisation ``y = (x - mean) / std`` for ``[N, C, H, W]`` inputs.

    The forward pass uses plain tensor arithmetic on buffers and no Python control flow, so
    ``torch.fx.symbolic_trace`` traces *through* this module: the traced graph holds a ``sub``
    and a ``div`` node rather than a call to this module, and later graph passes (BN folding,
    conversion) see ordinary arithmetic.

    Args:
        mean: Per-channel means; length 1 (shared by every channel) or C.
        std: Per-channel standard deviations, all > 0; length 1 or C.
        num_channels: C. When given, length-1 values are repeated to C and other lengths are
            rejected; when omitted, C is the longer of the two lengths.

    Shape:
        Input ``[N, C, H, W]``; output the same shape. Buffers ``mean`` and ``std`` have shape
        ``[1, C, 1, 1]``.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        num_channels: int | None = None,
    ) -> None:
        super().__init__()
        mean_values = _as_floats(mean, "mean")
        std_values = _as_floats(std, "std")
        channels = num_channels or max(len(mean_values), len(std_values))
        mean_values = _broadcast(mean_values, channels, "mean")
        std_values = _broadcast(std_values, channels, "std")
        if any(value <= 0.0 for value in std_values):
            raise ConfigError(f"normalisation std must be > 0 for every channel, got {std_values}")
        self.register_buffer("mean", torch.tensor(mean_values).view(1, channels, 1, 1))
        self.register_buffer("std", torch.tensor(std_values).view(1, channels, 1, 1))

    @property
    def mean_values(self) -> tuple[float, ...]:
        """The per-channel means as Python floats (for checkpoint metadata)."""
        return tuple(float(v) for v in self.mean.flatten().tolist())

    @property
    def std_values(self) -> tuple[float, ...]:
        """The per-channel standard deviations as Python floats (for checkpoint metadata)."""
        return tuple(float(v) for v in self.std.flatten().tolist())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` channel-wise."""
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        """Show the values in ``print(model)``."""
        mean = ", ".join(f"{v:.4g}" for v in self.mean_values)
        std = ", ".join(f"{v:.4g}" for v in self.std_values)
        return f"mean=({mean}), std=({std})"


def _as_floats(values: Sequence[float] | float, name: str) -> tuple[float, ...]:
    """Validate a non-empty sequence (or single number) of finite floats."""
    if isinstance(values, int | float):
        values = (values,)
    if isinstance(values, str | bytes) or not isinstance(values, Sequence | torch.Tensor):
        raise ConfigError(f"normalisation {name} must be a sequence of numbers, got {values!r}")
    try:
        floats = tuple(float(v) for v in values)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"normalisation {name} must hold numbers, got {values!r}") from error
    if not floats:
        raise ConfigError(f"normalisation {name} is empty; give one value or one per channel")
    if not all(math.isfinite(v) for v in floats):
        raise ConfigError(f"normalisation {name} must be finite, got {floats}")
    return floats


def _broadcast(values: tuple[float, ...], channels: int, name: str) -> tuple[float, ...]:
    """Repeat a single value to ``channels`` values, or check the length is ``channels``."""
    if len(values) == channels:
        return values
    if len(values) == 1:
        return values * channels
    raise ConfigError(
        f"normalisation {name} has {len(values)} values but the input has {channels} channels; "
        "give one value or one per channel"
    )
