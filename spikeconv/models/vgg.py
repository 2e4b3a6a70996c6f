"""CIFAR-style VGG16, the conversion papers' VGG (QCFS, Bu et al. ICLR 2022; Rathi & Roy Diet-SNN).

Thirteen 3x3 convolutions (64, 64, M, 128, 128, M, 256 x3, M, 512 x3, M, 512 x3, M), each followed
by BatchNorm and its own ReLU, then global average pooling and the classifier
``512 -> 4096 -> 4096 -> num_classes`` with dropout between (QCFS' ``vgg16`` for CIFAR). On a
32x32 input the five pools leave 1x1, so the global pooling is the identity there; it lets the
same network take 3x64x64 or 1x28x28 inputs.

Pooling is selectable because conversion treats the two differently: average pooling is linear
and converts exactly, max pooling needs a spiking max-pool (see ``spikeconv.convert.maxpool``).
Pools use ``ceil_mode`` so that small inputs (16x16: 8, 4, 2, 1, 1) do not shrink to nothing; on
even sizes it changes nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from spikeconv.errors import ConfigError
from spikeconv.models.initialization import kaiming_init_
from spikeconv.models.notation import PoolKind
from spikeconv.models.preprocess import InputNormalization
from spikeconv.models.registry import channels_preset, register_model

__all__ = ["VGG16_LAYERS", "vgg16"]

VGG16_LAYERS: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
"""Convolution widths and pooling positions ("M") of VGG16 (Simonyan & Zisserman 2015, config D)."""

_HIDDEN = 4096


def _check_options(num_classes: int, in_channels: int, dropout: float, pool: PoolKind) -> None:
    for name, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), got {dropout!r}")
    if not isinstance(pool, PoolKind):
        raise ConfigError(f"pool must be a PoolKind (PoolKind.MAX or PoolKind.AVG), got {pool!r}")


def vgg16(
    *,
    num_classes: int = 10,
    in_channels: int = 3,
    pool: PoolKind = PoolKind.MAX,
    batch_norm: bool = True,
    dropout: float = 0.5,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> nn.Sequential:
    """Build the CIFAR-style VGG16 (about 33.6 M parameters with 10 classes).

    Args:
        num_classes: Width of the classifier.
        in_channels: Input image channels.
        pool: ``PoolKind.MAX`` (2x2 max pooling, the original) or ``PoolKind.AVG``.
        batch_norm: BatchNorm after every convolution (convolutions then have no bias).
        dropout: Dropout probability after each hidden classifier layer (0 = none).
        mean: Per-channel input means; with ``std``, normalisation becomes the first child.
        std: Per-channel input standard deviations.

    Returns:
        An ``nn.Sequential`` with children ``conv1, bn1, relu1, ..., pool5, gap, flatten, fc14,
        relu14, fc15, relu15, classifier`` (and ``input_norm`` / ``drop*`` when asked for).
    """
    _check_options(num_classes, in_channels, dropout, pool)
    if (mean is None) != (std is None):
        raise ConfigError("give both mean and std for input normalisation, or neither")
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    if mean is not None and std is not None:
        layers["input_norm"] = InputNormalization(mean, std, num_channels=in_channels)
    channels, index, pools = in_channels, 0, 0
    for item in VGG16_LAYERS:
        if item == "M":
            pools += 1
            pool_layer = nn.MaxPool2d(2, 2, ceil_mode=True) if pool is PoolKind.MAX else nn.AvgPool2d(2, 2, ceil_mode=True)
            layers[f"pool{pools}"] = pool_layer
            continue
        index += 1
        layers[f"conv{index}"] = nn.Conv2d(channels, int(item), 3, padding=1, bias=not batch_norm)
        if batch_norm:
            layers[f"bn{index}"] = nn.BatchNorm2d(int(item))
        layers[f"relu{index}"] = nn.ReLU()
        channels = int(item)
    layers["gap"] = nn.AdaptiveAvgPool2d(1)
    layers["flatten"] = nn.Flatten()
    features = channels
    for hidden in (index + 1, index + 2):
        layers[f"fc{hidden}"] = nn.Linear(features, _HIDDEN)
        layers[f"relu{hidden}"] = nn.ReLU()
        if dropout > 0.0:
            layers[f"drop{hidden - index}"] = nn.Dropout(dropout)
        features = _HIDDEN
    layers["classifier"] = nn.Linear(features, num_classes)
    model = kaiming_init_(nn.Sequential(layers))
    for module in model.modules():
        if isinstance(module, nn.Linear):  # torchvision's VGG classifier initialisation
            nn.init.normal_(module.weight, 0.0, 0.01)
            nn.init.zeros_(module.bias)
    return model


register_model("vgg16", channels_preset(vgg16, pool=PoolKind.MAX))
register_model("vgg16-avg", channels_preset(vgg16, pool=PoolKind.AVG))  # QCFS' choice of pooling
