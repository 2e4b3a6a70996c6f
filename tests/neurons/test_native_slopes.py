"""The C++ passes of the training backward (spikeconv.neurons.native_slopes) give the torch formulas' floats, bit for bit."""

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
