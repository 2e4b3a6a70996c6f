"""Every fast neuron kernel equals its reference exactly: same outputs and state, bit for bit."""

from __future__ import annotations

import copy
import logging
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest
import torch
from torch import nn

from spikeconv.errors import ConfigError
from spikeconv.neurons import (
    BinaryNeuronConfig,
    BistableIFNeuron,
    Charge,
    IFNeuron,
    Kernel,
    MultiThresholdConfig,
    Reset,
    ResetDecay,
    SinCorrection,
    SpikingMaxPool2d,
    native,
)
from spikeconv.neurons.kernels import KINDS, available_kernels, neuron_kernel
from spikeconv.neurons.native import native_available
from spikeconv.neurons.pooling import accelerate_avg_pools_, avg_pool2d_exact
from spikeconv.neurons.sin_correction import IsiState

FAST = [Kernel.TORCH, Kernel.NATIVE, Kernel.INPLACE]
STEPS = 11


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-identical values (``torch.equal`` treats −0 and +0 alike, as the reference may)."""
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)


def _case(seed: int, static: bool, per_channel: bool, shape=(3, 4, 5, 6)):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen) if static else torch.randn(STEPS, *shape, generator=gen) * 0.7 + 0.1
    channels = shape[1]
    th_shape = (1, channels, *([1] * (len(shape) - 2))) if per_channel else ()
    threshold = torch.rand(th_shape, generator=gen) + 0.3
    v0 = torch.rand(shape, generator=gen) * threshold
    bias = torch.randn((channels, *([1] * (len(shape) - 2))), generator=gen) * 0.1
    return x, v0, threshold, bias


CASES = [(static, per_channel, with_bias) for static in (False, True) for per_channel in (False, True) for with_bias in (False, True)]


def test_every_kind_has_every_kernel():
    for kind in KINDS:
        assert set(available_kernels(kind)) == {Kernel.REFERENCE, *FAST}


@pytest.fixture(scope="module", autouse=True)
def native_default():
    """Run this module with the default native setting (C++ loops where they build), whatever the caller's environment."""
    before, saved = os.environ.pop("SPIKECONV_NATIVE", None), dict(native._state)
    native._state.clear()
    yield
    native._state.clear()
    native._state.update(saved)
    if before is not None:
        os.environ["SPIKECONV_NATIVE"] = before


@pytest.fixture
def fresh_native(monkeypatch, tmp_path):
    """An empty native cache in ``tmp_path`` and no loaded extension; restored afterwards."""
    saved = dict(native._state)
    native._state.clear()
    monkeypatch.setenv("SPIKECONV_NATIVE_CACHE", str(tmp_path))
    monkeypatch.delenv("SPIKECONV_NATIVE", raising=False)
    yield tmp_path
    native._state.clear()
    native._state.update(saved)


def test_native_extension_builds_here():
    """On a machine with a compiler the C++ kernels must build (else the tests below only test the fallback)."""
    assert native_available()


def test_second_process_loads_the_cached_library(tmp_path):
    """A fresh process finds the built library in its cache and imports it without compiling (no compiler reachable)."""
    if not native_available():
        pytest.skip("the C++ kernels do not build here")
    target = tmp_path / native.cache_key() / native.cached_library().name
    target.parent.mkdir()
    shutil.copy2(native.cached_library(), target)
    env = {**os.environ, "SPIKECONV_NATIVE_CACHE": str(tmp_path), "SPIKECONV_NATIVE": "1", "CXX": str(tmp_path / "no-compiler")}
    code = ("import torch; from spikeconv.neurons import native; ops = native.native_ops(); "
            "x = torch.ones(2, 3); v = torch.zeros(1, 3); o = torch.empty(2, 1, 3); "
            "ops.if_run(x.view(2, 1, 3), v, torch.full((3,), 0.5), torch.empty(0), o, 2, False, False, [], []); "
            "print(o.sum().item())")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3.0"
    assert "compiling" not in result.stderr
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]  # no build folder, no failure record


