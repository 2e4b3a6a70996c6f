"""build_from_notation: layer sequence, parameter shapes, options and shape checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spikeconv.errors import ConfigError
from spikeconv.models import FMNIST_CNN, InputNormalization, build_from_notation

FMNIST_CHILDREN = [
    "conv1", "bn1", "relu1", "pool1",
    "conv2", "bn2", "relu2", "pool2",
    "flatten", "fc3", "bn3", "relu3", "classifier",
]  # fmt: skip


def test_fmnist_cnn_layer_sequence_and_output_shape() -> None:
    torch.manual_seed(0)
    model = build_from_notation(FMNIST_CNN, input_shape=(1, 28, 28), num_classes=10)
    assert isinstance(model, nn.Sequential)
    assert [name for name, _ in model.named_children()] == FMNIST_CHILDREN
    assert isinstance(model.pool1, nn.AvgPool2d) and model.pool1.kernel_size == 2
    assert isinstance(model.bn1, nn.BatchNorm2d) and isinstance(model.bn3, nn.BatchNorm1d)
    assert model(torch.rand(4, 1, 28, 28)).shape == (4, 10)


def test_fmnist_cnn_parameter_shapes() -> None:
    model = build_from_notation(FMNIST_CNN, input_shape=(1, 28, 28), num_classes=10)
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert shapes["conv1.weight"] == (32, 1, 5, 5)
    assert shapes["conv2.weight"] == (64, 32, 5, 5)
    assert shapes["fc3.weight"] == (1024, 1024)  # 64 channels x 4 x 4 after two conv+pool
    assert shapes["classifier.weight"] == (10, 1024)
    assert shapes["classifier.bias"] == (10,)
    # BN makes the conv / hidden dense bias redundant.
    assert "conv1.bias" not in shapes and "fc3.bias" not in shapes
    assert shapes["bn1.weight"] == (32,) and shapes["bn3.weight"] == (1024,)


def test_without_batch_norm_layers_have_bias_and_no_bn() -> None:
    model = build_from_notation(
        FMNIST_CNN, input_shape=(1, 28, 28), num_classes=10, batch_norm=False
    )
    names = [name for name, _ in model.named_children()]
    assert not any(name.startswith("bn") for name in names)
    assert model.conv1.bias is not None and model.fc3.bias is not None
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def test_every_relu_is_its_own_non_inplace_instance() -> None:
    model = build_from_notation("8C3-M2-16C3p1-AP-32-16", input_shape=(3, 12, 12), num_classes=5)
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert len(relus) == 4  # two convs, two hidden dense layers; none after the classifier
    assert len({id(m) for m in relus}) == 4
    assert not any(m.inplace for m in relus)
    assert not isinstance(list(model.children())[-1], nn.ReLU)
    assert model(torch.rand(2, 3, 12, 12)).shape == (2, 5)


def test_stride_padding_max_pool_and_global_pool_shapes() -> None:
    model = build_from_notation("8C3s2p1-M2-AP-20", input_shape=(3, 32, 32), num_classes=4)
    assert model.conv1.stride == (2, 2) and model.conv1.padding == (1, 1)
    assert isinstance(model.pool1, nn.MaxPool2d)
    assert isinstance(model.gap, nn.AdaptiveAvgPool2d)
    assert model.fc2.in_features == 8  # 32 -> 16 (conv) -> 8 (pool) -> 1x1 (global pool)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 4)


def test_normalisation_is_first_child_with_channel_broadcast() -> None:
    model = build_from_notation(
        "8C3-10", input_shape=(3, 8, 8), num_classes=2, mean=[0.5], std=[0.25]
    )
    first_name, first = next(iter(model.named_children()))
    assert first_name == "input_norm" and isinstance(first, InputNormalization)
    assert first.mean.shape == (1, 3, 1, 1)
    assert first.mean_values == (0.5, 0.5, 0.5) and first.std_values == (0.25, 0.25, 0.25)


def test_mean_without_std_rejected() -> None:
    with pytest.raises(ConfigError, match="both mean and std"):
        build_from_notation("10", input_shape=(1, 4, 4), num_classes=2, mean=[0.5])


def test_dropout_option_before_every_dense_layer() -> None:
    model = build_from_notation("8C3-P2-32", input_shape=(1, 8, 8), num_classes=3, dropout=0.3)
    names = [name for name, _ in model.named_children()]
    assert names[names.index("fc2") - 1] == "drop1"
    assert names[names.index("classifier") - 1] == "drop2"
    assert all(m.p == 0.3 for m in model.modules() if isinstance(m, nn.Dropout))
    assert names.index("flatten") < names.index("drop1")


def test_notation_dropout_token_becomes_dropout_module() -> None:
    model = build_from_notation("D0.1-16", input_shape=(1, 4, 4), num_classes=2)
    assert [name for name, _ in model.named_children()][:2] == ["drop1", "flatten"]
    assert model.drop1.p == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("spec", "input_shape", "expected"),
    [
        ("32C5-P2-64C5-P2-64C5", (1, 28, 28), r"layer 5 '64C5' \(conv3\) .* 4x4 input to 0x0"),
        ("8C3-P4", (1, 5, 5), r"layer 2 'P4' \(pool1\) .* 3x3 input to 0x0"),
        ("8C9", (1, 8, 20), r"layer 1 '8C9' \(conv1\) .* 8x20 input to 0x12"),
    ],
)
def test_shrinking_dimension_names_the_layer(
    spec: str, input_shape: tuple[int, int, int], expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        build_from_notation(spec, input_shape=input_shape, num_classes=10)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"input_shape": (28, 28), "num_classes": 10}, "input_shape"),
        ({"input_shape": (1, 0, 28), "num_classes": 10}, "input_shape"),
        ({"input_shape": (1, 28, 28), "num_classes": 0}, "num_classes"),
        ({"input_shape": (1, 28, 28), "num_classes": 10, "dropout": 1.0}, "dropout"),
    ],
)
def test_invalid_options_rejected(options: dict, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        build_from_notation("16", **options)


def test_builds_are_independent_and_seeded() -> None:
    torch.manual_seed(3)
    first = build_from_notation("4C3-8", input_shape=(1, 6, 6), num_classes=2)
    torch.manual_seed(3)
    second = build_from_notation("4C3-8", input_shape=(1, 6, 6), num_classes=2)
    assert first.conv1 is not second.conv1
    assert torch.equal(first.conv1.weight, second.conv1.weight)
