"""Synaptic fan-out: how many output units each input unit of a layer connects to.

An input spike at position ``i`` of a conv/linear layer costs one accumulate per output unit it
reaches, so the event-driven cost of a layer is ``Σ_i [s_i ≠ 0]·fanout(i)``, and its dense cost
(every input active, the ANN's MAC count) is ``Σ_i fanout(i)``. The map depends only on the layer
and the input shape, so it is computed once and reused at every step and batch.

For a conv the map is the gradient of ``Σ conv(x, 1)`` (all-ones kernel, no bias) with respect to
``x``: every output unit contributes 1 to each input in its receptive field. For average pooling
the map counts the windows covering each input (one addition each).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from spikeconv.errors import ConfigError

__all__ = ["OP_MODULES", "POOL_MODULES", "SYNAPTIC_MODULES", "dense_ops", "fanout_map"]

SYNAPTIC_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
"""Layers with weights: a MAC per connection for analog input, an AC per connection and event for spikes."""

POOL_MODULES = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
                nn.AdaptiveAvgPool3d)  # fmt: skip
"""Average pooling: one addition (AC) per input and covering window."""

OP_MODULES = SYNAPTIC_MODULES + POOL_MODULES


def _conv_fanout(module: nn.Module, sample_shape: tuple[int, ...]) -> Tensor:
    with torch.inference_mode(False), torch.enable_grad():
        x = torch.zeros((1, *sample_shape), dtype=torch.float64, requires_grad=True)
        ones = torch.ones(module.weight.shape, dtype=torch.float64)
        # _conv_forward applies the module's own padding mode, padding ("same" included), stride,
        # dilation and groups, so the map follows exactly the connections the layer makes.
        module._conv_forward(x, ones, None).sum().backward()
        return x.grad[0].detach().clone()


def _avg_pool_fanout(module: nn.Module, sample_shape: tuple[int, ...]) -> Tensor:
    dims = {nn.AvgPool1d: 1, nn.AvgPool2d: 2, nn.AvgPool3d: 3}[type(module)]
    spatial = sample_shape[-dims:]
    lead = sample_shape[:-dims]
    kernel, stride, padding = (_tuple(getattr(module, a), dims) for a in ("kernel_size", "stride", "padding"))
    with torch.inference_mode(False), torch.enable_grad():
        x = torch.zeros((1, math.prod(lead) or 1, *spatial), dtype=torch.float64, requires_grad=True)
        if dims == 1:  # avg_pool1d has no divisor_override: pool a [1, L] image instead
            out = F.avg_pool2d(x.unsqueeze(-2), (1, *kernel), (1, *stride), (0, *padding), module.ceil_mode, True, 1)
        else:
            pool = F.avg_pool2d if dims == 2 else F.avg_pool3d
            out = pool(x, kernel, stride, padding, module.ceil_mode, True, 1)  # divisor 1: a sum pool
        out.sum().backward()
        return x.grad[0].detach().reshape(sample_shape).clone()


def _adaptive_cover(length: int, size: int) -> Tensor:
    """How many of the ``size`` adaptive windows over ``length`` inputs cover each input."""
    count = torch.zeros(length, dtype=torch.float64)
    for i in range(size):
        start, end = (i * length) // size, -((-(i + 1) * length) // size)
        count[start:end] += 1
    return count


def _adaptive_fanout(module: nn.Module, sample_shape: tuple[int, ...]) -> Tensor:
    dims = {nn.AdaptiveAvgPool1d: 1, nn.AdaptiveAvgPool2d: 2, nn.AdaptiveAvgPool3d: 3}[type(module)]
    spatial = sample_shape[-dims:]
    sizes = _tuple(module.output_size, dims)
    cover = torch.ones((), dtype=torch.float64)
    for axis, (length, size) in enumerate(zip(spatial, sizes, strict=True)):
        counts = _adaptive_cover(length, length if size is None else size)
        cover = cover.unsqueeze(-1) * counts.reshape(*([1] * axis), length)
    return cover.expand(sample_shape).clone()


def _tuple(value: int | tuple | None, dims: int) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * dims


def fanout_map(module: nn.Module, sample_shape: tuple[int, ...]) -> Tensor:
    """Number of output units each input unit of ``module`` feeds, shaped like one sample's input.

    Args:
        module: A conv (1-3d), linear or average-pooling layer.
        sample_shape: One sample's input shape, without the batch dimension.

    Returns:
        A float64 tensor of shape ``sample_shape`` holding integers.

    Raises:
        ConfigError: ``module`` is not a layer whose operations are counted.
    """
    sample_shape = tuple(int(v) for v in sample_shape)
    if isinstance(module, nn.Linear):
        return torch.full(sample_shape, float(module.out_features), dtype=torch.float64)
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return _conv_fanout(module, sample_shape)
    if isinstance(module, (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)):
        return _avg_pool_fanout(module, sample_shape)
    if isinstance(module, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)):
        return _adaptive_fanout(module, sample_shape)
    raise ConfigError(f"no operation count for {type(module).__name__}; counted layers: "
                      f"{', '.join(t.__name__ for t in OP_MODULES)}")  # fmt: skip


def dense_ops(module: nn.Module, sample_shape: tuple[int, ...]) -> int:
    """Operations of one sample when every input is active: the layer's MACs (or pool additions)."""
    return int(fanout_map(module, sample_shape).sum().item())
