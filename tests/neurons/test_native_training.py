"""The C++ passes of the training backward (spikeconv/neurons/csrc/training_passes.cpp) give the torch formulas' floats, bit for bit."""

from __future__ import annotations

import importlib

import pytest
import torch

from spikeconv.neurons import native
from spikeconv.neurons.mpr import mpr_derivative, mpr_value
from spikeconv.neurons.surrogates import CombMax, CombRational, CombSum, Rectangular, _HeavisideSpike

pytestmark = pytest.mark.skipif(not native.native_available(), reason="the C++ kernels do not build here")


def _floats_around(value: float, count: int) -> torch.Tensor:
    """The ``2·count`` consecutive float32 values around ``value``: every rounding case at a boundary."""
    bits = torch.tensor(value, dtype=torch.float32).view(torch.int32).item()
    return torch.arange(bits - count, bits + count, dtype=torch.int32).view(torch.float32)


def _inputs() -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(31)
    edges = [0.0, -0.0, 0.5, 1.0, -1.0, 1.5, 2.5, 0.15, -0.15, 1e-3, -1e-3, 1e-40, -1e-40, 1e30, -1e30, 5.0, 10.0, 15.0, 150.0,
             155.0, float("inf"), float("-inf"), float("nan")]  # fmt: skip
    return [
        torch.tensor(edges),
        torch.randn(1, generator=gen),
        torch.randn(37, generator=gen) * 3,  # scalar tails only
        torch.randn(3, 5, 7, 11, generator=gen) * 3,
        torch.randn(200_003, generator=gen) * 30,  # parallel chunks, exp arguments below −104 (exactly zero)
        torch.randint(-40, 200, (4096,), generator=gen).float() * 0.5,  # halfway cases of round(u/θ)
        _floats_around(0.0, 3000),
        _floats_around(1.0, 3000),
        _floats_around(-35.607, 20_000),  # comb-max at θ = 10, b = 20: exp's argument crosses −104 here
        _floats_around(-31.79, 3000),  # ... and its result becomes subnormal here
    ]


SLOPES = {
    "mpr φ": lambda x: mpr_value(x),
    "mpr φ'": lambda x: mpr_derivative(x),
    "rectangular": lambda x: Rectangular().derivative(x),
    "rectangular w=0.3": lambda x: Rectangular(width=0.3).derivative(x),
    "heaviside": lambda x: _HeavisideSpike.apply(x, Rectangular()),
    "comb-max": lambda x: CombMax().derivative(x, torch.tensor(10.0), 15),
    "comb-max a, b": lambda x: CombMax(a=0.7, b=0.3).derivative(x * 0.1, torch.tensor(0.9), 3),
    "comb-rational": lambda x: CombRational(b=0.5).derivative(x, torch.tensor(1.1), 4),
    "comb-rational a, b": lambda x: CombRational(a=1.3, b=7.0).derivative(x, torch.tensor(10.0), 15),
}


