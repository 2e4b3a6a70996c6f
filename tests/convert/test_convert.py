"""convert(): structure of the rewritten graph, and SNN rates approaching the ANN as T grows."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from spikeconv.calibration import CalibrationConfig, MaxThreshold, calibrate, plan_of, prepare
from spikeconv.convert import ConvertConfig, convert
from spikeconv.errors import ConversionError, SpikeconvError
from spikeconv.ingest import activation_sites, ingest_module
from spikeconv.neurons import IFNeuron, PoissonEncoding, Reset


class TwoBranch(nn.Module):
    """Conv net with a shared ReLU module called twice, F.relu and a residual add."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(6 * 4 * 4, 5)

    def forward(self, x):
        a = self.relu(self.bn1(self.conv1(x)))
        b = self.relu(self.conv2(a) + a)
        b = torch.nn.functional.relu(self.pool(b))
        return self.fc(torch.flatten(b, 1))


def _randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=gen) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=gen) + 0.5)
            module.weight.data.copy_(torch.rand(module.num_features, generator=gen) + 0.5)
            module.bias.data.copy_(torch.randn(module.num_features, generator=gen) * 0.1)
    return model.eval()


def _convert(model, data, config=None, calibration=None):
    calibrated = calibrate(prepare(ingest_module(model), calibration or CalibrationConfig(default=MaxThreshold())), data)
    return calibrated, convert(calibrated, config or ConvertConfig())


def _model_and_data(seed: int = 0):
    torch.manual_seed(seed)
    model = _randomize_bn(TwoBranch())
    data = [torch.rand(64, 1, 8, 8) for _ in range(2)]
    return model, data


def test_no_relu_remains_and_there_is_one_neuron_per_call_site():
    model, data = _model_and_data()
    calibrated, snn = _convert(model, data)
    sites = activation_sites(calibrated)
    assert len(sites) == 3  # the shared module counts twice, plus F.relu
    neurons = dict(snn.neurons())
    assert sorted(neurons) == sorted(sites)
    assert all(isinstance(n, IFNeuron) for n in neurons.values())
    graph = snn.body.graph
    assert not any(isinstance(snn.body.get_submodule(n.target), nn.ReLU) for n in graph.nodes if n.op == "call_module")
    assert not any(n.op == "call_function" and n.target in (torch.relu, torch.nn.functional.relu) for n in graph.nodes)
    plan = plan_of(calibrated)
    for site, neuron in neurons.items():
        assert neuron.threshold.tolist() == pytest.approx(list(plan.thresholds[site]))


def test_convert_refuses_an_uncalibrated_graph():
    model, _ = _model_and_data()
    with pytest.raises(SpikeconvError):
        convert(ingest_module(model))
    with pytest.raises(SpikeconvError):
        convert(prepare(ingest_module(model)))


def _rate_error(snn, ann, x, steps):
    with torch.no_grad():
        out = snn(x, steps).mean(0)
        ref = ann(x)
    return ((out - ref).norm() / ref.norm()).item()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rate_output_approaches_the_ann_as_t_grows(seed):
    model, data = _model_and_data(seed)
    _, snn = _convert(model, data)
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(10 + seed))
    errors = [_rate_error(snn, model, x, t) for t in (8, 32, 128, 512)]
    assert errors[-1] < 0.03, errors
    assert errors[-1] < errors[1] < errors[0], errors


def test_hard_reset_is_worse_than_soft_reset_at_long_t():
    model, data = _model_and_data()
    x = torch.rand(32, 1, 8, 8)
    _, soft = _convert(model, data)
    _, hard = _convert(model, data, ConvertConfig(reset=Reset.ZERO))
    assert _rate_error(soft, model, x, 256) < _rate_error(hard, model, x, 256)


def test_poisson_input_converges_too_but_slower_than_direct():
    model, data = _model_and_data()
    x = torch.rand(32, 1, 8, 8)
    _, direct = _convert(model, data)
    _, poisson = _convert(model, data, ConvertConfig(encoding=PoissonEncoding(seed=0)))
    err_poisson = _rate_error(poisson, model, x, 512)
    assert err_poisson < 0.15
    assert _rate_error(direct, model, x, 512) < err_poisson


def test_time_chunks_and_per_channel_thresholds_give_consistent_results():
    model, data = _model_and_data()
    _, snn = _convert(model, data, calibration=CalibrationConfig(default=MaxThreshold(per_channel=True)))
    x = torch.rand(8, 1, 8, 8)
    with torch.no_grad():
        whole = snn(x, 40)
        snn.time_chunk = 7
        chunked = snn(x, 40)
        again = snn(x, 40)
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(again, chunked)  # state is cleared between forwards


def test_the_users_model_is_untouched_by_the_whole_pipeline():
    model, data = _model_and_data()
    model.train()
    for p in model.conv2.parameters():
        p.requires_grad_(False)
    state = copy.deepcopy(model.state_dict())
    _convert(model, data)
    assert model.training and all(m.training for m in model.modules())
    assert not any(p.requires_grad for p in model.conv2.parameters())
    assert model.conv1.weight.requires_grad
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_converted_network_rejects_bad_batches():
    model, data = _model_and_data()
    _, snn = _convert(model, data)
    with pytest.raises(SpikeconvError):
        snn(torch.rand(0, 1, 8, 8), 4)
    with pytest.raises(SpikeconvError):
        snn(torch.rand(2, 1, 8, 8), 0)
    with pytest.raises((ConversionError, RuntimeError)):
        snn(torch.rand(2, 3, 8, 8), 4)
