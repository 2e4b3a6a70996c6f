"""Bistable IF neurons (BSNN reconstruction) and synchronous delays."""

from __future__ import annotations

import pytest
import torch

from spikeconv.neurons import BistableIFNeuron, SynchronousDelay, bistable_phase


@pytest.mark.parametrize("depth, half_period", [(1, 1), (2, 1), (1, 3), (3, 2)])
def test_bistable_neuron_emits_nothing_in_its_integrate_state(depth, half_period):
    neuron = BistableIFNeuron(0.5, depth=depth, half_period=half_period)
    steps = 4 * half_period * 2
    x = torch.rand(steps, 16, 4, generator=torch.Generator().manual_seed(depth)) * 2
    out = neuron(x.flatten(0, 1), steps).reshape(steps, 16, 4)
    for t in range(1, steps + 1):
        if bistable_phase(depth, t, half_period) == 0:
            assert out[t - 1].abs().sum() == 0
    assert out.sum() > 0


def test_adjacent_depths_are_in_anti_phase():
    for t in range(1, 20):
        assert bistable_phase(1, t, 2) != bistable_phase(2, t, 2)


def test_bistable_neuron_conserves_charge_and_caps_spikes():
    neuron = BistableIFNeuron(1.0, depth=1, half_period=2, spikes_per_step=2, v_init=0.0)
    x = torch.full((8, 1), 0.6)
    out = neuron(x, 8).flatten()
    assert out.tolist() == [0.0, 1.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0]  # fire at steps 1-2 and 5-6
    assert out.sum().item() + neuron._v.item() == pytest.approx(x.sum().item())
    assert out.max().item() <= 2.0


def test_synchronous_delay_shifts_by_its_delay_across_chunks():
    delay = SynchronousDelay(3)
    first = delay(torch.arange(4.0).reshape(4, 1), 4).flatten().tolist()
    second = delay(torch.arange(4.0, 8.0).reshape(4, 1), 4).flatten().tolist()
    assert first + second == [0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0]
    delay.reset_state()
    assert delay(torch.ones(2, 1), 2).flatten().tolist() == [0.0, 0.0]