@pytest.mark.parametrize("changed", ["common.h", "if_loops.cpp", "bindings.cpp"])
def test_cache_key_follows_sources_and_flags(monkeypatch, tmp_path, changed):
    key = native.cache_key()
    assert native.cached_library().parent.name == key and key in native.cached_library().name
    monkeypatch.setattr(native, "_FLAGS", [*native._FLAGS, "-DSPIKECONV_TEST"])
    assert native.cache_key() != key
    monkeypatch.undo()
    csrc = tmp_path / "csrc"
    shutil.copytree(native._CSRC, csrc)
    monkeypatch.setattr(native, "_CSRC", csrc)
    assert native.cache_key() == key  # the contents count, not where they lie
    (csrc / changed).write_text((csrc / changed).read_text(encoding="utf-8") + "// changed\n", encoding="utf-8")
    assert native.cache_key() != key


def test_missing_sources_fall_back(fresh_native, monkeypatch, caplog):
    """An install without ``csrc/`` (package data left out) runs the pure-torch kernels, with a warning saying why."""
    monkeypatch.setattr(native, "_CSRC", fresh_native / "csrc")
    with caplog.at_level(logging.WARNING, logger="spikeconv"):
        assert native.native_ops() is None
    assert "C++ sources" in caplog.text


def test_failed_build_falls_back_and_is_not_retried(fresh_native, monkeypatch, caplog):
    calls = []

    def failing_compile(target):
        calls.append(target)
        raise RuntimeError("no headers here")

    monkeypatch.setattr(native, "_compile", failing_compile)
    with caplog.at_level(logging.WARNING, logger="spikeconv"):
        assert native.native_ops() is None
    assert len(calls) == 1 and "no headers here" in caplog.text
    assert (fresh_native / native.cache_key() / "failed.txt").is_file()
    native._state.clear()  # a later process: the recorded failure is not retried ...
    assert native.native_ops() is None and len(calls) == 1
    x, v0, th, bias = _case(16, False, True)
    ref = neuron_kernel("if", Kernel.REFERENCE)(x, v0, th, Reset.SUBTRACT, STEPS, False, bias)
    got = neuron_kernel("if", Kernel.NATIVE)(x, v0, th, Reset.SUBTRACT, STEPS, False, bias)
    assert _same(got[0], ref[0]) and _same(got[1], ref[1])  # ... and the fallback gives the same results
    native._state.clear()
    monkeypatch.setenv("SPIKECONV_NATIVE", "1")  # ... unless the user requires the kernels: retried, then a clear error
    with pytest.raises(ConfigError, match="SPIKECONV_NATIVE=1"):
        native.native_ops()
    assert len(calls) == 2


def test_native_off_uses_pure_torch(fresh_native, monkeypatch):
    monkeypatch.setenv("SPIKECONV_NATIVE", "0")
    monkeypatch.setattr(native, "_compile", lambda target: pytest.fail("SPIKECONV_NATIVE=0 must not build"))
    assert native.native_ops() is None and not list(fresh_native.iterdir())
    for kind, args in {"if": (Reset.ZERO,), "burst": (3,)}.items():
        x, v0, th, bias = _case(17, False, True)
        ref = neuron_kernel(kind, Kernel.REFERENCE)(x, v0, th, *args, STEPS, False, bias)
        got = neuron_kernel(kind, Kernel.INPLACE)(x, v0, th, *args, STEPS, False, bias)
        assert _same(got[0], ref[0]) and _same(got[1], ref[1])
    monkeypatch.setenv("SPIKECONV_NATIVE", "maybe")
    native._state.clear()
    with pytest.raises(ConfigError, match="SPIKECONV_NATIVE"):
        native.native_ops()


def test_concurrent_builders_wait_for_one_build(fresh_native, monkeypatch):
    """A second builder blocks on the lock while the first compiles, then imports the first one's library."""
    started, built, results = threading.Event(), [], []

    def slow_compile(target):
        started.set()
        time.sleep(0.3)  # the second builder reaches the lock meanwhile
        built.append(target)
        return "module"

    monkeypatch.setattr(native, "_compile", slow_compile)
    monkeypatch.setattr(native, "_try_cached", lambda target: "module" if built else None)
    first = threading.Thread(target=lambda: results.append(native._build(native.cached_library())))
    first.start()
    assert started.wait(30)
    results.append(native._build(native.cached_library()))
    first.join(30)
    assert results == ["module", "module"] and len(built) == 1


