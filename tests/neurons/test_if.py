"""Integrate-and-fire dynamics, kernels and SpikingNetwork state handling."""

import pytest
import torch
from torch import nn

from spikeconv.errors import ConfigError
from spikeconv.neurons import (
    IFNeuron,
    Kernel,
    PoissonEncoding,
    Reset,
    SpikingNetwork,
    available_if_kernels,
    if_kernel,
    if_step,
    repeat_over_time,
)


def run_sequence(inputs, threshold, reset, v_init=0.0):
    v = torch.full_like(inputs[0], v_init * threshold)
    outs = []
    for x in inputs:
        out, v = if_step(x, v, torch.tensor(threshold), reset)
        outs.append(out)
    return torch.stack(outs), v


def test_soft_reset_conserves_charge_exactly():
    # Multiples of 1/8 and a power-of-two threshold are exact in float32.
    gen = torch.Generator().manual_seed(0)
    inputs = torch.randint(-8, 24, (50, 4, 7), generator=gen).float() / 8
    outs, v = run_sequence(inputs, 0.5, Reset.SUBTRACT)
    assert torch.equal(outs.sum(0) + v, inputs.sum(0))


def test_soft_reset_conserves_charge_random_floats():
    inputs = torch.rand(200, 1000, generator=torch.Generator().manual_seed(1)) * 0.9
    outs, v = run_sequence(inputs, 0.37, Reset.SUBTRACT, v_init=0.5)
    assert torch.allclose(outs.sum(0) + v, inputs.sum(0) + 0.5 * 0.37, atol=1e-4)


def test_hard_reset_hand_sequence():
    inputs = torch.tensor([0.6, 0.6, 0.6, 0.6, 1.5]).reshape(5, 1)
    outs, v = run_sequence(inputs, 1.0, Reset.ZERO)
    assert outs.flatten().tolist() == [0.0, 1.0, 0.0, 1.0, 1.0]
    assert v.item() == 0.0


def test_soft_reset_keeps_excess_where_hard_reset_loses_it():
    inputs = torch.full((5, 1), 0.625)  # exact in binary
    soft, _ = run_sequence(inputs, 1.0, Reset.SUBTRACT)
    hard, _ = run_sequence(inputs, 1.0, Reset.ZERO)
    assert soft.flatten().tolist() == [0.0, 1.0, 0.0, 1.0, 1.0]  # 3 = floor(5 * 0.625)
    assert hard.flatten().tolist() == [0.0, 1.0, 0.0, 1.0, 0.0]


@pytest.mark.parametrize("kernel", available_if_kernels())
@pytest.mark.parametrize("reset", list(Reset))
@pytest.mark.parametrize("static", [False, True])
def test_kernels_match_reference(kernel, reset, static):
    gen = torch.Generator().manual_seed(2)
    steps = 9
    x = torch.randn(3, 4, 5, 5, generator=gen) if static else torch.randn(steps, 3, 4, 5, 5, generator=gen)
    threshold = torch.rand(1, 4, 1, 1, generator=gen) + 0.2
    v0 = torch.rand(3, 4, 5, 5, generator=gen) * 0.3
    ref_out, ref_v = if_kernel(Kernel.REFERENCE)(x, v0, threshold, reset, steps, static)
    out, v = if_kernel(kernel)(x, v0, threshold, reset, steps, static)
    assert torch.allclose(out, ref_out) and torch.allclose(v, ref_v)


def test_neuron_per_channel_threshold_and_flat_layout():
    neuron = IFNeuron([1.0, 2.0], v_init=0.0)
    x = torch.ones(3 * 2, 2, 1)  # 3 steps, batch 2, 2 channels
    out = neuron(x, 3).reshape(3, 2, 2, 1)
    assert out[:, 0, 0, 0].tolist() == [1.0, 1.0, 1.0]
    assert out[:, 0, 1, 0].tolist() == [0.0, 2.0, 0.0]


def test_neuron_rejects_bad_thresholds():
    with pytest.raises(ConfigError):
        IFNeuron(0.0)
    with pytest.raises(ConfigError):
        IFNeuron([1.0, float("nan")])


class _OneNeuron(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.neuron = IFNeuron(0.3)

    def forward(self, x, num_steps):
        return self.neuron(self.fc(repeat_over_time(x, num_steps)), num_steps)


def _network(**kwargs):
    torch.manual_seed(0)
    return SpikingNetwork(_OneNeuron(), **kwargs)


def test_state_is_cleared_between_forwards():
    snn = _network()
    x = torch.rand(5, 4)
    assert torch.equal(snn(x, 7), snn(x, 7))
    first = snn(x, 7)
    snn(torch.rand(5, 4) * 10, 3)  # a different sample in between
    assert torch.equal(snn(x, 7), first)


@pytest.mark.parametrize("chunk", [1, 3, 7, 64])
def test_time_chunks_do_not_change_the_result(chunk):
    x = torch.rand(5, 4)
    whole = _network()(x, 20)
    assert torch.equal(_network(time_chunk=chunk)(x, 20), whole)


def test_timesteps_must_be_positive():
    with pytest.raises(ConfigError):
        _network()(torch.rand(2, 4), 0)


def test_poisson_encoding_rate_and_reproducibility():
    enc = PoissonEncoding(seed=3)
    x = torch.tensor([[0.0, 0.25, 0.5, 1.0]]).expand(2000, 4)
    spikes = enc.encode(x, 10, 0).reshape(10, 2000, 4)
    assert torch.allclose(spikes.mean((0, 1)), torch.tensor([0.0, 0.25, 0.5, 1.0]), atol=0.02)
    assert torch.equal(enc.encode(x, 10, 0), spikes.reshape(20000, 4))
    # chunk-independent: steps 5..9 drawn alone equal the tail of the full draw
    assert torch.equal(enc.encode(x, 5, 5).reshape(5, 2000, 4), spikes[5:])
