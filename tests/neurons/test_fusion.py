"""Fused neuron→average-pool pass: bit-identical to the two calls, and only where nothing watches the spikes."""

from __future__ import annotations

import copy

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

import spikeconv
from spikeconv.convert import ConvertConfig
from spikeconv.neurons import IFNeuron, Reset, SinCorrection, SpikingMaxPool2d, SpikingNetwork
from spikeconv.neurons import fusion as fusion_module
from spikeconv.neurons.fusion import InPlaceAdd, NeuronPool, fused_body, pool_geometry
from spikeconv.neurons.kernels_native import burst_native, if_native
from spikeconv.neurons.native import native_available
from spikeconv.neurons.strategies import Kernel

pytestmark = pytest.mark.skipif(not native_available(), reason="the fused pass needs the C++ kernels")

NEURONS = {
    "if": lambda: IFNeuron(torch.tensor([0.5, 1.0, 0.7]), kernel=Kernel.INPLACE),
    "if-hard": lambda: IFNeuron(0.8, reset=Reset.ZERO, kernel=Kernel.NATIVE),
    "burst": lambda: IFNeuron(0.6, max_spikes=3),
    "signed": lambda: IFNeuron(torch.tensor([0.5, 1.0, 0.7]), sin_correction=SinCorrection.SIGNED),
    "isi": lambda: IFNeuron(0.9, sin_correction=SinCorrection.ISI, isi_allowance=0.5),
}
POOLS = [nn.AvgPool2d(2), nn.AvgPool2d(3, stride=2), nn.AvgPool2d((2, 3), stride=(1, 2)), nn.AvgPool2d(2, stride=1)]


def _corrected(name: str) -> IFNeuron:
    neuron = NEURONS[name]()
    gen = torch.Generator().manual_seed(1)
    neuron.set_corrections(bias=torch.randn(3, 1, 1, generator=gen) * 0.1, v_offset=torch.randn(3, 9, 8, generator=gen) * 0.1)
    return neuron


@pytest.mark.parametrize("name", sorted(NEURONS))
@pytest.mark.parametrize("pool_index", range(len(POOLS)))
@pytest.mark.parametrize("static", [False, True])
def test_fused_pair_equals_pool_of_neuron_in_time_chunks(name, pool_index, static):
    """Same outputs chunk after chunk (so the membrane and SIN state carried between chunks are the same too)."""
    pool = POOLS[pool_index]
    gen = torch.Generator().manual_seed(pool_index)
    x = torch.randn(2 if static else 12 * 2, 3, 9, 8, generator=gen) * 0.7
    fused, plain = NeuronPool(_corrected(name), pool), _corrected(name)
    assert fused.fusable(x)
    first = 0
    for steps in (5, 1, 6):
        chunk = x if static else x[first * 2 : (first + steps) * 2]
        expected = pool(plain(chunk, steps, static=static))
        got = fused(chunk, steps, static=static)
        assert got.shape == expected.shape and torch.equal(got, expected), steps
        first += steps
    assert torch.equal(fused.neuron._v, plain._v)


@pytest.mark.parametrize("name", sorted(NEURONS))
@pytest.mark.parametrize("static", [False, True])
@pytest.mark.parametrize("size", [(8, 10), (9, 7)])
def test_fused_max_pool_gate_equals_gate_of_neuron_in_time_chunks(name, static, size):
    """Neuron + 2x2 spiking max-pool gate: same outputs and the same gate state (C, M) chunk after chunk."""
    gen = torch.Generator().manual_seed(sum(size))
    x = torch.randn(2 if static else 12 * 2, 3, *size, generator=gen) * 0.7
    neuron = NEURONS[name]()
    fused, plain, gate = NeuronPool(neuron, SpikingMaxPool2d(2)), copy.deepcopy(neuron), SpikingMaxPool2d(2)
    assert fused.fusable(x)
    first = 0
    for steps in (5, 1, 6):
        chunk = x if static else x[first * 2 : (first + steps) * 2]
        expected = gate(plain(chunk, steps, static=static), steps)
        got = fused(chunk, steps, static=static)
        assert got.shape == expected.shape and torch.equal(got, expected), steps
        first += steps
    assert torch.equal(fused.pool._cumulative, gate._cumulative) and torch.equal(fused.pool._emitted, gate._emitted)
    assert torch.equal(fused.neuron._v, plain._v)


