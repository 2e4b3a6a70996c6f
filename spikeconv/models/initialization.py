"""Weight initialisation shared by the reference architectures (as torchvision's VGG and ResNet).

Kaiming-normal convolutions (He et al. 2015, fan-out, ReLU gain) and unit BatchNorm keep the
activations of a freshly built deep ReLU network at a stable scale through depth. That matters
beyond training: conversion benchmarks run on random weights, where vanishing or exploding
activations would make every layer's threshold meaningless.
"""

from __future__ import annotations

from torch import nn

__all__ = ["kaiming_init_"]


def kaiming_init_(model: nn.Module) -> nn.Module:
    """Initialise every conv (Kaiming normal, fan-out) and BatchNorm (γ = 1, β = 0) in place."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model
