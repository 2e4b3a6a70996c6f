"""Retraction of spikes of inactivated neurons: signed IF and the SpiCalib ISI rule."""

import pytest
import torch

from spikeconv.errors import ConfigError
from spikeconv.neurons import IFNeuron, Reset, SinCorrection, isi_if_step, signed_if_step
from spikeconv.neurons.sin_correction import IsiState


def _signed_run(inputs, threshold=1.0, v_init=0.5):
    th = torch.tensor(threshold)
    low = (2 * v_init - 1) * th
    v = torch.full_like(inputs[0], v_init * threshold)
    count = torch.zeros_like(v)
    outs, counts = [], []
    for x in inputs:
        out, v, count = signed_if_step(x, v, count, th, low)
        outs.append(out)
        counts.append(count)
    return torch.stack(outs), v, torch.stack(counts)


def test_signed_neuron_takes_back_spikes_a_later_negative_input_contradicts():
    inputs = torch.tensor([1.0, 1.0, -1.0, -1.0, -1.0]).reshape(5, 1)
    outs, v, _ = _signed_run(inputs)
    assert outs.flatten().tolist() == [1.0, 1.0, -1.0, -1.0, 0.0]  # net 0 = ReLU(sum of inputs = 1 - 2)
    assert v.item() == pytest.approx(-0.5)


def test_a_plain_if_neuron_keeps_those_spikes():
    neuron = IFNeuron(1.0)
    out = neuron(torch.tensor([1.0, 1.0, -1.0, -1.0, -1.0]).reshape(5, 1), 5)
    assert out.sum().item() == 2.0


def test_signed_neuron_conserves_charge_and_its_count_never_goes_negative():
    gen = torch.Generator().manual_seed(0)
    inputs = (torch.randint(-8, 8, (200, 64), generator=gen).float() / 8) * 0.9
    outs, v, counts = _signed_run(inputs, threshold=1.0)
    torch.testing.assert_close(outs.sum(0) + v, inputs.sum(0) + 0.5)
    assert (counts >= 0).all()
    # with inputs smaller than θ, an active count is the running input rounded to a multiple of θ
    active = counts[-1] > 0
    assert ((v[active] >= 0) & (v[active] < 1.0)).all()


def test_signed_neuron_equals_plain_if_for_non_negative_input():
    x = torch.rand(30, 4, 5, generator=torch.Generator().manual_seed(1))
    plain = IFNeuron(0.3)(x.flatten(0, 1), 30)
    signed = IFNeuron(0.3, sin_correction=SinCorrection.SIGNED)(x.flatten(0, 1), 30)
    torch.testing.assert_close(signed, plain)


@pytest.mark.parametrize("kind", [SinCorrection.SIGNED, SinCorrection.ISI])
def test_sin_corrected_neurons_give_the_same_result_in_time_chunks(kind):
    x = torch.randn(24, 3, 4, generator=torch.Generator().manual_seed(2))
    whole = IFNeuron(0.4, sin_correction=kind)(x.flatten(0, 1), 24)
    neuron = IFNeuron(0.4, sin_correction=kind)
    parts = [neuron(chunk.flatten(0, 1), chunk.shape[0]) for chunk in x.split(7)]
    torch.testing.assert_close(torch.cat(parts), whole)


def test_isi_rule_retracts_one_spike_after_a_silence_longer_than_the_mean_interval():
    th = torch.tensor(1.0)
    v = torch.tensor([0.0])
    state = IsiState.zeros_like(v)
    inputs = [1.0, 1.0, -0.1, -0.1, -0.1, -0.1, -0.1]
    outs = []
    for t, x in enumerate(inputs):
        out, v, state = isi_if_step(torch.tensor([x]), v, state, th, t, allowance=1.0)
        outs.append(out.item())
    # spikes at t=0,1 (mean ISI 1); silent for more than 1 + 1 steps at t=4, again at t=7 (not reached)
    assert outs == [1.0, 1.0, 0.0, 0.0, -1.0, 0.0, 0.0]
    assert state.count.item() == 1.0


def test_sin_correction_needs_soft_reset_and_single_spikes():
    with pytest.raises(ConfigError):
        IFNeuron(1.0, reset=Reset.ZERO, sin_correction=SinCorrection.SIGNED)
    with pytest.raises(ConfigError):
        IFNeuron(1.0, max_spikes=2, sin_correction=SinCorrection.SIGNED)
