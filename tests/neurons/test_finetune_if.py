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
from spikeconv.neurons import IFNeuron, Kernel, Reset, SinCorrection
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


@pytest.mark.parametrize("config", [ConvertConfig(max_spikes=2), ConvertConfig(sin_correction=SinCorrection.ISI)],
                         ids=["burst", "isi"])  # fmt: skip
def test_neurons_that_cannot_be_fine_tuned_are_named(config):
    snn = _snn(config, correction=None)
    with pytest.raises(ConfigError, match="cannot be fine-tuned") as raised:
        make_trainable_(snn.body)
    assert "\n" not in str(raised.value)
    with pytest.raises(ConfigError, match="one spike per step, no SIN correction or the signed one"):
        TrainableIF(next(n for _, n in snn.neurons()))


def _signed_neuron(v_init: float, kernel: Kernel, corrected: bool) -> IFNeuron:
    """A signed IF neuron with per-channel θ on [N, 3, 4, 4] inputs, with or without a bias and initial charge."""
    g = torch.Generator().manual_seed(3)
    neuron = IFNeuron(torch.rand(3, generator=g) + 0.5, v_init=v_init, kernel=kernel, sin_correction=SinCorrection.SIGNED)
    if corrected:
        neuron.set_corrections(bias=0.2 * torch.randn(3, 1, 1, generator=g), v_offset=0.3 * torch.randn(3, 4, 4, generator=g))
    return neuron


@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
@pytest.mark.parametrize("corrected", [False, True], ids=["plain", "corrected"])
@pytest.mark.parametrize("v_init", [0.5, 0.0])
@pytest.mark.parametrize("kernel", [Kernel.INPLACE, Kernel.REFERENCE])
def test_signed_twin_has_the_exact_forward_across_chunks(static, corrected, v_init, kernel):
    neuron = _signed_neuron(v_init, kernel, corrected)
    twin = TrainableIF(neuron)
    g = torch.Generator().manual_seed(4)
    steps, n = 7, 5
    shape = (n, 3, 4, 4) if static else (steps * n, 3, 4, 4)
    chunks = [torch.randn(shape, generator=g) * 1.5 for _ in range(2)]  # large cancelling inputs: many retractions
    with torch.no_grad():
        reference = [neuron(x, steps, static=static) for x in chunks]  # the membrane and count carry over the chunks
        trained = [twin(x, steps, static=static) for x in chunks]
    assert all(torch.equal(a, b) for a, b in zip(trained, reference, strict=True))
    assert (torch.cat(reference) < 0).any() and (torch.cat(reference) > 0).any()  # negative spikes were exercised
    twin.reset_state(), neuron.reset_state()
    with torch.no_grad():
        assert torch.equal(twin(chunks[0], steps, static=static), neuron(chunks[0], steps, static=static))


def test_signed_twin_retracts_only_below_low_and_with_spikes_outstanding():
    """``H = low`` does not retract (strict, as the IF neuron); a retraction needs a net positive count."""
    neuron = IFNeuron(1.0, sin_correction=SinCorrection.SIGNED)  # low = 0, V[0] = 0.5
    twin = TrainableIF(neuron)
    x = torch.tensor([0.5, 0.0, -0.25, -1.0]).reshape(4, 1)  # H = 1 (spike), 0 (= low), -0.25 (retract), -0.25 (count 0)
    with torch.no_grad():
        expected = neuron(x, 4)
        assert torch.equal(twin(x, 4), expected)
    assert expected.flatten().tolist() == [1.0, 0.0, -1.0, 0.0]


@pytest.mark.parametrize("first, second, slope", [(0.5, -0.3, 1.0), (0.2, -1.0, 0.0)], ids=["spike-outstanding", "none"])
def test_signed_gradient_flows_through_the_negative_spike_when_gated_open(first, second, slope):
    """Step 2 has ``H = −0.3``: the positive spike's window ``|(H − θ)/θ| ≤ ½`` is far, the retraction's ``(low − H)/θ
    = 0.3`` is inside its own; so ∂out/∂x is the retraction's slope (1) with a spike outstanding, else 0."""
    twin = TrainableIF(IFNeuron(1.0, sin_correction=SinCorrection.SIGNED))
    x = torch.tensor([[first], [second]], requires_grad=True)
    out = twin(x, 2)
    out[1].sum().backward()
    assert out[1].item() == -slope and x.grad[1].item() == slope


def test_signed_gradients_reach_thresholds_corrections_and_weights():
    snn = _snn(ConvertConfig(sin_correction=SinCorrection.SIGNED), correction=Correction.POTENTIAL)
    make_trainable_(snn.body)
    for parameter in snn.parameters():
        parameter.requires_grad_(True)
    snn(torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(5)) - 0.3, 4).pow(2).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in snn.parameters())
    neuron = next(n for _, n in snn.neurons())
    assert neuron.threshold.grad.abs().sum() > 0 and neuron.v_offset.grad is not None
    conv = snn.body.get_submodule(next(n for n, m in snn.body.named_modules() if isinstance(m, nn.Conv2d)))
    assert conv.weight.grad.abs().sum() > 0


def test_signed_round_trip_keeps_the_correction_and_the_outputs():
    snn = _snn(ConvertConfig(sin_correction=SinCorrection.SIGNED), correction=Correction.POTENTIAL)
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(2)) - 0.2
    with torch.no_grad():
        reference = snn(x, 5)
    twin = copy.deepcopy(snn)
    make_trainable_(twin.body)
    assert all(n.sin_correction is SinCorrection.SIGNED for _, n in twin.neurons())
    with torch.no_grad():
        assert torch.equal(twin(x, 5), reference)
    make_inference_(twin.body)
    assert all(type(n) is IFNeuron and n.sin_correction is SinCorrection.SIGNED for _, n in twin.neurons())
    with torch.no_grad():
        assert torch.equal(twin(x, 5), reference)
