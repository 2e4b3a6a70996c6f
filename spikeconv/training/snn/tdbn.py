"""Threshold-dependent batch normalisation (tdBN; Zheng et al., AAAI 2021, arXiv:2011.05280).

tdBN normalises each channel over the whole spatio-temporal slab ``[T, N, H, W]`` and scales
the result to the firing threshold::

    x̂ = α·V_th·(x − E[x]) / sqrt(Var[x] + ε),      y = λ·x̂ + β     (λ, β learnable)

A spikified network already runs BatchNorm on time-flattened ``[T·N, C, ...]`` tensors, so the
statistics are tdBN's; what remains is the scale, which — as in SpikingJelly's
``ThresholdDependentBatchNorm`` — is the BN weight *initialised* to ``α·V_th`` (equivalent at
initialisation, then learned). α is 1, or 1/√2 for two normalisations summed at a residual
junction (methods.md §2.5, [U]); one α applies to every BN here.
"""

from __future__ import annotations

import torch
from torch import nn

from spikeconv.errors import ConfigError

__all__ = ["apply_tdbn_"]


def apply_tdbn_(network: nn.Module, *, threshold: float, alpha: float = 1.0) -> int:
    """Set every affine BatchNorm's weight to ``alpha·threshold`` and its bias to 0, in place.

    Returns:
        The number of BatchNorm layers changed.

    Raises:
        ConfigError: ``network`` has no affine BatchNorm, so tdBN cannot apply.
    """
    if not threshold > 0 or not alpha > 0:
        raise ConfigError(f"tdBN needs threshold > 0 and alpha > 0, got {threshold!r} and {alpha!r}")
    layers = [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine]
    if not layers:
        raise ConfigError("tdbn was requested but the network has no affine BatchNorm layer; build the model with batch norm or drop tdbn")
    with torch.no_grad():
        for layer in layers:
            layer.weight.fill_(alpha * threshold)
            layer.bias.zero_()
    return len(layers)
