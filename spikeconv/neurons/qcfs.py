"""QCFS: the quantization-clip-floor-shift activation that ANNs are trained with for conversion.

Bu, Fang, Ding, Dai, Yu, Huang, "Optimal ANN-SNN Conversion for High-accuracy and Ultra-low-latency
Spiking Neural Networks", ICLR 2022. It replaces ReLU during ANN training so that the trained
network already computes what a soft-reset IF neuron with threshold λ and initial membrane λ/2
emits over T steps; converting it needs no calibration, and T = L reproduces the ANN exactly for
constant inputs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from spikeconv.errors import ConfigError


class _FloorSTE(torch.autograd.Function):
    """⌊x⌋ forward, identity backward (straight-through estimator)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # noqa: D102
        return torch.floor(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # noqa: D102
        return grad


class QCFS(nn.Module):
    """Clip-floor-shift activation with a learned per-layer clipping level λ.

    Equation::

        h(z) = λ · clip(⌊z·L/λ + φ⌋ / L, 0, 1),      φ = 1/2

    The floor passes gradients straight through; λ (a Parameter) learns from autograd. At
    conversion λ becomes the IF threshold and the initial membrane is λ/2.

    Shapes: any input; output has the same shape.

    Args:
        levels: L, the number of quantization steps (the T at which conversion is exact).
        init_threshold: Initial λ (the QCFS code uses 8.0).
        shift: φ; 0.5 makes the expected conversion error zero for every T.
    """

    spikeconv_activation = "qcfs"  # marks this module as an activation site for ingest

    def __init__(self, levels: int = 4, *, init_threshold: float = 8.0, shift: float = 0.5) -> None:
        super().__init__()
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
            raise ConfigError(f"QCFS levels must be an integer >= 1, got {levels!r}")
        if not init_threshold > 0:
            raise ConfigError(f"QCFS initial threshold must be > 0, got {init_threshold}")
        self.levels = levels
        self.shift = float(shift)
        self.threshold = nn.Parameter(torch.tensor(float(init_threshold)))

    def extra_repr(self) -> str:
        return f"levels={self.levels}, λ={self.threshold.item():.4g}, shift={self.shift:g}"

    def learned_threshold(self) -> float:
        """λ, the threshold its IF neuron gets at conversion (never below a tiny positive value)."""
        return max(float(self.threshold.detach().abs()), 1e-6)

    def forward(self, x: Tensor) -> Tensor:
        lam = self.threshold.abs().clamp_min(1e-6)
        quantized = _FloorSTE.apply(x * self.levels / lam + self.shift) / self.levels
        return torch.clamp(quantized, 0.0, 1.0) * lam