@pytest.mark.parametrize("kernel", FAST)
@pytest.mark.parametrize("reset", list(Reset))
@pytest.mark.parametrize(("static", "per_channel", "with_bias"), CASES)
def test_if_kernels_equal_reference(kernel, reset, static, per_channel, with_bias):
    x, v0, th, bias = _case(1, static, per_channel)
    b = bias if with_bias else None
    ref_out, ref_v = neuron_kernel("if", Kernel.REFERENCE)(x, v0, th, reset, STEPS, static, b)
    out, v = neuron_kernel("if", kernel)(x, v0, th, reset, STEPS, static, b)
    assert _same(out, ref_out) and _same(v, ref_v)
    assert 0 < int((ref_out != 0).sum()) < ref_out.numel()  # the case exercises both branches


@pytest.mark.parametrize("kernel", FAST)
@pytest.mark.parametrize("max_spikes", [2, 5])
@pytest.mark.parametrize(("static", "per_channel", "with_bias"), CASES)
def test_burst_kernels_equal_reference(kernel, max_spikes, static, per_channel, with_bias):
    x, v0, th, bias = _case(2, static, per_channel)
    x = x * 3.0
    b = bias if with_bias else None
    ref_out, ref_v = neuron_kernel("burst", Kernel.REFERENCE)(x, v0, th, max_spikes, STEPS, static, b)
    out, v = neuron_kernel("burst", kernel)(x, v0, th, max_spikes, STEPS, static, b)
    assert _same(out, ref_out) and _same(v, ref_v)
    assert (ref_out / th >= max_spikes - 0.5).any()  # saturated steps are covered


@pytest.mark.parametrize("kernel", FAST)
@pytest.mark.parametrize("v_init", [0.5, 0.0])
@pytest.mark.parametrize(("static", "per_channel", "with_bias"), CASES)
def test_signed_kernels_equal_reference(kernel, v_init, static, per_channel, with_bias):
    x, v0, th, bias = _case(3, static, per_channel)
    b = bias if with_bias else None
    count = torch.randint(0, 3, v0.shape, generator=torch.Generator().manual_seed(5)).float()
    low = (2.0 * v_init - 1.0) * th
    ref = neuron_kernel("signed", Kernel.REFERENCE)(x, v0, count, th, low, STEPS, static, b)
    got = neuron_kernel("signed", kernel)(x, v0, count, th, low, STEPS, static, b)
    assert all(_same(g, r) for g, r in zip(got, ref, strict=True))
    assert (ref[0] < 0).any()  # negative spikes are covered


def _isi_state(shape) -> IsiState:
    gen = torch.Generator().manual_seed(7)
    fired = torch.randint(0, 5, shape, generator=gen).float()
    first = torch.randint(0, 4, shape, generator=gen).float()
    last = first + torch.randint(0, 6, shape, generator=gen).float()
    return IsiState(count=torch.randint(0, 3, shape, generator=gen).float(), fired=fired, first=first, last=last,
                    last_event=last.clone())  # fmt: skip


@pytest.mark.parametrize("kernel", FAST)
@pytest.mark.parametrize("start", [0, 9])
@pytest.mark.parametrize(("static", "per_channel", "with_bias"), CASES)
def test_isi_kernels_equal_reference(kernel, start, static, per_channel, with_bias):
    x, v0, th, bias = _case(4, static, per_channel)
    x = x - 0.3  # silent stretches make the interval rule retract spikes
    b = bias if with_bias else None
    state = _isi_state(v0.shape)
    ref_out, ref_v, ref_s = neuron_kernel("isi", Kernel.REFERENCE)(x, v0, state, th, start, 0.7, STEPS, static, b)
    out, v, s = neuron_kernel("isi", kernel)(x, v0, state, th, start, 0.7, STEPS, static, b)
    assert _same(out, ref_out) and _same(v, ref_v)
    for name in ("count", "fired", "first", "last", "last_event"):
        assert _same(getattr(s, name), getattr(ref_s, name)), name
    assert (ref_out < 0).any()
    assert _same(state.fired, _isi_state(v0.shape).fired)  # the input state is not modified