def test_other_max_pool_gates_are_not_fused():
    for gate in (SpikingMaxPool2d(3, stride=2), SpikingMaxPool2d(2, padding=1), SpikingMaxPool2d(2, ceil_mode=True),
                 SpikingMaxPool2d(2, kernel=Kernel.REFERENCE)):  # fmt: skip
        assert pool_geometry(gate) is None


def test_pool_argument_falls_back_to_aten_pooling_where_native_does_not_apply():
    x = torch.randn(4 * 2, 3, 6, 6, dtype=torch.float64)
    v = torch.zeros(2, 3, 6, 6, dtype=torch.float64)
    th = torch.tensor(0.5, dtype=torch.float64)
    for kernel, args in ((if_native, (th, Reset.SUBTRACT)), (burst_native, (th, 2))):
        pooled, v_after = kernel(x.view(4, 2, 3, 6, 6), v, *args, 4, False, None, None, pool=(2, 2, 2, 2))
        plain, v_plain = kernel(x.view(4, 2, 3, 6, 6), v, *args, 4, False)
        assert torch.equal(pooled, nn.functional.avg_pool2d(plain.flatten(0, 1), 2).view(4, 2, 3, 3, 3))
        assert torch.equal(v_after, v_plain)


def test_pools_the_kernel_cannot_reproduce_are_not_fused():
    assert pool_geometry(nn.AvgPool2d(2)) == (2, 2, 2, 2)
    assert pool_geometry(nn.AvgPool2d(3, stride=(1, 2))) == (3, 3, 1, 2)
    for pool in (nn.AvgPool2d(2, padding=1), nn.AvgPool2d(3, stride=2, ceil_mode=True), nn.AvgPool2d(2, divisor_override=3),
                 nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1)):  # fmt: skip
        assert pool_geometry(pool) is None, pool


class _Cnn(nn.Module):
    """conv → ReLU → avg pool twice, a residual-free CNN small enough for digits."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.pool1 = nn.Conv2d(1, 6, 3, padding=1), nn.AvgPool2d(2)
        self.conv2, self.pool2 = nn.Conv2d(6, 8, 3, padding=1), nn.AvgPool2d(2)
        self.fc = nn.Linear(8 * 2 * 2, 10)

    def forward(self, x):
        x = self.pool1(torch.relu(self.conv1(x)))
        x = self.pool2(torch.relu(self.conv2(x)))
        return self.fc(torch.flatten(x, 1))


class _MaxPoolResNet(nn.Module):
    """conv → ReLU → max pool, one residual block, global average pool: the max-pool gate path."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.pool1 = nn.Conv2d(1, 6, 3, padding=1), nn.MaxPool2d(2)
        self.conv2, self.conv3 = nn.Conv2d(6, 6, 3, padding=1), nn.Conv2d(6, 6, 3, padding=1)
        self.fc = nn.Linear(6, 10)

    def forward(self, x):
        x = self.pool1(torch.relu(self.conv1(x)))
        x = torch.relu(self.conv3(torch.relu(self.conv2(x))) + x)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


@pytest.mark.parametrize("method", ["rate", "calibrated"])
def test_converted_max_pool_network_reads_out_the_same_fused(digits, method):
    calib, probe = digits
    torch.manual_seed(1)
    snn = spikeconv.convert(_MaxPoolResNet().eval(), [calib], method=method, timesteps=4).eval()
    fused = [m for m in fused_body(snn.body).modules() if isinstance(m, NeuronPool)]
    assert len(fused) == 1 and isinstance(fused[0].pool, SpikingMaxPool2d)
    assert len([m for m in fused_body(snn.body).modules() if isinstance(m, InPlaceAdd)]) == 1  # conv3(...) + x
    with torch.inference_mode():
        got = snn(probe, 7)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("spikeconv.neurons.network.fused_body", lambda body: body)
            expected = snn(probe, 7)
    assert torch.equal(got, expected)


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return images[:300], images[300:364]


@pytest.mark.parametrize(("method", "sin"), [("rate", "none"), ("calibrated", "none"), ("calibrated", "signed"),
                                             ("calibrated", "isi"), ("burst", "none")])  # fmt: skip
