"""Model presets by name, and one entry point that accepts a preset name or raw notation.

One plain dict maps a name to a keyword-only builder (torchvision ``models/_api.py``). The CLI
offers :func:`available_models` as choices, and :func:`build_model` also accepts layer notation
so that any paper architecture can be typed directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from torch import nn

from spikeconv.errors import ConfigError
from spikeconv.models.builders import build_from_notation
from spikeconv.models.notation import parse_notation

__all__ = [
    "ModelBuilder",
    "available_models",
    "build_model",
    "channels_preset",
    "describe_model",
    "notation_preset",
    "register_model",
]


class ModelBuilder(Protocol):
    """What :func:`register_model` accepts: a builder taking these keyword-only options."""

    def __call__(
        self,
        *,
        input_shape: tuple[int, int, int],
        num_classes: int,
        mean: Sequence[float] | None,
        std: Sequence[float] | None,
        batch_norm: bool,
        dropout: float,
    ) -> nn.Module: ...


_MODELS: dict[str, ModelBuilder] = {}

# Children that describe_model leaves out of its one-line summary.
_QUIET_TYPES = (nn.ReLU, nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout, nn.Flatten)


def register_model(name: str, builder: ModelBuilder) -> ModelBuilder:
    """Register a model builder under ``name``.

    A registered name takes precedence over layer notation in :func:`build_model`.

    Raises:
        ConfigError: ``name`` is empty, contains whitespace, or is already registered.
    """
    if not isinstance(name, str) or not name or name != name.strip() or " " in name:
        raise ConfigError(f"model name must be a non-empty string without spaces, got {name!r}")
    if name in _MODELS:
        raise ConfigError(f"model {name!r} is already registered; choose another name")
    _MODELS[name] = builder
    return builder


def notation_preset(notation: str) -> ModelBuilder:
    """A preset builder for layer notation ``notation`` (the options of :func:`build_from_notation`)."""

    def build(*, input_shape: tuple[int, int, int], num_classes: int, mean: Sequence[float] | None = None,
              std: Sequence[float] | None = None, batch_norm: bool = True, dropout: float = 0.0) -> nn.Module:  # fmt: skip
        return build_from_notation(notation, input_shape=input_shape, num_classes=num_classes, mean=mean, std=std,
                                   batch_norm=batch_norm, dropout=dropout)  # fmt: skip

    build.__doc__ = f"The network ``{notation}`` (options as build_from_notation)."
    return build


def channels_preset(builder, **fixed) -> ModelBuilder:
    """A preset builder for a CIFAR-style constructor taking ``in_channels`` (VGG, ResNet), with ``fixed`` options."""

    def build(*, input_shape: tuple[int, int, int], num_classes: int, mean: Sequence[float] | None = None,
              std: Sequence[float] | None = None, batch_norm: bool = True, dropout: float = 0.0) -> nn.Module:  # fmt: skip
        if len(tuple(input_shape)) != 3:
            raise ConfigError(f"input_shape must be (C, H, W), got {input_shape!r}")
        return builder(num_classes=num_classes, in_channels=int(input_shape[0]), batch_norm=batch_norm, dropout=dropout,
                       mean=mean, std=std, **fixed)  # fmt: skip

    build.__doc__ = f"Registry entry for :func:`{builder.__name__}`{' with ' + str(fixed) if fixed else ''}."
    return build


def available_models() -> list[str]:
    """Sorted names of the registered model presets (for CLI choices)."""
    return sorted(_MODELS)


def build_model(
    name_or_notation: str,
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    batch_norm: bool = True,
    dropout: float = 0.0,
) -> nn.Module:
    """Build a registered preset, or parse ``name_or_notation`` as layer notation.

    Args:
        name_or_notation: A name from :func:`available_models` or notation such as
            ``"32C5-P2-64C5-P2-1024"``.
        input_shape: ``(C, H, W)`` of one input image.
        num_classes: Number of output classes.
        mean: Per-channel input means (with ``std``: normalisation inside the model).
        std: Per-channel input standard deviations.
        batch_norm: BatchNorm after every conv / hidden dense layer.
        dropout: Dropout probability before every dense layer (0 = none).

    Raises:
        ConfigError: Unknown name and invalid notation (the message lists the presets), or
            invalid shapes / options.
    """
    options = dict(
        input_shape=input_shape,
        num_classes=num_classes,
        mean=mean,
        std=std,
        batch_norm=batch_norm,
        dropout=dropout,
    )
    builder = _MODELS.get(name_or_notation)
    if builder is not None:
        return builder(**options)
    try:
        parse_notation(name_or_notation)
    except ConfigError as error:
        raise ConfigError(
            f"{name_or_notation!r} is neither a model preset "
            f"({', '.join(available_models())}) nor valid layer notation: {error}"
        ) from error
    return build_from_notation(name_or_notation, **options)


def describe_model(
    name_or_notation: str, *, input_shape: tuple[int, int, int], num_classes: int
) -> str:
    """One line listing the weight and pooling layers with their output shapes.

    Example: ``fmnist-cnn: 1x28x28 -> conv1 32x24x24 -> pool1 32x12x12 -> ... -> classifier 10
    (3,274,634 parameters)``.
    """
    model = build_model(name_or_notation, input_shape=input_shape, num_classes=num_classes)
    model.eval()
    parts = ["x".join(str(v) for v in input_shape)]
    x = torch.zeros(1, *input_shape)
    with torch.no_grad():
        for name, child in model.named_children():
            x = child(x)
            if not isinstance(child, _QUIET_TYPES) and name != "input_norm":
                parts.append(f"{name} {'x'.join(str(v) for v in x.shape[1:])}")
    count = sum(p.numel() for p in model.parameters())
    return f"{name_or_notation}: {' -> '.join(parts)} ({count:,} parameters)"