@pytest.mark.parametrize("kernel", FAST)
@pytest.mark.parametrize(("static", "per_channel", "with_bias"), CASES)
def test_bistable_kernels_equal_reference(kernel, static, per_channel, with_bias):
    x, v0, th, bias = _case(5, static, per_channel)
    b = bias if with_bias else torch.zeros(())
    fire = [t % 3 != 1 for t in range(STEPS)]
    ref_out, ref_v = neuron_kernel("bistable", Kernel.REFERENCE)(x, v0, th, b, fire, 2, STEPS, static)
    out, v = neuron_kernel("bistable", kernel)(x, v0, th, b, fire, 2, STEPS, static)
    assert _same(out, ref_out) and _same(v, ref_v)


def test_linear_layer_per_feature_thresholds():
    """A [N, F] input with one threshold per feature (dimension 1), as after a linear layer."""
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(STEPS, 7, 33, generator=gen)
    th = torch.rand(1, 33, generator=gen) + 0.2
    v0 = torch.zeros(7, 33)
    ref = neuron_kernel("if", Kernel.REFERENCE)(x, v0, th, Reset.SUBTRACT, STEPS, False)
    for kernel in FAST:
        got = neuron_kernel("if", kernel)(x, v0, th, Reset.SUBTRACT, STEPS, False)
        assert _same(got[0], ref[0]) and _same(got[1], ref[1])


def test_non_float32_falls_back_exactly():
    x, v0, th, bias = _case(9, False, True)
    x, v0, th, bias = x.double(), v0.double(), th.double(), bias.double()
    ref = neuron_kernel("if", Kernel.REFERENCE)(x, v0, th, Reset.SUBTRACT, STEPS, False, bias)
    got = neuron_kernel("if", Kernel.NATIVE)(x, v0, th, Reset.SUBTRACT, STEPS, False, bias)
    assert _same(got[0], ref[0]) and _same(got[1], ref[1])


def _neuron_outputs(make, x: torch.Tensor, chunks: list[int]) -> torch.Tensor:
    neuron = make()
    outputs, first = [], 0
    for steps in chunks:
        outputs.append(neuron(x[first * 3 : (first + steps) * 3], steps))
        first += steps
    return torch.cat(outputs)


NEURONS = {
    "if": lambda kernel: IFNeuron(torch.tensor([0.5, 1.0, 0.7, 1.3]), kernel=kernel),
    "if-hard": lambda kernel: IFNeuron(0.8, reset=Reset.ZERO, kernel=kernel),
    "burst": lambda kernel: IFNeuron(0.6, max_spikes=3, kernel=kernel),
    "signed": lambda kernel: IFNeuron(torch.tensor([0.5, 1.0, 0.7, 1.3]), sin_correction=SinCorrection.SIGNED, kernel=kernel),
    "isi": lambda kernel: IFNeuron(0.9, sin_correction=SinCorrection.ISI, isi_allowance=0.5, kernel=kernel),
}


@pytest.mark.parametrize("name", sorted(NEURONS))
@pytest.mark.parametrize("kernel", FAST)
def test_neurons_with_corrections_in_time_chunks_equal_reference(name, kernel):
    """Modules with bias and initial-potential corrections, run whole and in uneven chunks."""
    gen = torch.Generator().manual_seed(10)
    x = torch.randn(20 * 3, 4, 5, 5, generator=gen) * 0.6

    def make(k):
        def build():
            neuron = NEURONS[name](k)
            neuron.set_corrections(bias=torch.randn(4, 1, 1, generator=torch.Generator().manual_seed(1)) * 0.1,
                                   v_offset=torch.randn(4, 5, 5, generator=torch.Generator().manual_seed(2)) * 0.1)  # fmt: skip
            return neuron

        return build

    reference = _neuron_outputs(make(Kernel.REFERENCE), x, [20])
    for chunks in ([20], [7, 6, 7], [1, 19]):
        assert _same(_neuron_outputs(make(kernel), x, chunks), reference), chunks


