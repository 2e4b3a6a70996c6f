"""Build an ``nn.Sequential`` ANN from layer notation, checking shapes as it goes.

The built networks are what conversion expects from a ReLU network: every activation is its
own ``nn.ReLU()`` instance (never in-place, never shared), batch norm directly follows the layer
it normalises (so it can be folded), and input normalisation is the first child. Children get
readable names (``conv1``, ``bn1``, ``relu1``, ``pool1``, ``fc3``, ``classifier``): a weight
layer and its BN/ReLU share the weight layer's index, and converted neurons are named after
them.

Example (``32C5-P2-64C5-P2-1024`` on a 1x28x28 input, 10 classes)::

    input_norm -> conv1 -> bn1 -> relu1 -> pool1 -> conv2 -> bn2 -> relu2 -> pool2
      -> flatten -> fc3 -> bn3 -> relu3 -> classifier
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from spikeconv.errors import ConfigError
from spikeconv.models.notation import (
    ConvSpec,
    DenseSpec,
    DropoutSpec,
    GlobalAvgPoolSpec,
    LayerSpec,
    PoolKind,
    PoolSpec,
    parse_notation,
)
from spikeconv.models.preprocess import InputNormalization

__all__ = ["build_from_notation"]


def build_from_notation(
    spec: str,
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    batch_norm: bool = True,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    dropout: float = 0.0,
) -> nn.Sequential:
    """Build a ReLU network from layer notation such as ``"32C5-P2-64C5-P2-1024"``.

    Args:
        spec: Layer notation; see :mod:`spikeconv.models.notation` for the grammar.
        input_shape: ``(C, H, W)`` of one input image.
        num_classes: Width of the final classifier layer (no BN, no ReLU after it).
        batch_norm: Put a BatchNorm after every conv / hidden dense layer. Convolutions then
            have no bias, since BN's shift makes it redundant.
        mean: Per-channel input means; with ``std``, adds :class:`InputNormalization` first.
        std: Per-channel input standard deviations (> 0).
        dropout: If > 0, an ``nn.Dropout(dropout)`` before every dense layer, classifier
            included (identity in eval mode).

    Returns:
        The network, freshly initialised, in training mode.

    Raises:
        ConfigError: Bad notation, shapes, normalisation values or options; the message names
            the offending layer or option.
    """
    layers = parse_notation(spec)
    shape = _check_input_shape(input_shape)
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ConfigError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), got {dropout!r}")
    builder = _SequentialBuilder(spec, shape, batch_norm=batch_norm, dropout=dropout)
    if (mean is None) != (std is None):
        raise ConfigError("give both mean and std for input normalisation, or neither")
    if mean is not None and std is not None:
        builder.add("input_norm", InputNormalization(mean, std, num_channels=shape[0]))
    for position, layer in enumerate(layers, start=1):
        builder.add_layer(position, layer)
    builder.add_classifier(num_classes)
    return nn.Sequential(builder.modules)


def _check_input_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    """Validate ``(C, H, W)``."""
    shape = tuple(input_shape) if isinstance(input_shape, Sequence) else ()
    if len(shape) != 3 or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape
    ):
        raise ConfigError(
            f"input_shape must be three positive integers (C, H, W), got {input_shape!r}"
        )
    return shape  # type: ignore[return-value]


class _SequentialBuilder:
    """Accumulates named children while tracking the activation shape (local, per build)."""

    def __init__(
        self, spec: str, shape: tuple[int, ...], *, batch_norm: bool, dropout: float
    ) -> None:
        self.spec = spec
        self.shape = shape  # (C, H, W) before the flatten, (F,) after it
        self.batch_norm = batch_norm
        self.dropout = dropout
        self.modules: OrderedDict[str, nn.Module] = OrderedDict()
        self.weight_index = 0
        self.pool_index = 0
        self.drop_index = 0

    def add(self, name: str, module: nn.Module) -> None:
        """Append one child."""
        self.modules[name] = module

    def add_layer(self, position: int, layer: LayerSpec) -> None:
        """Append the modules for one notation token."""
        if isinstance(layer, ConvSpec):
            self._add_conv(position, layer)
        elif isinstance(layer, PoolSpec):
            self._add_pool(position, layer)
        elif isinstance(layer, GlobalAvgPoolSpec):
            self.add("gap", nn.AdaptiveAvgPool2d(1))
            self.shape = (self.shape[0], 1, 1)
        elif isinstance(layer, DenseSpec):
            self._add_dense(layer.features, final=False)
        elif isinstance(layer, DropoutSpec):
            self._add_dropout(layer.p)
        else:  # pragma: no cover - parse_notation only yields the types above
            raise TypeError(f"unknown layer spec {layer!r}")

    def add_classifier(self, num_classes: int) -> None:
        """Append the final dense layer (no BN, no ReLU)."""
        self._add_dense(num_classes, final=True)

    def _add_conv(self, position: int, conv: ConvSpec) -> None:
        self.weight_index += 1
        index = self.weight_index
        channels, height, width = self.shape
        out_h = (height + 2 * conv.padding - conv.kernel_size) // conv.stride + 1
        out_w = (width + 2 * conv.padding - conv.kernel_size) // conv.stride + 1
        self._check_spatial(position, conv.token, f"conv{index}", (height, width), (out_h, out_w))
        self.add(
            f"conv{index}",
            nn.Conv2d(
                channels,
                conv.out_channels,
                conv.kernel_size,
                stride=conv.stride,
                padding=conv.padding,
                bias=not self.batch_norm,
            ),
        )
        if self.batch_norm:
            self.add(f"bn{index}", nn.BatchNorm2d(conv.out_channels))
        self.add(f"relu{index}", nn.ReLU())
        self.shape = (conv.out_channels, out_h, out_w)

    def _add_pool(self, position: int, pool: PoolSpec) -> None:
        self.pool_index += 1
        name = f"pool{self.pool_index}"
        channels, height, width = self.shape
        out = (height // pool.kernel_size, width // pool.kernel_size)
        self._check_spatial(position, pool.token, name, (height, width), out)
        if pool.kind is PoolKind.AVG:
            self.add(name, nn.AvgPool2d(pool.kernel_size, stride=pool.kernel_size))
        else:
            self.add(name, nn.MaxPool2d(pool.kernel_size, stride=pool.kernel_size))
        self.shape = (channels, *out)

    def _add_dense(self, features: int, *, final: bool) -> None:
        if len(self.shape) == 3:
            self.add("flatten", nn.Flatten())
            self.shape = (math.prod(self.shape),)
        if self.dropout > 0.0:
            self._add_dropout(self.dropout)
        self.weight_index += 1
        index = self.weight_index
        name = "classifier" if final else f"fc{index}"
        self.add(name, nn.Linear(self.shape[0], features, bias=final or not self.batch_norm))
        if not final:
            if self.batch_norm:
                self.add(f"bn{index}", nn.BatchNorm1d(features))
            self.add(f"relu{index}", nn.ReLU())
        self.shape = (features,)

    def _add_dropout(self, p: float) -> None:
        self.drop_index += 1
        self.add(f"drop{self.drop_index}", nn.Dropout(p))

    def _check_spatial(
        self,
        position: int,
        token: str,
        name: str,
        before: tuple[int, int],
        after: tuple[int, int],
    ) -> None:
        if min(after) <= 0:
            raise ConfigError(
                f"layer {position} {token!r} ({name}) of {self.spec!r} shrinks its "
                f"{before[0]}x{before[1]} input to {after[0]}x{after[1]}; use a larger input, "
                "padding (e.g. 64C5p2) or fewer pooling layers"
            )
