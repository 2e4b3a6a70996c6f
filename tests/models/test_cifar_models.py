"""CIFAR reference architectures (VGG16, ResNet19, ResNet20): shapes, sizes, ingest + convert."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from spikeconv.calibration import CalibrationConfig, MaxThreshold, calibrate, prepare
from spikeconv.convert import convert
from spikeconv.errors import ConfigError
from spikeconv.ingest import activation_sites, ingest_module
from spikeconv.models import PoolKind, build_model, describe_model, resnet19, resnet20, vgg16
from spikeconv.neurons import IFNeuron, SpikingMaxPool2d


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("name", "parameters"),
    [
        ("resnet20", 272_474),  # He et al. 0.27 M (269,722) + two 1x1 projection shortcuts with BN
        ("resnet19", 12_697_994),
        ("vgg16", 33_642_442),  # 14.7 M convolutional + 18.9 M in the 512-4096-4096-10 classifier
    ],
)
def test_parameter_counts(name, parameters):
    assert _count(build_model(name, input_shape=(3, 32, 32), num_classes=10)) == parameters


def _stage_shapes(model: nn.Module, x: torch.Tensor, names: list[str]) -> list[tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    handles = [model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: shapes.__setitem__(n, tuple(o.shape[1:])))
               for n in names]  # fmt: skip
    with torch.no_grad():
        out = model.eval()(x)
    for handle in handles:
        handle.remove()
    return [shapes[n] for n in names] + [tuple(out.shape)]


def test_resnet_stage_shapes():
    x = torch.rand(2, 3, 32, 32)
    assert _stage_shapes(resnet20(), x, ["layer1", "layer2", "layer3"]) == [(16, 32, 32), (32, 16, 16), (64, 8, 8), (2, 10)]
    model = resnet19(num_classes=100)
    assert [len(model.get_submodule(f"layer{i}")) for i in (1, 2, 3)] == [3, 3, 2]
    shapes = _stage_shapes(model, x, ["layer1", "layer2", "layer3", "hidden"])
    assert shapes == [(128, 32, 32), (256, 16, 16), (512, 8, 8), (256,), (2, 100)]


def test_vgg16_layers_pools_and_input_sizes():
    model = vgg16(pool=PoolKind.AVG, dropout=0.0)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    assert sum(isinstance(m, nn.AvgPool2d) for m in model.modules()) == 5
    assert not any(isinstance(m, nn.MaxPool2d | nn.Dropout) for m in model.modules())
    assert sum(isinstance(m, nn.MaxPool2d) for m in build_model("vgg16", input_shape=(3, 32, 32), num_classes=10).modules()) == 5
    assert _stage_shapes(vgg16(), torch.rand(2, 3, 32, 32), ["pool5"]) == [(512, 1, 1), (2, 10)]
    assert _stage_shapes(vgg16(in_channels=1), torch.rand(2, 1, 64, 64), ["pool5"]) == [(512, 2, 2), (2, 10)]


def test_builders_validate_options_and_describe_works():
    with pytest.raises(ConfigError, match="pool"):
        vgg16(pool="max")
    with pytest.raises(ConfigError, match="num_classes"):
        resnet20(num_classes=0)
    with pytest.raises(ConfigError, match="both mean and std"):
        resnet19(mean=[0.5])
    text = describe_model("resnet20", input_shape=(3, 32, 32), num_classes=10)
    assert "layer3 64x8x8" in text and "classifier 10" in text and "(272,474 parameters)" in text


def _randomize_bn_(model: nn.Module, seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.running_mean.copy_(0.1 * torch.randn(bn.num_features, generator=gen))
            bn.running_var.copy_(torch.rand(bn.num_features, generator=gen) + 0.5)
            bn.weight.copy_(torch.rand(bn.num_features, generator=gen) + 0.5)
            bn.bias.copy_(0.1 * torch.randn(bn.num_features, generator=gen))
    return model.eval()


def _convert(model: nn.Module, shape: tuple[int, ...]):
    gen = torch.Generator().manual_seed(1)
    calibrated = calibrate(prepare(ingest_module(model), CalibrationConfig(default=MaxThreshold())),
                           [torch.randn(32, *shape, generator=gen)])  # fmt: skip
    return calibrated, convert(calibrated)


def test_resnet20_ingests_and_converts_with_one_neuron_per_relu():
    torch.manual_seed(0)
    model = _randomize_bn_(resnet20())
    calibrated, snn = _convert(model, (3, 16, 16))
    relus = sum(isinstance(m, nn.ReLU) for m in model.modules())
    assert relus == 19 and len(activation_sites(calibrated)) == 19
    neurons = dict(snn.neurons())
    assert len(neurons) == 19 and all(isinstance(n, IFNeuron) for n in neurons.values())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in snn.modules())  # every BN folded
    adds = [n for n in snn.body.graph.nodes if n.op == "call_function" and n.target.__name__ == "add"]
    assert len(adds) == 9  # one residual add per block
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = model(x)
        errors = [((snn(x, t).mean(0) - ref).norm() / ref.norm()).item() for t in (16, 128)]
    assert errors[1] < errors[0] and errors[1] < 0.1, errors


def test_vgg16_ingests_and_converts_with_spiking_max_pools():
    torch.manual_seed(0)
    model = build_model("vgg16", input_shape=(3, 8, 8), num_classes=10).eval()
    _, snn = _convert(model, (3, 8, 8))
    pools = [name for name, m in snn.neurons() if isinstance(m, SpikingMaxPool2d)]
    assert pools == [f"pool{i}" for i in range(1, 6)]
    assert sum(isinstance(m, IFNeuron) for _, m in snn.neurons()) == 15
    with torch.no_grad():
        assert snn(torch.rand(2, 3, 8, 8), 4).shape == (4, 2, 10)


def test_torchvision_resnet18_object_is_accepted():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    _, snn = _convert(model, (3, 32, 32))
    assert snn.metadata["maxpool"]["spiking"] == ["maxpool"]
    assert sum(isinstance(m, IFNeuron) for _, m in snn.neurons()) == 17  # stem + 2 per block x 8
    with torch.no_grad():
        assert snn(torch.rand(1, 3, 32, 32), 2).shape == (2, 1, 10)