def test_converted_network_reads_out_the_same_fused(digits, method, sin):
    calib, probe = digits
    torch.manual_seed(0)
    snn = spikeconv.convert(_Cnn().eval(), [calib], method=method, timesteps=4,
                            config=ConvertConfig(sin_correction=SinCorrection.from_name(sin))).eval()  # fmt: skip
    fast = fused_body(snn.body)
    assert fast is not snn.body
    fused_calls = [m for m in fast.modules() if isinstance(m, NeuronPool)]
    assert len(fused_calls) == 2  # both neuron→pool pairs
    code = snn.body.code
    with torch.inference_mode():
        got = snn(probe, 9)
        snn.time_chunk = 4
        chunked = snn(probe, 9)
        handle = fused_calls[0].neuron.register_forward_hook(lambda *args: None)  # a watched neuron: the two calls
        watched = snn(probe, 9)
        handle.remove()
    with torch.inference_mode(), pytest.MonkeyPatch.context() as patch:
        patch.setattr("spikeconv.neurons.network.fused_body", lambda body: body)
        expected = snn(probe, 9)
    assert torch.equal(got, expected) and torch.equal(chunked, expected) and torch.equal(watched, expected)
    assert snn.body.code == code  # the converted graph itself is untouched


def test_hooks_see_the_unfused_calls(digits):
    calib, probe = digits
    snn = spikeconv.convert(_Cnn().eval(), [calib], method="rate")
    seen = []
    neuron = next(m for _, m in snn.neurons())
    handle = neuron.register_forward_hook(lambda module, inputs, output: seen.append(output.shape))
    with torch.inference_mode():
        snn(probe[:5], 3)
    handle.remove()
    assert seen == [torch.Size([15, 6, 8, 8])]  # the full spike map, not the pooled one


def test_a_watched_body_runs_as_itself(digits):
    """A hook on the body (the op counter reads K from each body call) must see the body called."""
    calib, probe = digits
    snn = spikeconv.convert(_Cnn().eval(), [calib], method="rate")
    calls = []
    handle = snn.body.register_forward_pre_hook(lambda module, args: calls.append(args[1]))
    assert fused_body(snn.body) is snn.body
    with torch.inference_mode():
        snn(probe[:4], 5)
    handle.remove()
    assert calls == [5]
    assert fused_body(snn.body) is not snn.body


def test_fused_view_follows_the_body(digits):
    """Cached per graph; a replaced submodule or a recompiled graph builds a new view; other bodies are left alone."""
    calib, _ = digits
    snn = spikeconv.convert(_Cnn().eval(), [calib], method="rate")
    first = fused_body(snn.body)
    assert fused_body(snn.body) is first
    name, neuron = next(snn.neurons())
    setattr(snn.body, name, copy.deepcopy(neuron))
    second = fused_body(snn.body)
    assert second is not first
    assert any(isinstance(m, NeuronPool) and m.neuron is getattr(snn.body, name) for m in second.modules())
    plain = nn.Sequential(nn.Linear(2, 2))
    assert fused_body(plain) is plain
    assert isinstance(snn, SpikingNetwork)
    assert fusion_module._CACHE.get(snn.body) is not None


def test_in_place_add_only_where_nothing_else_can_see_the_output():
    conv = nn.Conv2d(2, 2, 1)
    a, b = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    with torch.no_grad():
        expected = b + a
        buffer = a.clone()
        assert torch.equal(InPlaceAdd(conv, conv_first=False)(buffer, b), expected) and torch.equal(buffer, expected)
        wide = torch.randn(2, 3, 2, 4, 4)  # would broadcast the conv output up: out of place
        kept = a.clone()
        assert torch.equal(InPlaceAdd(conv, conv_first=True)(kept, wide), a + wide) and torch.equal(kept, a)
        handle = conv.register_forward_hook(lambda *args: None)
        kept = a.clone()
        InPlaceAdd(conv, conv_first=True)(kept, b)
        assert torch.equal(kept, a)  # a watched convolution's output is left alone
        handle.remove()
    kept = a.clone()
    InPlaceAdd(conv, conv_first=True)(kept, b)  # autograd on: out of place
    assert torch.equal(kept, a)


def test_autograd_inputs_run_unfused():
    pair = NeuronPool(IFNeuron(0.5), nn.AvgPool2d(2))
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    assert not pair.fusable(x)
    with torch.no_grad():
        assert pair.fusable(x)
    assert not pair.fusable(x.detach().double())
