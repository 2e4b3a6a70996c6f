"""The membrane potential rectifier φ of InfLoR: values, derivative, firing invariance."""

import pytest
import torch

from spikeconv.neurons import MPR_EPS, mpr, mpr_derivative

# methods.md §2.1 reference table.
U = [-1.0, -0.125, 0.0, 0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 1.0, 1.5, 8.0]
PHI = [-1.0, -0.5, 0.0, 0.0395, 0.1491, 0.3391, 0.5, 0.6609, 0.8509, 0.9605, 1.0, 1.1447, 2.0]
DPHI = [0.3333, 1.3333, 0.2995, 0.5055, 0.9887, 1.5166, 1.6572, 1.5166, 0.9887, 0.5055, 0.2995, 0.2544, 0.0833]


def test_values_and_derivatives_match_the_reference_table():
    u = torch.tensor(U, dtype=torch.float64)
    assert torch.allclose(mpr(u), torch.tensor(PHI, dtype=torch.float64), atol=5e-5)
    assert torch.allclose(mpr_derivative(u), torch.tensor(DPHI, dtype=torch.float64), atol=5e-5)


def _smooth_phi(u):
    """φ written branch by branch, on inputs known to lie inside one branch (autograd-safe)."""
    if (u > 1).all():
        return u ** (1 / 3)
    if (u < 0).all():
        return -((-u) ** (1 / 3))
    return torch.tanh(3 * (u - 0.5)) / (2 * torch.tanh(torch.tensor(1.5, dtype=u.dtype))) + 0.5


@pytest.mark.parametrize(("low", "high"), [(-5.0, -0.01), (0.001, 0.999), (1.001, 9.0)])
def test_handwritten_derivative_equals_autograd_of_each_branch(low, high):
    u = torch.linspace(low, high, 301, dtype=torch.float64, requires_grad=True)
    (expected,) = torch.autograd.grad(_smooth_phi(u).sum(), u)
    (got,) = torch.autograd.grad(mpr(u).sum(), u)
    assert torch.allclose(got, expected, rtol=1e-10)
    assert torch.allclose(mpr_derivative(u.detach()), expected, rtol=1e-10)


def test_gradient_is_finite_at_zero_and_clipped_just_below():
    u = torch.tensor([-1e-9, 0.0, 1e-9], requires_grad=True)
    (grad,) = torch.autograd.grad(mpr(u).sum(), u)
    assert torch.isfinite(grad).all()
    assert grad[0].item() == pytest.approx(MPR_EPS ** (-2 / 3) / 3, rel=1e-5)


def test_firing_invariance_and_monotonicity():
    u = torch.randn(100_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.6 + 0.4
    u = u[(u - 0.5).abs() > 1e-9]  # float rounding at exactly 0.5 is the documented exception
    assert torch.equal(mpr(u) >= 0.5, u >= 0.5)
    ordered = torch.sort(u).values
    assert torch.all(torch.diff(mpr(ordered)) >= 0)


def test_spike_approaching_holds_for_u_at_least_zero_or_at_most_minus_one():
    u = torch.linspace(-4, 4, 8001, dtype=torch.float64)
    spike = (u >= 0.5).to(u.dtype)
    closer = (mpr(u) - spike).abs() <= (u - spike).abs() + 1e-12
    assert closer[(u >= 0) | (u <= -1)].all()
    # ... and fails on (-1, 0), where the cube root moves values away from 0 (methods.md §2.1).
    assert not closer[(u > -0.999) & (u < 0)].any()


def test_continuity_at_the_branch_points():
    eps = 1e-9
    at_zero = mpr(torch.tensor([-eps, 0.0, eps], dtype=torch.float64))
    assert at_zero[1].item() == 0.0
    assert at_zero.abs().max().item() <= 1.01e-3  # cube root of 1e-9 on the left; ~3e-10 on the right
    at_one = mpr(torch.tensor([1 - eps, 1.0, 1 + eps], dtype=torch.float64))
    assert torch.allclose(at_one, torch.ones(3, dtype=torch.float64), atol=1e-8)
