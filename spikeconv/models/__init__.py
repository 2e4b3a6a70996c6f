"""Reference ReLU architectures by name or by the papers' layer notation."""

from spikeconv.models.builders import build_from_notation
from spikeconv.models.notation import (
    NOTATION_GRAMMAR,
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
from spikeconv.models.presets import DIGITS_CNN, FMNIST_CNN, MLP
from spikeconv.models.registry import (
    ModelBuilder,
    available_models,
    build_model,
    describe_model,
    register_model,
)
from spikeconv.models.resnet import BasicBlock, CifarResNet, resnet19, resnet20
from spikeconv.models.vgg import VGG16_LAYERS, vgg16

__all__ = [
    "VGG16_LAYERS",
    "BasicBlock",
    "CifarResNet",
    "DIGITS_CNN",
    "FMNIST_CNN",
    "MLP",
    "NOTATION_GRAMMAR",
    "ConvSpec",
    "DenseSpec",
    "DropoutSpec",
    "GlobalAvgPoolSpec",
    "InputNormalization",
    "LayerSpec",
    "ModelBuilder",
    "PoolKind",
    "PoolSpec",
    "available_models",
    "build_from_notation",
    "build_model",
    "describe_model",
    "parse_notation",
    "register_model",
    "resnet19",
    "resnet20",
    "vgg16",
]
