"""Surrogate gradients: handwritten backward vs autograd of the primitive, shapes, registry."""

import dataclasses
import math

import pytest
import torch

from spikeconv.errors import ConfigError
from spikeconv.neurons import (
    Atan,
    BinarySurrogate,
    CombMax,
    CombRational,
    CombSum,
    MultiSpikeSurrogate,
    Rectangular,
    Sigmoid,
    SurrogateKind,
    available_surrogates,
    register_surrogate,
    surrogate_from_dict,
    surrogate_from_name,
)
from spikeconv.neurons import surrogates as surrogates_module

BINARY = available_surrogates(SurrogateKind.BINARY)
MULTI = available_surrogates(SurrogateKind.MULTI)


def autograd_derivative(fn, x):
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(fn(x).sum(), x)
    return grad


def test_registry_lists_the_six_builtin_surrogates_by_kind():
    assert BINARY == ["atan", "rectangular", "sigmoid"]
    assert MULTI == ["comb-max", "comb-rational", "comb-sum"]
    assert available_surrogates() == sorted(BINARY + MULTI)


@pytest.mark.parametrize("name", BINARY)
def test_binary_backward_equals_autograd_of_primitive(name):
    surrogate = surrogate_from_name(name)
    # float64 grid avoiding the rectangular window's edges at ±0.5, where the primitive has a kink.
    x = torch.linspace(-2.013, 2.017, 401, dtype=torch.float64)
    expected = autograd_derivative(surrogate.primitive, x)
    assert torch.allclose(surrogate.derivative(x), expected, atol=1e-12)
    assert expected.abs().sum() > 0


@pytest.mark.parametrize("name", BINARY)
def test_binary_spike_is_heaviside_forward_and_derivative_backward(name):
    surrogate = surrogate_from_name(name)
    x = torch.tensor([-1.0, -0.2, 0.0, 0.3, 2.0], dtype=torch.float64)
    assert surrogate.spike(x).tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert torch.allclose(autograd_derivative(surrogate.spike, x), surrogate.derivative(x))


@pytest.mark.parametrize("name", MULTI)
@pytest.mark.parametrize(("threshold", "max_spikes"), [(1.0, 3), (10.0, 15), (0.5, 1)])
def test_multi_backward_equals_autograd_of_primitive(name, threshold, max_spikes):
    surrogate = surrogate_from_name(name, b=0.3 * threshold**2)
    th = torch.tensor(threshold, dtype=torch.float64)
    u = torch.linspace(-3.0 * threshold, (max_spikes + 3.0) * threshold, 997, dtype=torch.float64) + 1e-3
    expected = autograd_derivative(lambda v: surrogate.primitive(v, th, max_spikes), u)
    assert torch.allclose(surrogate.derivative(u, th, max_spikes), expected, atol=1e-10)


@pytest.mark.parametrize("name", MULTI)
def test_multi_spikes_forward_counts_and_backward(name):
    surrogate = surrogate_from_name(name)
    th = torch.tensor(10.0, dtype=torch.float64)
    u = torch.tensor([-5.0, 9.99, 10.0, 25.0, 149.9, 150.0, 1e4], dtype=torch.float64)
    assert surrogate.spikes(u, th, 15).tolist() == [0, 0, 1, 2, 14, 15, 15]
    grad = autograd_derivative(lambda v: surrogate.spikes(v, th, 15), u)
    assert torch.allclose(grad, surrogate.derivative(u, th, 15))


def test_known_binary_values():
    x = torch.tensor([-0.6, -0.5, 0.0, 0.5, 0.6])
    assert Rectangular().derivative(x).tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    assert Rectangular(width=2.0).derivative(x).tolist() == [0.5] * 5
    assert Sigmoid(alpha=4.0).derivative(torch.zeros(1)).item() == pytest.approx(1.0)
    assert Atan(alpha=2.0).derivative(torch.zeros(1)).item() == pytest.approx(1.0)
    assert Atan(alpha=2.0).derivative(torch.tensor([1 / torch.pi])).item() == pytest.approx(0.5)  # half height at παx/2 = 1


