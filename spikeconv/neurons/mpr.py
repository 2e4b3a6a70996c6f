"""The membrane potential rectifier (MPR) of InfLoR (Guo et al., ECCV 2022; arXiv:2307.04356).

MPR redistributes the membrane potential *presented to the firing function* towards the spike
values 0 and 1, without touching the potential that integrates input and is reset
(methods.md §2.1-2.2)::

    φ(u) = −(−u)^(1/3)                                   u < 0
    φ(u) = tanh(3(u − 1/2)) / (2·tanh(3/2)) + 1/2         0 ≤ u ≤ 1
    φ(u) = u^(1/3)                                       u > 1

φ is continuous and strictly increasing with ``φ(0) = 0``, ``φ(1/2) = 1/2``, ``φ(1) = 1``, so
with ``V_th = 0.5`` the forward spikes are exactly those without MPR (*firing invariance*); the
rectified value lies closer to its spike value than u for ``u ≥ 0`` (*spike approaching*).
MPR therefore acts only on training, through the surrogate evaluated at φ(H) and the extra
chain factor φ'(H). The formula is as recalled in methods.md ([U]); the tests pin its table.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from spikeconv.neurons.native import float32_ops_for as _native  # a module name, so it can be switched off here
from spikeconv.neurons.surrogates import BinarySurrogate, Rectangular
from spikeconv.neurons.workspace import scratch

__all__ = ["MPR_EPS", "MPR_SLOPE_SCALE", "MPR_SPAN", "MPR_THRESHOLD", "mpr", "mpr_derivative", "mpr_spike", "mpr_value"]

MPR_THRESHOLD = 0.5
"""MPR keeps every forward spike only when ``V_th = φ(V_th) = 0.5``."""

_TANH_HALF_SPAN = math.tanh(1.5)
MPR_EPS = 1e-3
"""|u| floor inside the cube-root branches' derivative: φ'(u) = |u|^(-2/3)/3 is unbounded at 0⁻,
so φ' is evaluated at ``max(|u|, MPR_EPS)`` there (at most ``MPR_EPS^(-2/3)/3 ≈ 33``)."""
MPR_SPAN = 2.0 * _TANH_HALF_SPAN
"""φ(u) on ``[0, 1]`` is ``tanh(3(u − 1/2))/MPR_SPAN + 1/2``."""
MPR_SLOPE_SCALE = 3.0 / (2.0 * _TANH_HALF_SPAN)
"""φ'(u) on ``[0, 1]`` is ``MPR_SLOPE_SCALE·(1 − tanh²(3(u − 1/2)))``."""


def mpr_parts(ops, u: Tensor, derivative: bool) -> tuple[Tensor, Tensor]:  # noqa: ANN001
    """``tanh(3(u − 1/2))`` and ``|u|^(1/3)`` (φ) or ``max(|u|, eps)^(−2/3)`` (φ'), in this thread's scratch buffers
    (one pair for φ, one for φ'; valid until the next call): torch's own ``tanh_`` and ``pow_`` on tensors of u's
    size, so they round as in the torch formulas below. For the C++ passes that finish φ and φ' themselves."""
    t, r = scratch((2, *u.shape), u, key="mpr'" if derivative else "mpr").unbind(0)  # reused, not page-faulted afresh
    ops.mpr_parts(u, t, r, MPR_EPS, derivative)
    t.tanh_()
    r.pow_(-2.0 / 3.0 if derivative else 1.0 / 3.0)
    return t, r


def mpr_parts_both(ops, u: Tensor) -> tuple[Tensor, Tensor, Tensor]:  # noqa: ANN001
    """:func:`mpr_parts` for φ and φ' at once: ``tanh(3(u − 1/2))`` (one tanh serves both), ``|u|^(1/3)`` and
    ``max(|u|, eps)^(−2/3)``, in this thread's scratch buffers (valid until the next call)."""
    t, r1, r2 = scratch((3, *u.shape), u, key="mpr both").unbind(0)
    ops.mpr_parts_both(u, t, r1, r2, MPR_EPS)
    t.tanh_()
    r1.pow_(1.0 / 3.0)
    r2.pow_(-2.0 / 3.0)
    return t, r1, r2


def _native_mpr(ops, u: Tensor, derivative: bool) -> Tensor:  # noqa: ANN001
    """φ(u) or φ'(u) in two C++ passes around torch's ``tanh_`` and ``pow_``: the torch formulas' floats."""
    t, r = mpr_parts(ops, u, derivative)
    out = torch.empty_like(u)
    ops.mpr_join(u, t, r, out, MPR_SLOPE_SCALE if derivative else 2.0 * _TANH_HALF_SPAN, derivative)
    return out


