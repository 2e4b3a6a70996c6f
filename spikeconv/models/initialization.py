"""Weight initialisation shared by the reference architectures (as torchvision's VGG and ResNet).

Kaiming-normal convolutions (He et al. 2015, fan-out, ReLU gain) and unit BatchNorm keep the
activations of a freshly built deep ReLU network at a stable scale through depth. That matters
beyond training: conversion benchmarks run on random weights, where vanishing or exploding
activations would make every layer's threshold meaningless.
"""

from __future__ import annotations

from torch import nn

__all__ = ["kaiming_init_", "reset_parameters_"]


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


def reset_parameters_(model: nn.Module) -> list[str]:
    """Re-draw every layer's parameters with its own ``reset_parameters`` (PyTorch's default initialisation).

    This is "trained from scratch" for a network the user brought: the graph and its layer types are
    kept, the learned values are not. Returns the names of the layers that were reset.

    Raises:
        ValueError: A layer holds parameters of its own but has no ``reset_parameters``, so training it
            "from scratch" would silently keep its learned values (the message names it).
    """
    reset, stuck = [], []
    for name, module in model.named_modules():
        if not any(True for _ in module.parameters(recurse=False)):
            continue
        if callable(getattr(module, "reset_parameters", None)):
            module.reset_parameters()
            reset.append(name)
        else:
            stuck.append(f"{name or '(root)'} ({type(module).__name__})")
    if stuck:
        raise ValueError(f"cannot re-initialise {', '.join(stuck)}: no reset_parameters(); train from the ANN's weights instead")
    return reset
