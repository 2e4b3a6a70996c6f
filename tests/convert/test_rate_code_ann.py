"""rate_code_ann(): the no-simulation ANN equals the simulated SNN wherever neurons get steady input."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from spikeconv.calibration import CalibrationConfig, MaxThreshold, PercentileThreshold, calibrate, prepare
from spikeconv.convert import ConvertConfig, Correction, CorrectionConfig, MaxPoolMode, convert, correct, rate_code_ann
from spikeconv.errors import ConversionError
from spikeconv.ingest import ingest_module
from spikeconv.neurons import SinCorrection


@pytest.fixture(scope="module")
def digits_mlp():
    """A one-hidden-layer MLP trained briefly on scikit-learn digits, with its images."""
    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[:1200]), y[:1200]).backward()
        opt.step()
    return model.eval(), x[:1200], x[1200:]


def _snn_mean(calibrated, config, x, steps):
    with torch.no_grad():
        return convert(calibrated, config)(x, steps).mean(0)


@pytest.mark.parametrize("config", [ConvertConfig(), ConvertConfig(v_init=0.0), ConvertConfig(max_spikes=2)],
                         ids=["half", "zero", "burst"])  # fmt: skip
@pytest.mark.parametrize("steps", [1, 3, 8])
def test_one_hidden_layer_snn_equals_its_rate_code_ann(digits_mlp, config, steps):
    model, train, test = digits_mlp
    calibrated = calibrate(prepare(ingest_module(model), CalibrationConfig(default=PercentileThreshold(99.0))), [train])
    with torch.no_grad():
        expected = rate_code_ann(calibrated, steps, config)(test)
    torch.testing.assert_close(_snn_mean(calibrated, config, test, steps), expected, atol=1e-4, rtol=1e-4)


def test_per_channel_thresholds_and_measured_corrections_are_modelled(digits_mlp):
    model, train, test = digits_mlp
    rule = MaxThreshold(per_channel=True)
    calibrated = calibrate(prepare(ingest_module(model), CalibrationConfig(default=rule)), [train])
    for kind in (Correction.BIAS, Correction.POTENTIAL):
        corrected = correct(calibrated, [train], CorrectionConfig(kind=kind, timesteps=4, max_samples=256))
        with torch.no_grad():
            expected = rate_code_ann(corrected, 4)(test)
            plain = rate_code_ann(calibrated, 4)(test)
        assert not torch.allclose(expected, plain), kind  # the correction changed something
        torch.testing.assert_close(_snn_mean(corrected, ConvertConfig(), test, 4), expected, atol=1e-4, rtol=1e-4)


def test_long_codes_approach_the_ann_and_accuracy_follows(digits_mlp):
    model, train, test = digits_mlp
    calibrated = calibrate(prepare(ingest_module(model), CalibrationConfig(default=MaxThreshold())), [train, test])
    with torch.no_grad():
        ann = model(test)
        errors = [(rate_code_ann(calibrated, t)(test) - ann).abs().max().item() for t in (2, 16, 1024)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.05 * ann.abs().max().item(), errors


def test_signed_neurons_in_a_deep_residual_net_converge_to_the_rate_code_ann():
    """Deep, random, residual: the plain IF neuron's SIN error is absent from the rate-code ANN; the signed neuron removes it."""
    torch.manual_seed(0)

    class ResidualMlp(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = nn.Linear(16, 48)
            self.blocks = nn.ModuleList(nn.Linear(48, 48) for _ in range(5))
            self.out = nn.Linear(48, 5)

        def forward(self, x):
            h = torch.relu(self.inp(x))
            for block in self.blocks:
                h = torch.relu(block(h) * 2.0 + h)
            return self.out(h)

    model = ResidualMlp().eval()
    gen = torch.Generator().manual_seed(1)
    calib, probe = torch.randn(256, 16, generator=gen), torch.randn(64, 16, generator=gen)
    calibrated = calibrate(prepare(ingest_module(model), CalibrationConfig(default=MaxThreshold())), [calib])

    def error(config, steps):
        with torch.no_grad():
            reference = rate_code_ann(calibrated, steps)(probe)
        return ((_snn_mean(calibrated, config, probe, steps) - reference).norm() / reference.norm()).item()

    signed = ConvertConfig(sin_correction=SinCorrection.SIGNED)
    short, long = error(signed, 128), error(signed, 512)
    assert long < 0.01 and long < 0.5 * short, (short, long)  # converges, about as 1/T
    assert long < 0.6 * error(ConvertConfig(), 512)  # the plain IF neuron keeps its SIN error


def test_an_uncalibrated_graph_is_refused():
    graph = ingest_module(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)))
    with pytest.raises(ConversionError, match="calibrate"):
        rate_code_ann(prepare(graph), 8)
    with pytest.raises(Exception, match="timesteps"):
        rate_code_ann(calibrate(prepare(graph), [torch.randn(8, 4)]), 0)


@pytest.mark.parametrize("mode", [MaxPoolMode.SPIKING, MaxPoolMode.AVERAGE])
def test_max_pools_after_spikes_follow_the_conversion_mode(mode):
    """conv -> relu -> max-pool -> linear: steady input, so the SNN equals its ideal code in both modes."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 5)).eval()
    images = torch.rand(64, 1, 8, 8)
    calibrated = calibrate(prepare(ingest_module(model), CalibrationConfig(default=MaxThreshold())), [images])
    config = ConvertConfig(maxpool=mode)
    with torch.no_grad():
        expected = rate_code_ann(calibrated, 6, config)(images)
        other = rate_code_ann(calibrated, 6, ConvertConfig(maxpool=next(m for m in MaxPoolMode if m is not mode)))(images)
    torch.testing.assert_close(_snn_mean(calibrated, config, images, 6), expected, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(expected, other)