def _bitwise_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same values and signs of zero, NaN where the other is NaN."""
    same = (a == b) & (torch.signbit(a) == torch.signbit(b))
    return a.shape == b.shape and a.dtype == b.dtype and bool((same | (a.isnan() & b.isnan())).all())


MODULES = ("spikeconv.neurons.mpr", "spikeconv.neurons.surrogates")


@pytest.fixture
def native_calls(monkeypatch):
    """Counts the calls that took the C++ passes; ``native_calls.off()`` turns them off (the torch formulas run)."""

    class Calls:
        count = 0

        @staticmethod
        def off():
            for name in MODULES:
                monkeypatch.setattr(importlib.import_module(name), "_native", lambda *tensors: None)

    for name in MODULES:
        module = importlib.import_module(name)

        def counted(*tensors, _original=module._native):
            ops = _original(*tensors)
            Calls.count += ops is not None
            return ops

        monkeypatch.setattr(module, "_native", counted)
    return Calls


@pytest.mark.parametrize("name", sorted(SLOPES))
def test_native_pass_equals_torch_formula(name, native_calls):
    fn, inputs = SLOPES[name], _inputs()
    native_out = [fn(x) for x in inputs]
    assert native_calls.count >= len(inputs), "the C++ passes did not run"
    native_calls.off()
    for x, got, want in zip(inputs, native_out, [fn(x) for x in inputs], strict=True):
        assert _bitwise_equal(got, want), f"{name}: {int((got != want).sum())} of {x.numel()} differ"


def test_comb_max_zero_tail_is_exact():
    """Where exp's argument is below −104 the C++ pass writes the 0 torch's exp returns (without calling exp on it)."""
    u = torch.tensor([-40.0, -36.0, -35.0, 200.0, 10.0])
    slope = CombMax().derivative(u, torch.tensor(10.0), 15)
    assert slope[0] == 0 and slope[1] == 0 and slope[3] == 0 and 0 < slope[2] < 1e-37 and slope[4] == 1.0


def test_other_dtypes_and_layouts_use_torch():
    """float64, non-contiguous tensors and per-channel thresholds take the torch formulas (same results as before)."""
    x = torch.randn(6, 8, dtype=torch.float64) * 3
    assert mpr_value(x).dtype == torch.float64
    strided = torch.randn(8, 6)[:, ::2]
    assert _bitwise_equal(mpr_derivative(strided), mpr_derivative(strided.contiguous()))
    per_channel = torch.tensor([[9.0], [10.0]])
    u = torch.randn(2, 5) * 20
    assert CombMax().derivative(u, per_channel, 15).shape == (2, 5)
    assert CombSum().derivative(u, torch.tensor(10.0), 15).shape == (2, 5)


@pytest.mark.parametrize(
    ("kernel", "stride", "shape"),
    [(2, 2, (3, 4, 8, 8)), (2, 2, (2, 3, 9, 7)), (3, 1, (2, 3, 7, 9)), ((3, 2), (2, 1), (2, 2, 9, 8)), (2, 3, (1, 2, 8, 11)),
     (1, 1, (2, 2, 3, 3))],
)  # fmt: skip
def test_average_pool_gradient_equals_aten(kernel, stride, shape):
    """Forward and gradient of the C++ average pool equal aten's bit for bit: non-overlapping and overlapping windows
    (the additions in aten's order), uncovered rows and columns (zero), −0 gradients."""
    from spikeconv.neurons.pooling import avg_pool2d_exact

    pool = torch.nn.AvgPool2d(kernel, stride)
    gen = torch.Generator().manual_seed(32)
    x = (torch.rand(shape, generator=gen) < 0.3).float().requires_grad_(True)
    out = avg_pool2d_exact(pool, x)
    assert out.grad_fn is not None and "ExactAvgPool" in type(out.grad_fn).__name__
    scales = torch.tensor([1e-42, -0.0, 1.0, 3.0]).repeat(out.numel() // 4 + 1)[: out.numel()].view(out.shape)
    grad = torch.randn(out.shape, generator=gen) * scales  # subnormal, −0 and ordinary gradients
    (got,) = torch.autograd.grad(out, x, grad)
    reference = x.detach().clone().requires_grad_(True)
    want_out = torch.nn.functional.avg_pool2d(reference, kernel, stride)
    (want,) = torch.autograd.grad(want_out, reference, grad)
    assert _bitwise_equal(out.detach(), want_out.detach())
    assert _bitwise_equal(got, want)


def test_spikified_network_pools_in_cpp_and_trains_as_before(monkeypatch):
    """A spikified CNN's average pools take the C++ passes; its parameter gradients equal aten pooling's."""
    from spikeconv.models import build_model
    from spikeconv.neurons import pooling, trainable_neuron_config
    from spikeconv.training.snn.spikify import spikify

    torch.manual_seed(3)
    model = build_model("fmnist-cnn", input_shape=(1, 28, 28), num_classes=10)
    snn = spikify(model, trainable_neuron_config("srif", mpr=True), timesteps=2)
    x = torch.rand(4, 1, 28, 28)

    def grads():
        snn.zero_grad(set_to_none=True)
        snn(x, 2).square().sum().backward()
        return {name: p.grad.clone() for name, p in snn.named_parameters()}

    calls = []
    original = pooling._ExactAvgPool.apply
    monkeypatch.setattr(pooling._ExactAvgPool, "apply", lambda *a: calls.append(1) or original(*a))
    with_cpp = grads()
    assert calls, "the C++ pooling did not run"
    monkeypatch.setattr(pooling, "native_ops_for", lambda *tensors: None)
    with_aten = grads()
    assert all(torch.equal(with_cpp[name], with_aten[name]) for name in with_aten)


def _two_chunks(neuron, x: torch.Tensor, weights: torch.Tensor, static: bool):
    """Outputs of 2 then 3 steps (the membrane carried over), the final membrane and dL/dx for a weighted sum."""
    drive = x * 1.0  # a non-leaf input, as a layer's output is
    if static:
        out = torch.cat([neuron(drive, 2, static=True), neuron(drive, 3, static=True)])
    else:
        out = torch.cat([neuron(drive[:12], 2), neuron(drive[12:], 3)])
    (grad,) = torch.autograd.grad((out * weights).sum(), x)
    return out.detach(), neuron._v.detach(), grad


STEP_CONFIGS = {
    "srif-mpr": {"mpr": True},
    "srif": {},
    "if-hard": {"reset": "zero"},
    "lif-hard": {"charge": "lif", "reset": "zero"},
    "lif-soft-detached": {"charge": "lif", "detach_reset": True},
    "if-hard-detached-mpr": {"reset": "zero", "detach_reset": True, "mpr": True},
    "rect-0.7": {"mpr": True, "width": 0.7},
    "atan-mpr": {"mpr": True, "surrogate": "atan"},
    "mpr-threshold-0.6": {"mpr": True, "threshold_after_build": 0.6},
}


@pytest.mark.parametrize("static", [False, True])
@pytest.mark.parametrize("name", sorted(STEP_CONFIGS))
def test_step_nodes_equal_op_by_op_step(name, static, monkeypatch):
    """The step loop through the one-node steps (``_BinaryStep``; ``_MPRFire`` where that does not apply) gives the
    spikes, membranes and input gradients of :func:`binary_neuron_step` op by op with ``surrogate.spike(mpr(h) − θ)``,
    bit for bit (signs of zero included), over two calls (carried membrane) and with a static input."""
    from spikeconv.neurons import BinaryNeuronConfig, Charge, Reset, binary_nodes, mpr, trainable
    from spikeconv.neurons.surrogates import Atan

    options = dict(STEP_CONFIGS[name])
    threshold = options.pop("threshold_after_build", None)
    surrogate = Atan() if options.pop("surrogate", None) == "atan" else Rectangular(width=options.pop("width", 1.0))
    options["charge"] = Charge.from_name(options.get("charge", "if"))
    options["reset"] = Reset.from_name(options.get("reset", "subtract"))
    gen = torch.Generator().manual_seed(33)
    shape = (6, 4, 7, 7) if static else (5 * 6, 4, 7, 7)
    x = (torch.randn(shape, generator=gen) * 0.8).requires_grad_(True)
    signs = torch.tensor([1.0, -0.0, 2.0]).repeat(5 * 6 * 4 * 49 // 3 + 1)[: 5 * 6 * 4 * 49].view(5 * 6, 4, 7, 7)
    weights = torch.randn(5 * 6, 4, 7, 7, generator=gen) * signs  # −0 gradients: their sign must survive

    def run():
        neuron = BinaryNeuronConfig(surrogate=surrogate, **options).build()
        if threshold is not None:
            neuron.threshold.fill_(threshold)
        return _two_chunks(neuron, x, weights, static)

    nodes = []
    for owner, fn in ((binary_nodes._BinaryStep, "apply"), (importlib.import_module("spikeconv.neurons.mpr")._MPRFire, "apply")):
        original = getattr(owner, fn)
        monkeypatch.setattr(owner, fn, lambda *a, _o=original, _n=owner.__name__: nodes.append(_n) or _o(*a))
    fused = run()
    expected = "_MPRFire" if name in ("atan-mpr", "mpr-threshold-0.6") else "_BinaryStep"
    assert nodes and set(nodes) == {expected}
    monkeypatch.setattr(binary_nodes, "_step_node_ops", lambda *a: None)
    monkeypatch.setattr(trainable, "mpr_spike", lambda h, th, s: s.spike(mpr(h) - th))
    reference = run()
    assert 0 < int(reference[0].sum()) < reference[0].numel()
    for got, want in zip(fused, reference, strict=True):
        assert _bitwise_equal(got, want)


MTLIF_CONFIGS = {
    "mtlif": {},
    "decayed-attached": {"reset_decay": "decayed", "detach_reset": False},
    "attached": {"detach_reset": False, "threshold": 0.9, "max_spikes": 3},
    "comb-rational": {"surrogate": CombRational(b=0.5), "threshold": 1.1},
    "comb-max-narrow": {"surrogate": CombMax(a=0.7, b=0.3), "threshold": 1.0, "max_spikes": 4},
    "comb-sum": {"surrogate": CombSum(b=0.3), "threshold": 0.9, "max_spikes": 3},
}


@pytest.mark.parametrize("static", [False, True])
@pytest.mark.parametrize("name", sorted(MTLIF_CONFIGS))
def test_multi_threshold_step_nodes_equal_op_by_op_step(name, static, monkeypatch):
    """The multi-threshold step loop through ``_MultiThresholdStep`` (comb-max, comb-rational) gives the spike
    counts, membranes and input gradients of :func:`multi_threshold_step` op by op, bit for bit."""
    from spikeconv.neurons import MultiThresholdConfig, ResetDecay, multi_threshold

    options = dict(MTLIF_CONFIGS[name])
    if "reset_decay" in options:
        options["reset_decay"] = ResetDecay.from_name(options["reset_decay"])
    config = MultiThresholdConfig(**options)
    gen = torch.Generator().manual_seed(34)
    scale = config.threshold * 3
    shape = (6, 4, 7, 7) if static else (5 * 6, 4, 7, 7)
    x = (torch.randn(shape, generator=gen) * scale).requires_grad_(True)
    signs = torch.tensor([1.0, -0.0, 2.0]).repeat(5 * 6 * 4 * 49 // 3 + 1)[: 5 * 6 * 4 * 49].view(5 * 6, 4, 7, 7)
    weights = torch.randn(5 * 6, 4, 7, 7, generator=gen) * signs

    def run():
        return _two_chunks(config.build(), x, weights, static)

    nodes = []
    original = multi_threshold._MultiThresholdStep.apply
    monkeypatch.setattr(multi_threshold._MultiThresholdStep, "apply", lambda *a: nodes.append(1) or original(*a))
    fused = run()
    assert bool(nodes) == (name != "comb-sum")
    monkeypatch.setattr(multi_threshold, "_step_node_ops", lambda *a: None)
    reference = run()
    assert 0 < int((reference[0] != 0).sum()) < reference[0].numel()
    for got, want in zip(fused, reference, strict=True):
        assert _bitwise_equal(got, want)


def test_reused_step_buffers_never_overwrite_a_live_graph():
    """Two forwards before one backward (gradient accumulation) keep both graphs' outputs and pool gradients
    apart: the gradients equal those of two separate backward passes, and those of ``torch.cat`` / aten pooling."""
    from spikeconv.models import build_model
    from spikeconv.neurons import trainable_base, trainable_neuron_config
    from spikeconv.training.snn.spikify import spikify

    torch.manual_seed(4)
    snn = spikify(build_model("fmnist-cnn", input_shape=(1, 28, 28), num_classes=10), trainable_neuron_config("lif"), timesteps=3)
    a, b = torch.rand(4, 1, 28, 28), torch.rand(4, 1, 28, 28)

    def grads(together: bool):
        snn.zero_grad(set_to_none=True)
        if together:
            loss_a = snn(a, 3).square().sum()
            loss_b = snn(b, 3).square().sum()  # its buffers must not be loss_a's, which its graph still holds
            (loss_a + loss_b).backward()
        else:
            for x in (a, b):
                snn(x, 3).square().sum().backward()
        return [p.grad.clone() for p in snn.parameters()]

    together, separate = grads(True), grads(False)
    assert all(torch.allclose(g, h, rtol=1e-5, atol=1e-6) for g, h in zip(together, separate, strict=True))
    original = trainable_base._StepsInOrder.apply
    trainable_base._StepsInOrder.apply = lambda owner, *steps: torch.cat(steps)
    try:
        plain = grads(False)
    finally:
        trainable_base._StepsInOrder.apply = original
    assert all(torch.equal(g, h) for g, h in zip(separate, plain, strict=True))
