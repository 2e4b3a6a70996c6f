"""Spiking max-pool: its rate is the max-pool of the input rates; convert's SPIKING/AVERAGE modes."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spikeconv.calibration import CalibrationConfig, MaxThreshold, calibrate, prepare
from spikeconv.convert import ConvertConfig, MaxPoolMode, convert
from spikeconv.errors import ConfigError, ConversionError
from spikeconv.ingest import ingest_module
from spikeconv.neurons import IFNeuron, SpikingMaxPool2d, SpikingNetwork


def _spike_trains(steps: int, shape: tuple[int, ...], seed: int, amplitude: torch.Tensor) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    rates = torch.rand(shape, generator=gen)
    return (torch.rand((steps, *shape), generator=gen) < rates).float() * amplitude


@pytest.mark.parametrize(
    "pool",
    [
        {"kernel_size": 2},
        {"kernel_size": 3, "stride": 2, "padding": 1},
        {"kernel_size": 3, "stride": 2, "ceil_mode": True},
        {"kernel_size": (2, 3), "stride": 1, "dilation": 2},
    ],
)
def test_cumulative_output_is_the_max_pool_of_the_cumulative_input_at_every_step(pool):
    theta = torch.tensor([0.3, 1.7, 0.05]).reshape(1, 3, 1, 1)
    spikes = _spike_trains(64, (4, 3, 9, 9), seed=0, amplitude=theta)
    out = SpikingMaxPool2d(**pool)(spikes.flatten(0, 1), 64)
    out = out.reshape(64, 4, *out.shape[1:])
    expected = torch.stack([F.max_pool2d(c, **pool) for c in spikes.cumsum(0)])
    torch.testing.assert_close(out.cumsum(0), expected, rtol=1e-5, atol=1e-5)
    assert out.shape[2:] == nn.MaxPool2d(**pool)(spikes[0]).shape[1:]
    # every output is exactly 0 or the channel's spike amplitude θ
    assert torch.all((out == 0) | (out == theta.unsqueeze(0).expand_as(out)))


def test_rate_approaches_max_pool_of_rates_as_t_grows():
    """IF neurons driven by random positive currents feed the pool; error ≤ the IF bound 0.5/T."""
    z = torch.rand(8, 4, 6, 6, generator=torch.Generator().manual_seed(1))
    target = F.max_pool2d(z, 2)
    errors, naive_errors = [], []
    for steps in (8, 32, 128, 512):
        spikes = IFNeuron(1.0)(z, steps, static=True)
        rate = SpikingMaxPool2d(2)(spikes, steps).reshape(steps, *target.shape).mean(0)
        errors.append((rate - target).abs().max().item())
        naive = F.max_pool2d(spikes, 2).reshape(steps, *target.shape).mean(0)
        naive_errors.append((naive - target).abs().max().item())
        assert errors[-1] <= 0.5 / steps + 1e-6
    assert errors[-1] < errors[0]
    assert min(naive_errors) > 0.2  # a per-step max-pool of spikes over-counts: it is an OR


def test_state_carries_across_time_chunks_and_static_input_is_exact():
    spikes = _spike_trains(40, (2, 2, 6, 6), seed=3, amplitude=torch.tensor(0.5))
    whole_pool, chunked_pool = SpikingMaxPool2d(2), SpikingMaxPool2d(2)
    whole = whole_pool(spikes.flatten(0, 1), 40)
    chunked = torch.cat([chunked_pool(part.flatten(0, 1), part.shape[0]) for part in spikes.split(7)])
    torch.testing.assert_close(chunked, whole)
    static = torch.rand(2, 2, 6, 6, generator=torch.Generator().manual_seed(4))
    pool = SpikingMaxPool2d(2)
    torch.testing.assert_close(pool(static, 5, static=True), F.max_pool2d(static, 2).repeat(5, 1, 1, 1))
    pool.reset_state()
    assert pool._cumulative is None and pool._emitted is None


def test_spiking_network_resets_the_pool_between_forwards():
    class Body(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.neuron = IFNeuron(0.5)
            self.pool = SpikingMaxPool2d(2)

        def forward(self, x, num_steps):
            return self.pool(self.neuron(x, num_steps, static=True), num_steps).flatten(1)

    snn = SpikingNetwork(Body(), timesteps=16)
    x = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        first, second = snn(x), snn(x)
    torch.testing.assert_close(first, second)
    assert [name for name, _ in snn.neurons()] == ["neuron", "pool"]


def test_bad_pool_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="kernel_size"):
        SpikingMaxPool2d((2, 2, 2))
    with pytest.raises(ConfigError, match=">= 1"):
        SpikingMaxPool2d(2, stride=0)


class PoolNet(nn.Module):
    """Max-pools on the analog input, after a neuron (module) and after a neuron (F.max_pool2d)."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 2 * 2, 5)

    def forward(self, x):
        x = self.pool(x)
        x = F.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = self.pool(torch.relu(self.conv2(x)))
        return self.fc(x.flatten(1))