@pytest.mark.parametrize("kernel", FAST)
def test_bistable_neuron_in_chunks_equals_reference(kernel):
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(18 * 3, 4, 5, 5, generator=gen)

    def make(k):
        return lambda: BistableIFNeuron(torch.tensor([0.5, 1.0, 0.7, 1.3]), depth=2, half_period=2, kernel=k)

    reference = _neuron_outputs(make(Kernel.REFERENCE), x, [18])
    for chunks in ([18], [5, 13], [3, 3, 12]):
        assert _same(_neuron_outputs(make(kernel), x, chunks), reference), chunks


@pytest.mark.parametrize("kernel", FAST)
def test_static_input_neuron_equals_reference(kernel):
    x = torch.randn(3, 4, 5, 5, generator=torch.Generator().manual_seed(12))
    for name, build in NEURONS.items():
        ref = build(Kernel.REFERENCE)(x, 9, static=True)
        assert _same(build(kernel)(x, 9, static=True), ref), name


POOLS = [
    nn.AvgPool2d(2),
    nn.AvgPool2d(3, stride=2),
    nn.AvgPool2d((2, 3), stride=(1, 2)),
    nn.AvgPool2d(3, stride=1),
    nn.AvgPool2d(2, padding=1),  # falls back (padding)
    nn.AvgPool2d(3, stride=2, ceil_mode=True, count_include_pad=False),  # falls back (ceil mode)
]


@pytest.mark.parametrize("index", range(len(POOLS)))
def test_exact_avg_pool_equals_aten(index):
    pool = POOLS[index]
    gen = torch.Generator().manual_seed(13)
    for x in (torch.randn(6, 5, 13, 11, generator=gen), (torch.rand(4, 3, 12, 12, generator=gen) > 0.8).float() * 0.37):
        assert _same(avg_pool2d_exact(pool, x), pool(x))


def test_accelerated_pools_keep_their_type_and_values():
    model = nn.Sequential(nn.AvgPool2d(2), nn.Sequential(nn.AvgPool2d(3, stride=1)))
    x = torch.randn(2, 3, 12, 12)
    expected = model(x)
    assert accelerate_avg_pools_(model) == 2
    assert all(type(m) is nn.AvgPool2d for m in (model[0], model[1][0]))
    assert _same(model(x), expected) and _same(copy.deepcopy(model)(x), expected)
    x.requires_grad_(True)
    model(x).sum().backward()  # training falls back to aten's differentiable pool
    assert x.grad is not None


TRAINABLE = {
    "if-soft": BinaryNeuronConfig(),
    "if-hard": BinaryNeuronConfig(reset=Reset.ZERO, threshold=0.7),
    "lif-soft": BinaryNeuronConfig(charge=Charge.LIF, tau=3.0),
    "lif-hard": BinaryNeuronConfig(charge=Charge.LIF, reset=Reset.ZERO),
    "srif-mpr": BinaryNeuronConfig(mpr=True),
    "mtlif": MultiThresholdConfig(threshold=1.0, max_spikes=4),
    "mtlif-decayed": MultiThresholdConfig(threshold=0.8, decay=0.7, reset_decay=ResetDecay.DECAYED),
}


@pytest.mark.parametrize("name", sorted(TRAINABLE))
@pytest.mark.parametrize("static", [False, True])
def test_trainable_fast_forward_equals_step_loop(name, static):
    """Under no_grad the trainable neurons run the C++ loop; it equals the loop of their ``step``."""
    config = TRAINABLE[name]
    gen = torch.Generator().manual_seed(14)
    x = torch.randn(3, 4, 5, 5, generator=gen) * 2 if static else torch.randn(9 * 3, 4, 5, 5, generator=gen) * 2
    fast, slow = config.build(), config.build()
    slow.fast_forward = lambda *args: None  # the reference: the module's own step loop

    def run(neuron):  # two chunks, 4 + 5 steps, state carried between them
        if static:
            return torch.cat([neuron(x, 4, static=True), neuron(x, 5, static=True)])
        return torch.cat([neuron(x[:12], 4), neuron(x[12:], 5)])

    with torch.no_grad():
        out_fast, out_slow = run(fast), run(slow)
    v_fast = fast._v
    assert _same(out_fast, out_slow) and _same(v_fast, slow._v)
    assert out_slow.abs().sum() > 0
    assert fast.fast_forward(x if static else x.reshape(9, 3, 4, 5, 5), torch.zeros(3, 4, 5, 5), 9, static) is not None