def test_comb_shapes_peaks_bounds_and_width():
    th = torch.tensor(10.0, dtype=torch.float64)
    u = torch.linspace(-20, 60, 8001, dtype=torch.float64)
    summed, maxed, rational = (cls(a=1.0, b=20.0).derivative(u, th, 3) for cls in (CombSum, CombMax, CombRational))
    peaks = torch.tensor([10.0, 20.0, 30.0], dtype=torch.float64)
    assert torch.allclose(CombMax().derivative(peaks, th, 3), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(CombRational().derivative(peaks, th, 3), torch.ones(3, dtype=torch.float64))
    assert summed.max() > 1.0  # curve 1: overlapping peaks add up beyond a
    assert maxed.max() <= 1.0 and rational.max() <= 1.0  # curves 2 and 3: bounded by a
    assert torch.all(summed >= maxed)
    # Γ = 3 peaks: local maxima of the max comb sit at 10, 20, 30 only.
    interior = (maxed[1:-1] > maxed[:-2]) & (maxed[1:-1] > maxed[2:])
    assert torch.allclose(u[1:-1][interior], peaks)
    # Larger b means a wider peak; a scales the height.
    off_peak = torch.tensor([13.0], dtype=torch.float64)
    assert CombMax(b=200.0).derivative(off_peak, th, 3) > CombMax(b=20.0).derivative(off_peak, th, 3)
    assert CombMax(a=0.5).derivative(peaks, th, 3).tolist() == [0.5, 0.5, 0.5]
    assert CombMax().derivative(torch.tensor([13.0]), torch.tensor(10.0), 3).item() == pytest.approx(math.exp(-9 / 20))


@pytest.mark.parametrize("name", BINARY + MULTI)
def test_to_dict_round_trip(name):
    surrogate = surrogate_from_name(name)
    changed = dataclasses.replace(surrogate, **{f.name: 3.0 for f in dataclasses.fields(surrogate)})
    for item in (surrogate, changed):
        data = item.to_dict()
        assert data["name"] == name
        assert surrogate_from_dict(data) == item


def test_invalid_parameters_and_names_raise():
    for bad in (0.0, -1.0, float("nan"), float("inf"), True):
        with pytest.raises(ConfigError, match="width"):
            Rectangular(width=bad)
    with pytest.raises(ConfigError, match="b must be"):
        CombMax(b=0.0)
    with pytest.raises(ConfigError, match="unknown surrogate 'gauss'.*atan"):
        surrogate_from_name("gauss")
    with pytest.raises(ConfigError, match="no parameter.*beta"):
        surrogate_from_name("sigmoid", beta=1.0)
    with pytest.raises(ConfigError, match="name"):
        surrogate_from_dict({"alpha": 1.0})


def test_register_duplicate_raises_and_new_one_is_listed():
    with pytest.raises(ConfigError, match="already registered"):
        register_surrogate(Atan)
    with pytest.raises(ConfigError, match="not a BinarySurrogate"):
        register_surrogate(int)

    @dataclasses.dataclass(frozen=True)
    class Triangle(BinarySurrogate):
        name = "test-triangle"

        def derivative(self, x):
            return torch.clamp(1.0 - x.abs(), min=0.0)

        def primitive(self, x):
            return torch.where(x < 0, 0.5 * torch.clamp(1 + x, min=0) ** 2, 1 - 0.5 * torch.clamp(1 - x, min=0) ** 2)

    try:
        register_surrogate(Triangle)
        assert "test-triangle" in available_surrogates(SurrogateKind.BINARY)
        assert "test-triangle" not in available_surrogates(SurrogateKind.MULTI)
        x = torch.linspace(-1.5, 1.5, 31, dtype=torch.float64) + 0.01
        assert torch.allclose(surrogate_from_name("test-triangle").derivative(x), autograd_derivative(Triangle().primitive, x))
    finally:
        surrogates_module._SURROGATES.pop("test-triangle", None)


def test_kinds_are_distinct_types():
    assert all(isinstance(surrogate_from_name(n), BinarySurrogate) for n in BINARY)
    assert all(isinstance(surrogate_from_name(n), MultiSpikeSurrogate) for n in MULTI)
