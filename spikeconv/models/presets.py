"""Named reference architectures, each a thin keyword-only wrapper around layer notation.

The presets are registered in :mod:`spikeconv.models.registry`; their notation strings are
public so that docs and benchmarks can quote exactly what was built.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from spikeconv.models.builders import build_from_notation

__all__ = ["DIGITS_CNN", "FMNIST_CNN", "MLP", "digits_cnn", "fmnist_cnn", "mlp"]

FMNIST_CNN = "32C5-P2-64C5-P2-1024"
"""Fashion-MNIST CNN of Xu, Liu & Yang (arXiv:2112.07426, Table 5); 91.60 % as an ANN there."""

MLP = "512-256"
"""A small two-hidden-layer perceptron."""

DIGITS_CNN = "16C3p1-P2-32C3p1-P2-64"
"""A small padded CNN for 8x8 scikit-learn digits (8 -> 4 -> 2 pixels, 128 -> 64 features)."""


def fmnist_cnn(
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    batch_norm: bool = True,
    dropout: float = 0.0,
) -> nn.Sequential:
    """The paper's Fashion-MNIST CNN ``32C5-P2-64C5-P2-1024`` (options as build_from_notation)."""
    return build_from_notation(
        FMNIST_CNN,
        input_shape=input_shape,
        num_classes=num_classes,
        mean=mean,
        std=std,
        batch_norm=batch_norm,
        dropout=dropout,
    )


def mlp(
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    batch_norm: bool = True,
    dropout: float = 0.0,
) -> nn.Sequential:
    """A ``512-256`` perceptron on the flattened image (options as build_from_notation)."""
    return build_from_notation(
        MLP,
        input_shape=input_shape,
        num_classes=num_classes,
        mean=mean,
        std=std,
        batch_norm=batch_norm,
        dropout=dropout,
    )


def digits_cnn(
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    batch_norm: bool = True,
    dropout: float = 0.0,
) -> nn.Sequential:
    """The small CNN ``16C3p1-P2-32C3p1-P2-64`` for 8x8 digits (options as build_from_notation)."""
    return build_from_notation(
        DIGITS_CNN,
        input_shape=input_shape,
        num_classes=num_classes,
        mean=mean,
        std=std,
        batch_norm=batch_norm,
        dropout=dropout,
    )