def _calibrated_pool_net(seed: int = 0):
    torch.manual_seed(seed)
    model = PoolNet().eval()
    calibrated = calibrate(prepare(ingest_module(model), CalibrationConfig(default=MaxThreshold())), [torch.rand(64, 1, 16, 16)])
    return model, calibrated


def test_net_with_max_pools_converts_to_spiking_pools_and_tracks_the_ann():
    model, calibrated = _calibrated_pool_net()
    snn = convert(calibrated)
    pools = {name: m for name, m in snn.neurons() if isinstance(m, SpikingMaxPool2d)}
    assert sorted(pools) == ["max_pool2d", "pool_1"]  # named after the nodes they replace
    assert snn.metadata["maxpool"] == {"mode": "spiking", "spiking": ["max_pool2d", "pool_1"], "average": [], "analog": ["pool"]}
    assert type(snn.body.get_submodule("pool")) is nn.MaxPool2d  # the analog input's pool stays exact
    x = torch.rand(16, 1, 16, 16, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        ref = model(x)
        errors = [((snn(x, t).mean(0) - ref).norm() / ref.norm()).item() for t in (16, 64, 256)]
    assert errors[2] < errors[1] < errors[0], errors
    assert errors[2] < 0.02, errors


def test_average_mode_replaces_warns_and_records(caplog):
    model, calibrated = _calibrated_pool_net()
    with caplog.at_level(logging.WARNING, logger="spikeconv"):
        snn = convert(calibrated, ConvertConfig(maxpool=MaxPoolMode.AVERAGE))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "max_pool2d, pool_1" in warnings[0].getMessage() and "average" in warnings[0].getMessage()
    assert snn.metadata["maxpool"]["average"] == ["max_pool2d", "pool_1"]
    assert snn.metadata["convert"]["maxpool"] == "average"
    for name in ("max_pool2d", "pool_1"):
        avg = snn.body.get_submodule(name)
        assert type(avg) is nn.AvgPool2d and (avg.kernel_size, avg.stride, avg.padding) == (2, 2, 0)
    assert not any(isinstance(m, SpikingMaxPool2d) for m in snn.modules())
    x = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        out = snn(x, 64).mean(0)
        spiking = convert(calibrated)(x, 64).mean(0)
    assert out.shape == (4, 5) and not torch.allclose(out, spiking, atol=1e-3)


def test_spiking_mode_does_not_warn(caplog):
    _, calibrated = _calibrated_pool_net()
    with caplog.at_level(logging.WARNING, logger="spikeconv"):
        convert(calibrated)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_average_mode_refuses_a_dilated_pool():
    class Dilated(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, padding=1)
            self.fc = nn.Linear(2 * 3 * 3, 2)

        def forward(self, x):
            return self.fc(F.max_pool2d(torch.relu(self.conv(x)), 2, dilation=2).flatten(1))

    calibrated = calibrate(prepare(ingest_module(Dilated().eval())), [torch.rand(8, 1, 8, 8)])
    with pytest.raises(ConversionError, match="max_pool2d.*dilation"):
        convert(calibrated, ConvertConfig(maxpool=MaxPoolMode.AVERAGE))
    assert isinstance(convert(calibrated).body.get_submodule("max_pool2d"), SpikingMaxPool2d)


def test_convert_config_round_trips_the_maxpool_mode():
    config = ConvertConfig(maxpool=MaxPoolMode.AVERAGE, timesteps=16)
    data = config.to_dict()
    assert data["maxpool"] == "average"
    assert ConvertConfig.from_dict(data) == config
    legacy = {k: v for k, v in ConvertConfig().to_dict().items() if k != "maxpool"}
    assert ConvertConfig.from_dict(legacy).maxpool is MaxPoolMode.SPIKING
    assert MaxPoolMode.from_name(" Average ") is MaxPoolMode.AVERAGE
    with pytest.raises(ConfigError, match="choose one of: spiking, average"):
        MaxPoolMode.from_name("min")
    with pytest.raises(ConfigError, match="MaxPoolMode"):
        ConvertConfig(maxpool="average")
