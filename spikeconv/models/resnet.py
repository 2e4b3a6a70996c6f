"""CIFAR-style residual networks: ResNet20 (He et al. 2016) and ResNet19 (Zheng et al. 2021).

Both are a 3x3 stem convolution followed by three stages of BasicBlocks, global average pooling
and a classifier:

- **ResNet20** (He, Zhang, Ren & Sun, CVPR 2016, §4.2): stem 16, stages of 3 blocks with 16, 32,
  64 channels, classifier ``64 -> num_classes``; 0.27 M parameters. Where a stage halves the
  resolution the shortcut is a 1x1 convolution + BN ("option B"), not the paper's zero padding
  (option A), so that every shortcut is an ordinary layer the converter can handle.
- **ResNet19** (Zheng, Wu, Deng, Hu & Li, AAAI 2021, tdBN; used by TET and InfLoR, the InfLoR
  seed paper): stem 128, stages of 3, 3, 2 blocks with 128, 256, 512 channels, then
  ``512 -> 256 -> num_classes`` fully connected; about 12.7 M parameters.

Every activation is its own ``nn.ReLU`` (a block has ``relu1`` inside the branch and ``relu2``
after the residual add), so each call site converts to its own neuron. Top-level children are in
forward order.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import Tensor, nn

from spikeconv.errors import ConfigError
from spikeconv.models.initialization import kaiming_init_
from spikeconv.models.preprocess import InputNormalization
from spikeconv.models.registry import channels_preset, register_model

__all__ = ["BasicBlock", "CifarResNet", "resnet19", "resnet20"]


def _norm(channels: int, batch_norm: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if batch_norm else nn.Identity()


class BasicBlock(nn.Module):
    """``relu2(bn2(conv2(relu1(bn1(conv1(x))))) + shortcut(x))``, two 3x3 convolutions.

    The shortcut is the identity when shapes match, else a strided 1x1 convolution + BN.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, batch_norm: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=not batch_norm)
        self.bn1 = _norm(out_channels, batch_norm)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=not batch_norm)
        self.bn2 = _norm(out_channels, batch_norm)
        if stride != 1 or in_channels != out_channels:
            projection = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=not batch_norm)
            self.shortcut: nn.Module = nn.Sequential(projection, _norm(out_channels, batch_norm))
        else:
            self.shortcut = nn.Identity()
        self.relu2 = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """Stem conv, three stages of BasicBlocks, global average pooling, optional hidden FC, classifier.

    Args:
        stage_channels: Channels of each stage (the first stage keeps the resolution, the others
            halve it).
        stage_blocks: Number of BasicBlocks per stage.
        stem_channels: Output channels of the 3x3 stem convolution.
        hidden_features: Width of a hidden fully connected layer before the classifier (None: none).
        num_classes: Classifier width.
        in_channels: Input image channels.
        batch_norm: BatchNorm after every convolution.
        dropout: Dropout probability before the classifier (0 = none).
        mean: Per-channel input means (with ``std``: normalisation as the first child).
        std: Per-channel input standard deviations.
    """

    def __init__(
        self,
        *,
        stage_channels: Sequence[int],
        stage_blocks: Sequence[int],
        stem_channels: int,
        hidden_features: int | None,
        num_classes: int,
        in_channels: int,
        batch_norm: bool = True,
        dropout: float = 0.0,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        _check_options(num_classes, in_channels, dropout, mean, std)
        self.input_norm = InputNormalization(mean, std, num_channels=in_channels) if mean is not None else nn.Identity()
        self.conv1 = nn.Conv2d(in_channels, stem_channels, 3, padding=1, bias=not batch_norm)
        self.bn1 = _norm(stem_channels, batch_norm)
        self.relu1 = nn.ReLU()
        channels = stem_channels
        for index, (width, blocks) in enumerate(zip(stage_channels, stage_blocks, strict=True), start=1):
            stride = 1 if index == 1 else 2
            stage = [BasicBlock(channels, width, stride, batch_norm=batch_norm)]
            stage += [BasicBlock(width, width, batch_norm=batch_norm) for _ in range(blocks - 1)]
            self.add_module(f"layer{index}", nn.Sequential(*stage))
            channels = width
        self.num_stages = len(stage_channels)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        if hidden_features:
            self.hidden: nn.Module = nn.Sequential(OrderedDict(fc=nn.Linear(channels, hidden_features), relu=nn.ReLU()))
        else:
            self.hidden = nn.Identity()
        self.dropout = nn.Dropout(dropout) if dropout > 0.0 else nn.Identity()
        self.classifier = nn.Linear(hidden_features or channels, num_classes)
        kaiming_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu1(self.bn1(self.conv1(self.input_norm(x))))
        for index in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{index}")(x)
        x = self.hidden(self.flatten(self.avgpool(x)))
        return self.classifier(self.dropout(x))


def _check_options(num_classes, in_channels, dropout, mean, std) -> None:
    for name, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), got {dropout!r}")
    if (mean is None) != (std is None):
        raise ConfigError("give both mean and std for input normalisation, or neither")


def resnet20(
    *,
    num_classes: int = 10,
    in_channels: int = 3,
    batch_norm: bool = True,
    dropout: float = 0.0,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> CifarResNet:
    """He et al.'s CIFAR ResNet20 (3 stages x 3 BasicBlocks, 16/32/64 channels, option-B shortcuts)."""
    return CifarResNet(stage_channels=(16, 32, 64), stage_blocks=(3, 3, 3), stem_channels=16, hidden_features=None,
                       num_classes=num_classes, in_channels=in_channels, batch_norm=batch_norm, dropout=dropout,
                       mean=mean, std=std)  # fmt: skip


def resnet19(
    *,
    num_classes: int = 10,
    in_channels: int = 3,
    batch_norm: bool = True,
    dropout: float = 0.0,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> CifarResNet:
    """The tdBN/TET ResNet19 (stem 128; 3, 3, 2 BasicBlocks of 128/256/512 channels; FC 256)."""
    return CifarResNet(stage_channels=(128, 256, 512), stage_blocks=(3, 3, 2), stem_channels=128, hidden_features=256,
                       num_classes=num_classes, in_channels=in_channels, batch_norm=batch_norm, dropout=dropout,
                       mean=mean, std=std)  # fmt: skip


register_model("resnet20", channels_preset(resnet20))
register_model("resnet19", channels_preset(resnet19))