def test_trainable_neurons_keep_autograd_when_training():
    neuron = BinaryNeuronConfig().build()
    x = torch.randn(4 * 2, 3, requires_grad=True)
    neuron(x, 4).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


GATES = [
    {"kernel_size": 2},
    {"kernel_size": 3, "stride": 2, "padding": 1},
    {"kernel_size": 3, "stride": 1, "dilation": 2},
    {"kernel_size": 3, "stride": 2, "ceil_mode": True},
]


@pytest.mark.parametrize("index", range(len(GATES)))
@pytest.mark.parametrize("static", [False, True])
def test_spiking_maxpool_native_equals_reference(index, static):
    """The C++ gate equals the step loop, on spikes with ties (0/θ values) and on real currents, in chunks."""
    gen = torch.Generator().manual_seed(15)
    spikes = (torch.rand(12 * 2, 3, 9, 9, generator=gen) > 0.7).float() * torch.tensor([0.5, 1.0, 0.25]).view(1, 3, 1, 1)
    currents = torch.randn(12 * 2, 3, 9, 9, generator=gen)
    for x in (spikes, currents):
        fast = SpikingMaxPool2d(**GATES[index])
        slow = SpikingMaxPool2d(**GATES[index], kernel=Kernel.REFERENCE)
        if static:
            got = torch.cat([fast(x[:2], 5, static=True), fast(x[:2], 7, static=True)])
            ref = torch.cat([slow(x[:2], 5, static=True), slow(x[:2], 7, static=True)])
        else:
            got = torch.cat([fast(x[:10], 5), fast(x[10:], 7)])
            ref = torch.cat([slow(x[:10], 5), slow(x[10:], 7)])
        assert _same(got, ref) and _same(fast._cumulative, slow._cumulative) and _same(fast._emitted, slow._emitted)


def test_spiking_maxpool_2x2_fast_path_equals_reference_with_ties_and_nan():
    """The vectorised 2x2 stride-2 gate: even and odd planes, tied maxima (the first wins) and NaN inputs."""
    gen = torch.Generator().manual_seed(16)
    for shape in ((6 * 2, 3, 8, 10), (6 * 2, 2, 7, 5)):
        x = torch.round(torch.randn(*shape, generator=gen) * 2) / 2  # many exact ties
        x[3, 0, 1, 1] = float("nan")
        fast, slow = SpikingMaxPool2d(2), SpikingMaxPool2d(2, kernel=Kernel.REFERENCE)
        got, ref = fast(x, 6), slow(x, 6)
        assert torch.equal(got.isnan(), ref.isnan()) and torch.equal(got.nan_to_num(7.0), ref.nan_to_num(7.0))
        assert torch.equal(fast._emitted.nan_to_num(7.0), slow._emitted.nan_to_num(7.0))


def test_output_buffers_are_reused_only_when_unreferenced():
    """A neuron reuses its output buffer across calls, never while an earlier output is still held."""
    neuron = IFNeuron(0.5)
    x = torch.randn(4 * 2, 3, 5)

    def fresh_run() -> torch.Tensor:
        neuron.reset_state()
        return neuron(x, 4)

    expected = fresh_run().clone()
    kept = fresh_run()  # the caller keeps this output ...
    again = fresh_run()  # ... so this call must write elsewhere
    assert again.data_ptr() != kept.data_ptr()
    assert _same(kept, expected) and _same(again, expected)
    del kept, again
    ptr = fresh_run().data_ptr()
    assert fresh_run().data_ptr() == ptr  # nothing held it: the same memory again


def test_missing_compiler_falls_back(fresh_native, monkeypatch):
    monkeypatch.setenv("CXX", str(fresh_native / "no-such-compiler"))
    assert native.native_ops() is None
    assert "no C++ compiler" in (fresh_native / native.cache_key() / "failed.txt").read_text(encoding="utf-8")
