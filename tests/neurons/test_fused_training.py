"""The fused BPTT of the trainable neurons equals autograd over their step loop: same spikes, same gradients."""

from __future__ import annotations

import pytest
import torch

from spikeconv.neurons import BinaryNeuronConfig, Charge, MultiThresholdConfig, Reset, ResetDecay
from spikeconv.neurons.mpr import mpr_value
from spikeconv.neurons.surrogates import Atan, CombRational, CombSum, Sigmoid
from spikeconv.neurons.trainable_base import TrainableNeuron

STEPS = 6
CONFIGS = {
    "if-soft": BinaryNeuronConfig(),
    "if-hard": BinaryNeuronConfig(reset=Reset.ZERO),
    "lif-hard": BinaryNeuronConfig(charge=Charge.LIF, reset=Reset.ZERO),
    "lif-soft-sigmoid": BinaryNeuronConfig(charge=Charge.LIF, tau=3.0, surrogate=Sigmoid()),
    "srif-mpr": BinaryNeuronConfig(mpr=True),
    "lif-hard-mpr-atan": BinaryNeuronConfig(charge=Charge.LIF, reset=Reset.ZERO, mpr=True, surrogate=Atan()),
    "if-hard-detached": BinaryNeuronConfig(reset=Reset.ZERO, detach_reset=True, threshold=0.7),
    "srif-detached": BinaryNeuronConfig(detach_reset=True),
    "mtlif": MultiThresholdConfig(threshold=1.0, max_spikes=4),
    "mtlif-decayed-attached": MultiThresholdConfig(threshold=0.8, decay=0.7, reset_decay=ResetDecay.DECAYED, detach_reset=False),
    "mtlif-attached-comb-sum": MultiThresholdConfig(threshold=0.9, max_spikes=3, surrogate=CombSum(b=0.3), detach_reset=False),
    "mtlif-decayed-rational": MultiThresholdConfig(threshold=1.1, reset_decay=ResetDecay.DECAYED, surrogate=CombRational(b=0.5)),
}


@pytest.fixture(params=["native", "torch"])
def path(request, monkeypatch):
    """Run the fused BPTT through the C++ loops (where they build) or through torch ops only."""
    from spikeconv.neurons import native

    if request.param == "native" and not native.native_available():
        pytest.skip("the C++ kernels do not build here")
    saved = dict(native._state)
    if request.param == "torch":
        native._state["ops"] = None
    yield request.param
    native._state.clear()
    native._state.update(saved)


def _run(neuron: TrainableNeuron, x: torch.Tensor, chunks: list[int], static: bool, gen_seed: int):
    """Outputs of the chunks, then a loss over them and the final membrane; returns outputs, final v and dL/dx."""
    x = x.detach().clone().requires_grad_(True)
    drive = x * 1.5  # a non-leaf input, as a layer's output is
    outputs, first = [], 0
    neuron.reset_state()
    for steps in chunks:
        piece = drive if static else drive[first * 3 : (first + steps) * 3]
        outputs.append(neuron(piece, steps, static=static))
        first += steps
    out = torch.cat(outputs)
    gen = torch.Generator().manual_seed(gen_seed)
    loss = (out * torch.randn(out.shape, generator=gen)).sum() + (neuron._v * torch.randn(neuron._v.shape, generator=gen)).sum()
    loss.backward()
    return out.detach(), neuron._v.detach(), x.grad


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize(("static", "chunks"), [(False, [STEPS]), (False, [2, 4]), (True, [STEPS])])
def test_fused_bptt_equals_step_loop(name, static, chunks, path):
    """Exact outputs and state; gradients equal up to float rounding (bit-equal for the presets' surrogates, where
    only element-wise arithmetic is involved; vectorised exp/tanh may round the last bit differently)."""
    config = CONFIGS[name]
    gen = torch.Generator().manual_seed(21)
    scale = 2.0 if isinstance(config, MultiThresholdConfig) else 0.8
    x = torch.randn(3, 4, 5, generator=gen) * scale if static else torch.randn(STEPS * 3, 4, 5, generator=gen) * scale
    fused, loop = config.build(), config.build()
    loop.fused_training, fused.fused_training = False, True
    called = []
    original = fused.fused_bptt
    fused.fused_bptt = lambda *args: called.append(1) or original(*args)
    out_f, v_f, grad_f = _run(fused, x, chunks, static, 22)
    out_l, v_l, grad_l = _run(loop, x, chunks, static, 22)
    assert called, "the fused path did not run"
    assert torch.equal(out_f, out_l) and torch.equal(v_f, v_l)
    assert 0 < int((out_l != 0).sum()) < out_l.numel()
    assert torch.allclose(grad_f, grad_l, rtol=1e-5, atol=1e-6), (grad_f - grad_l).abs().max()
    assert grad_l.abs().sum() > 0


def test_float64_and_no_gradient_into_buffers():
    neuron = BinaryNeuronConfig(charge=Charge.LIF).build().double()
    x = torch.randn(4 * 2, 3, dtype=torch.float64, requires_grad=True)
    neuron(x, 4).sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.float64
    assert neuron.threshold.grad is None and neuron.leak.grad is None


def test_mpr_never_changes_a_spike_at_threshold_one_half():
    """The fused forward skips φ at V_th = 0.5 (binary_nodes.spikes_ignore_mpr): torch's φ(H) ≥ 0.5 iff H ≥ 0.5, for
    every float32 in [0.499, 0.501], at the edges, and on random values, through vector and scalar code paths."""
    low, high = (torch.tensor(v, dtype=torch.float32).view(torch.int32).item() for v in (0.499, 0.501))
    near = torch.arange(low, high + 1, dtype=torch.int32).view(torch.float32)
    edges = torch.tensor([0.0, -0.0, 1.0, 0.5, float("inf"), float("-inf"), float("nan"), 1e-40, -1e-40, 1e30])
    wide = torch.randn(200_000, generator=torch.Generator().manual_seed(23)) * 3
    threshold = torch.tensor(0.5)
    for values in (near, near[:37], edges, wide):
        with_mpr = (mpr_value(values) - threshold) >= 0
        assert torch.equal(with_mpr, (values - threshold) >= 0)


@pytest.mark.parametrize("static", [False, True])
def test_fused_mpr_with_another_threshold_computes_phi(static, path):
    """A threshold buffer changed after build (not 0.5) makes the fused forward evaluate φ, as the step loop does."""
    gen = torch.Generator().manual_seed(24)
    x = torch.randn(3, 4, 5, generator=gen) if static else torch.randn(STEPS * 3, 4, 5, generator=gen)
    fused, loop = BinaryNeuronConfig(mpr=True).build(), BinaryNeuronConfig(mpr=True).build()
    for neuron in (fused, loop):
        neuron.threshold.fill_(0.6)
    loop.fused_training, fused.fused_training = False, True
    out_f, v_f, grad_f = _run(fused, x, [STEPS], static, 25)
    out_l, v_l, grad_l = _run(loop, x, [STEPS], static, 25)
    assert torch.equal(out_f, out_l) and torch.equal(v_f, v_l)
    assert torch.allclose(grad_f, grad_l, rtol=1e-5, atol=1e-6)
