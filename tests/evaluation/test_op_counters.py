"""Spike and operation counts against hand-computed small networks."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from spikeconv.errors import ConfigError
from spikeconv.evaluation import OperationCounts, count_operations, dense_ops, fanout_map
from spikeconv.neurons import IFNeuron, MultiThresholdConfig, SpikingNetwork


class StaticThenSynapse(nn.Module):
    """``layer1`` (analog, run once) -> neuron (static input) -> ``layer2`` (receives spikes)."""

    def __init__(self, layer1: nn.Module, neuron: nn.Module, layer2: nn.Module) -> None:
        super().__init__()
        self.layer1, self.neuron, self.layer2 = layer1, neuron, layer2

    def forward(self, x, num_steps):
        return self.layer2(self.neuron(self.layer1(x), num_steps, static=True)).flatten(1)


def _linear(weight: list[list[float]]) -> nn.Linear:
    layer = nn.Linear(len(weight[0]), len(weight), bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
    return layer


def _two_layer_snn() -> SpikingNetwork:
    """Currents 1.0, 0.5, 0 into IF neurons with θ = 1, V[0] = 0: spikes every step, every other step, never."""
    fc1 = _linear([[1.0, 0.0], [0.5, 0.0], [0.0, 0.0]])
    return SpikingNetwork(StaticThenSynapse(fc1, IFNeuron(1.0, v_init=0.0), nn.Linear(3, 2, bias=False)))


def _count(snn: nn.Module, x: torch.Tensor, steps: int | None = None) -> OperationCounts:
    with count_operations(snn) as counter, torch.inference_mode():
        snn(x) if steps is None else snn(x, steps)
    return counter.result()


def test_two_layer_network_by_hand():
    counts = _count(_two_layer_snn(), torch.tensor([[1.0, 0.0]]), 4)
    layers = {layer.name: layer for layer in counts.layers}
    assert counts.samples == 1 and counts.timesteps == 4
    assert layers["layer1"].mac == (6.0,) * 4 and layers["layer1"].ac == (0.0,) * 4  # analog input: 2x3 dense MACs per step
    assert layers["layer2"].ac == (2.0, 4.0, 2.0, 4.0) and layers["layer2"].mac == (0.0,) * 4  # 1, 2, 1, 2 spikes x fan-out 2
    assert layers["layer1"].static and not layers["layer2"].static  # layer1 ran once on the time-invariant input
    (neuron,) = counts.neurons
    assert neuron.name == "neuron" and neuron.size == 3 and neuron.spikes == (1.0, 2.0, 1.0, 2.0)
    at2 = counts.totals(2)
    assert (at2["ac"], at2["mac"], at2["spikes"]) == (6.0, 12.0, 3.0)
    assert at2["spike_rate"] == pytest.approx(3 / (3 * 2)) and at2["spike_rates"] == {"neuron": pytest.approx(0.5)}
    assert counts.totals(4)["ac"] == 12.0 and counts.totals()["timesteps"] == 4


def test_counts_average_over_samples_and_do_not_depend_on_time_chunks():
    snn = _two_layer_snn()
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])  # the third sample never spikes
    whole = _count(snn, x, 4)
    snn.time_chunk = 3
    chunked = _count(snn, x, 4)
    assert whole == chunked
    assert whole.samples == 3 and whole.totals(4)["ac"] == pytest.approx(2 * 12.0 / 3)


def test_conv_after_spikes_by_hand():
    """Centre pixel spikes every step (fan-out 2 channels x 9 = 18), a corner every other step (2 x 4 = 8)."""
    conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)
    snn = SpikingNetwork(StaticThenSynapse(nn.Identity(), IFNeuron(1.0, v_init=0.0), conv))
    x = torch.zeros(1, 1, 3, 3)
    x[0, 0, 1, 1], x[0, 0, 0, 0] = 1.0, 0.5
    counts = _count(snn, x, 4)
    (layer,) = counts.layers
    assert layer.ac == (18.0, 26.0, 18.0, 26.0)
    assert counts.neurons[0].spikes == (1.0, 2.0, 1.0, 2.0) and counts.neurons[0].size == 9


def test_fanout_of_a_padded_conv_by_hand():
    conv = nn.Conv2d(1, 2, 3, padding=1)
    expected = 2 * torch.tensor([[4.0, 6.0, 4.0], [6.0, 9.0, 6.0], [4.0, 6.0, 4.0]])
    assert torch.equal(fanout_map(conv, (1, 3, 3))[0], expected.double())
    assert dense_ops(conv, (1, 3, 3)) == 98  # connections to padding are not operations
    assert dense_ops(nn.Conv2d(2, 3, 2), (2, 3, 3)) == 3 * 2 * 2 * (2 * 2 * 2)  # no padding: outputs x fan-in
    assert dense_ops(nn.Linear(5, 7), (5,)) == 35


@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv2d(4, 6, 3, stride=2, padding=1),
        nn.Conv2d(4, 6, 3, dilation=2, padding=2, groups=2),
        nn.Conv2d(4, 4, 5, groups=4),
        nn.Conv2d(4, 6, 3, padding=1, padding_mode="reflect"),
    ],
    ids=["stride", "dilation-groups", "depthwise", "reflect"],
)
def test_event_count_equals_an_all_ones_convolution_of_the_spike_mask(conv):
    """AC = sum of conv(s != 0, all-ones kernel): the definition, for any stride/dilation/groups/padding."""
    torch.manual_seed(0)
    spikes = (torch.rand(3, 4, 9, 9) < 0.3).float() * torch.rand(3, 4, 9, 9)
    fanout = fanout_map(conv, (4, 9, 9))
    ones = torch.ones_like(conv.weight)
    padded = (spikes != 0).float()
    if conv.padding_mode != "zeros":
        ones_out = conv._conv_forward(padded, ones, None)
    else:
        ones_out = F.conv2d(padded, ones, None, conv.stride, conv.padding, conv.dilation, conv.groups)
    assert (padded * fanout).sum().item() == pytest.approx(ones_out.sum().item())


@pytest.mark.parametrize(
    "pool, windows",
    [(nn.AvgPool2d(2), 4 * 4 * 4), (nn.AvgPool2d(3, stride=1), 4 * 2 * 2 * 9), (nn.AdaptiveAvgPool2d(1), 4 * 16),
     (nn.AdaptiveAvgPool2d(3), 4 * 9 * 4)],  # fmt: skip
)
def test_pool_fanout_counts_one_addition_per_input_and_window(pool, windows):
    assert dense_ops(pool, (4, 4, 4)) == windows


def test_burst_and_multi_threshold_outputs_count_every_spike_but_one_event():
    burst = SpikingNetwork(StaticThenSynapse(nn.Identity(), IFNeuron(1.0, v_init=0.0, max_spikes=3), nn.Linear(1, 4)))
    counts = _count(burst, torch.tensor([[2.5]]), 4)
    assert counts.neurons[0].spikes == (2.0, 3.0, 2.0, 3.0) and counts.neurons[0].events == (1.0,) * 4
    assert counts.layers[0].ac == (4.0,) * 4  # one synaptic event per step, fan-out 4
    mtlif = SpikingNetwork(StaticThenSynapse(nn.Identity(), MultiThresholdConfig().build(), nn.Linear(1, 4)))
    assert _count(mtlif, torch.tensor([[25.0]]), 4).neurons[0].spikes == (2.0, 2.0, 2.0, 3.0)


def test_ann_counts_dense_macs_and_pool_additions_once_per_forward():
    ann = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8, 3))
    counts = _count(ann, torch.rand(5, 1, 6, 6))
    totals = counts.totals()
    assert not counts.spiking and counts.samples == 5
    assert totals["mac"] == 2 * 4 * 4 * 9 + 8 * 3 and totals["ac"] == 2 * 4 * 4
    assert totals["timesteps"] is None and totals["spikes"] == 0
    with pytest.raises(ConfigError, match="no timesteps"):
        counts.totals(1)


def test_hooks_are_removed_and_outputs_unchanged():
    snn = _two_layer_snn()
    x = torch.tensor([[1.0, 0.0]])
    before = snn(x, 5)
    with count_operations(snn):
        during = snn(x, 5)
    modules = list(snn.modules())
    assert torch.equal(before, during)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in modules)


def test_counts_round_trip_through_json_and_reject_bad_t():
    counts = _count(_two_layer_snn(), torch.tensor([[1.0, 0.0]]), 4)
    assert OperationCounts.from_dict(counts.to_dict()) == counts
    with pytest.raises(ConfigError, match="1..4"):
        counts.totals(5)
