"""Converting with SIN correction: recorded in the config, and closer to a deep ANN at long T."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spikeconv.calibration import CalibrationConfig, MaxThreshold, calibrate, prepare
from spikeconv.convert import ConvertConfig, NeuronKind, convert
from spikeconv.errors import ConfigError
from spikeconv.ingest import ingest_module
from spikeconv.neurons import IFNeuron, SinCorrection


class ResidualMlp(nn.Module):
    """Random residual MLP: units see large inputs of both signs that cancel, the SIN setting."""

    def __init__(self, width: int = 48, depth: int = 6) -> None:
        super().__init__()
        self.inp = nn.Linear(16, width)
        self.blocks = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.out = nn.Linear(width, 5)

    def forward(self, x):
        h = torch.relu(self.inp(x))
        for block in self.blocks:
            h = torch.relu(block(h) + h)
        return self.out(h)


def _relative_error(model, sin: SinCorrection, steps: int) -> float:
    gen = torch.Generator().manual_seed(1)
    calib, probe = torch.randn(256, 16, generator=gen), torch.randn(64, 16, generator=gen)
    calibrated = calibrate(prepare(ingest_module(model), CalibrationConfig(default=MaxThreshold())), [calib])
    snn = convert(calibrated, ConvertConfig(sin_correction=sin))
    with torch.no_grad():
        ref = model(probe)
        out = snn(probe, steps).mean(0)
    centred = lambda z: z - z.mean(1, keepdim=True)  # noqa: E731
    return ((centred(out) - centred(ref)).norm() / centred(ref).norm()).item()


def test_signed_neurons_track_a_deep_residual_ann_better_than_plain_if():
    torch.manual_seed(0)
    model = ResidualMlp().eval()
    with torch.no_grad():  # larger weights: bigger cancelling inputs per unit
        for block in model.blocks:
            block.weight.mul_(2.0)
    plain = _relative_error(model, SinCorrection.NONE, 128)
    signed = _relative_error(model, SinCorrection.SIGNED, 128)
    assert signed < 0.8 * plain, (plain, signed)


def test_every_neuron_gets_the_configured_correction_and_it_round_trips():
    config = ConvertConfig(sin_correction=SinCorrection.ISI, isi_allowance=2.0)
    assert ConvertConfig.from_dict(config.to_dict()) == config
    model = ResidualMlp(depth=2).eval()
    calibrated = calibrate(prepare(ingest_module(model), CalibrationConfig(default=MaxThreshold())), [torch.randn(32, 16)])
    neurons = [m for m in convert(calibrated, config).modules() if isinstance(m, IFNeuron)]
    assert neurons and all(n.sin_correction is SinCorrection.ISI and n.isi_allowance == 2.0 for n in neurons)


@pytest.mark.parametrize("kwargs", [{"max_spikes": 2}, {"neuron": NeuronKind.BISTABLE}])
def test_sin_correction_is_refused_with_burst_or_bistable_neurons(kwargs):
    with pytest.raises(ConfigError, match="SIN correction"):
        ConvertConfig(sin_correction=SinCorrection.SIGNED, **kwargs)
