"""TrainableIF: the converted IF neuron's exact forward with surrogate gradients, and the swap back."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from spikeconv.calibration import CalibrationConfig, MaxThreshold, calibrate, prepare
from spikeconv.convert import ConvertConfig, Correction, CorrectionConfig, convert, correct
from spikeconv.errors import ConfigError
from spikeconv.ingest import ingest_module
from spikeconv.neurons import IFNeuron, Reset, SinCorrection
from spikeconv.neurons.finetune_if import TrainableIF, make_inference_, make_trainable_


def _snn(config: ConvertConfig | None = None, correction: Correction | None = Correction.POTENTIAL):
    config = config or ConvertConfig()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(36, 12), nn.ReLU(), nn.Linear(12, 3))
    data = [torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(1))]
    calibrated = calibrate(prepare(ingest_module(model.eval()), CalibrationConfig(default=MaxThreshold(per_channel=True))), data)
    if correction is not None:
        calibrated = correct(calibrated, data, CorrectionConfig(kind=correction, timesteps=3), config)
    return convert(calibrated, config)


@pytest.mark.parametrize("config, correction", [
    (ConvertConfig(), Correction.POTENTIAL),
    (ConvertConfig(), Correction.BIAS),
    (ConvertConfig(reset=Reset.ZERO, v_init=0.0), None),
], ids=["potential", "bias", "hard-reset"])  # fmt: skip
def test_trainable_twin_has_the_exact_forward_and_swaps_back(config, correction):
    snn = _snn(config, correction)
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        reference = snn(x, 5)
    twin = copy.deepcopy(snn)
    assert make_trainable_(twin.body) == [name for name, _ in snn.neurons()]
    assert all(isinstance(n, TrainableIF) for _, n in twin.neurons())
    assert torch.equal(twin(x, 5).detach(), reference)
    make_inference_(twin.body)
    assert all(type(n) is IFNeuron for _, n in twin.neurons())
    with torch.no_grad():
        assert torch.equal(twin(x, 5), reference)


def test_gradients_reach_thresholds_corrections_and_weights():
    snn = _snn(correction=Correction.POTENTIAL)
    make_trainable_(snn.body)
    for parameter in snn.parameters():
        parameter.requires_grad_(True)
    snn(torch.rand(6, 1, 8, 8), 4).sum().backward()
    neuron = next(n for _, n in snn.neurons())
    assert isinstance(neuron.threshold, nn.Parameter) and neuron.threshold.grad is not None and neuron.threshold.grad.abs().sum() > 0
    assert isinstance(neuron.v_offset, nn.Parameter) and neuron.v_offset.grad is not None
    conv = snn.body.get_submodule(next(n for n, m in snn.body.named_modules() if isinstance(m, nn.Conv2d)))
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("config", [ConvertConfig(max_spikes=2), ConvertConfig(sin_correction=SinCorrection.SIGNED)],
                         ids=["burst", "signed"])  # fmt: skip
def test_neurons_that_cannot_be_fine_tuned_are_named(config):
    snn = _snn(config, correction=None)
    with pytest.raises(ConfigError, match="cannot be fine-tuned"):
        make_trainable_(snn.body)