def _phi(u: Tensor) -> Tensor:
    ops = _native(u)
    if ops is not None:
        return _native_mpr(ops, u, derivative=False)
    # Outer branches as sign(u)·|u|^(1/3): torch.pow of a negative base is NaN. In-place ops on two fresh
    # tensors (a fresh large CPU tensor costs page faults), the same values as the out-of-place formula.
    inside = (u >= 0).logical_and_(u <= 1)
    cube_root = u.abs().pow_(1.0 / 3.0).mul_(torch.sign(u))
    middle = (u - 0.5).mul_(3.0).tanh_().div_(2.0 * _TANH_HALF_SPAN).add_(0.5)
    return torch.where(inside, middle, cube_root)


def mpr_value(u: Tensor) -> Tensor:
    """φ(u) with no autograd node: for callers that save ``u`` and apply :func:`mpr_derivative` themselves."""
    return _phi(u)


def mpr_derivative(u: Tensor) -> Tensor:
    """φ'(u), with the cube-root branches' singularity at 0 clipped by :data:`MPR_EPS`.

    ``φ'(u) = (3/(2·tanh(3/2)))·(1 − tanh²(3(u − 1/2)))`` on ``[0, 1]`` and ``|u|^(−2/3)/3``
    outside.
    """
    ops = _native(u)
    if ops is not None:
        return _native_mpr(ops, u, derivative=True)
    # in place on two fresh tensors, the same values as the formula: t² is t·t, 1 − t² is (−t²) + 1, exactly
    inside = (u >= 0).logical_and_(u <= 1)
    middle = (u - 0.5).mul_(3.0).tanh_()
    middle.mul_(middle).neg_().add_(1.0).mul_(MPR_SLOPE_SCALE)
    outer = u.abs().clamp_min_(MPR_EPS).pow_(-2.0 / 3.0).div_(3.0)
    return torch.where(inside, middle, outer)


class _Rectifier(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, u: Tensor) -> Tensor:
        ctx.save_for_backward(u)
        return _phi(u)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (u,) = ctx.saved_tensors
        return grad * mpr_derivative(u)


def mpr(u: Tensor) -> Tensor:
    """φ(u) elementwise, any shape; the backward is :func:`mpr_derivative` (finite everywhere)."""
    return _Rectifier.apply(u)


class _MPRFire(torch.autograd.Function):
    """``Θ(φ(h) − θ)`` forward, ``g·σ'(φ(h) − θ)·φ'(h)`` backward: :func:`mpr` followed by ``surrogate.spike``.

    Why: as two autograd nodes with a subtraction between them, a step of a ``srif --mpr`` neuron makes six fresh
    membrane-sized tensors and about ten passes over them; here the forward is one C++ pass after tanh/pow and
    the backward one after them (the rectangular window computed in it), with the same floats in the same order.
    """

    @staticmethod
    def forward(ctx, h, threshold, surrogate, ops):  # noqa: ANN001, ANN205 - autograd's signature
        t, r = mpr_parts(ops, h, derivative=False)
        x, spikes = torch.empty_like(h), torch.empty_like(h)
        ops.mpr_fire(h, t, r, x, spikes, MPR_SPAN, float(threshold))
        ctx.save_for_backward(h, x)
        ctx.surrogate, ctx.ops = surrogate, ops
        return spikes

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        h, x = ctx.saved_tensors
        surrogate = ctx.surrogate
        rectangular = type(surrogate) is Rectangular
        slope = x if rectangular else surrogate.derivative(x).contiguous()
        grad = grad.contiguous()
        t, r = mpr_parts(ctx.ops, h, derivative=True)
        out = torch.empty_like(h)
        width = surrogate.width if rectangular else 1.0
        ctx.ops.mpr_fire_grad(h, t, r, grad, slope, out, MPR_SLOPE_SCALE, rectangular, width / 2, width)
        return out, None, None, None


def mpr_spike(h: Tensor, threshold: Tensor, surrogate: BinarySurrogate) -> Tensor:
    """``surrogate.spike(mpr(h) − threshold)``: the spikes of a neuron with MPR, through :class:`_MPRFire` where it
    applies (a float32 CPU membrane, one threshold value without a gradient, the binary surrogates' Heaviside)."""
    ops = _native(h)
    if ops is None or threshold.numel() != 1 or threshold.requires_grad or type(surrogate).spike is not BinarySurrogate.spike:
        return surrogate.spike(mpr(h) - threshold)
    return _MPRFire.apply(h, threshold, surrogate, ops)
