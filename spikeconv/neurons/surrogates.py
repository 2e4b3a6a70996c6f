"""Surrogate gradients: exact spikes forward, a smooth stand-in for their derivative backward.

A spike is a step function of the membrane, so its true derivative is zero almost everywhere
and training by backpropagation through time (BPTT) needs a surrogate (Neftci et al. 2019).
Each surrogate here is a frozen dataclass holding its shape parameters, with

* ``derivative(...)``: the handwritten backward (what training uses), and
* ``primitive(...)``: a smooth function whose autograd derivative equals ``derivative``; tests
  check the two against each other, so a mistyped backward cannot hide.

Two kinds exist. *Binary* surrogates replace ``Θ'(x)`` for one spike per step, with
``x = M − V_th`` (the rectified membrane minus the threshold). *Multi-spike* surrogates replace
the derivative of ``o = clip(⌊u/θ⌋, 0, Γ)`` (multi-threshold LIF, Xu, Liu & Yang 2021,
arXiv:2112.07426), a comb of Dirac impulses at ``u = θ, 2θ, …, Γθ``.

The registry maps CLI/JSON names to classes (``register_surrogate`` raises on a duplicate;
``available_surrogates`` feeds the CLI choices), and ``to_dict``/``surrogate_from_dict`` carry a
surrogate through checkpoints.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar

import torch
from torch import Tensor

from spikeconv.errors import ConfigError
from spikeconv.neurons.native import float32_ops_for as _native  # a module name, so it can be switched off here

__all__ = [
    "Atan",
    "BinarySurrogate",
    "CombMax",
    "CombRational",
    "CombSum",
    "MultiSpikeSurrogate",
    "Rectangular",
    "Sigmoid",
    "Surrogate",
    "SurrogateKind",
    "available_surrogates",
    "register_surrogate",
    "surrogate_from_dict",
    "surrogate_from_name",
]


class SurrogateKind(Enum):
    """Which spike function a surrogate stands in for."""

    BINARY = "binary"  # Θ(x): one spike per step
    MULTI = "multi"  # clip(⌊u/θ⌋, 0, Γ): up to Γ spikes per step


def _check_positive(owner: object, **values: float) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise ConfigError(f"{type(owner).__name__}.{name} must be a finite number > 0, got {value!r}")


@dataclass(frozen=True)
class Surrogate:
    """Base class: a named, parameterised surrogate gradient."""

    name: ClassVar[str] = ""
    kind: ClassVar[SurrogateKind]

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"name": ..., <parameters>}`` (inverse of :func:`surrogate_from_dict`)."""
        return {"name": self.name, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class BinarySurrogate(Surrogate):
    """Surrogate for the Heaviside spike ``O = Θ(x)``, ``x = M − V_th``."""

    kind: ClassVar[SurrogateKind] = SurrogateKind.BINARY

    def derivative(self, x: Tensor) -> Tensor:
        """σ'(x): the value used for ∂O/∂x in the backward pass."""
        raise NotImplementedError

    def primitive(self, x: Tensor) -> Tensor:
        """σ(x): a smooth step whose derivative is :meth:`derivative`."""
        raise NotImplementedError

    def spike(self, x: Tensor) -> Tensor:
        """``Θ(x)`` (1 where ``x ≥ 0``) forward, :meth:`derivative` backward."""
        return _HeavisideSpike.apply(x, self)


class _HeavisideSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, surrogate: BinarySurrogate) -> Tensor:
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        ops = _native(x)
        if ops is None:
            return (x >= 0).to(x.dtype)
        out = torch.empty_like(x)
        ops.heaviside(x, out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        return grad * ctx.surrogate.derivative(x), None


@dataclass(frozen=True)
class Rectangular(BinarySurrogate):
    """Straight-through window: ``σ'(x) = 1/w`` for ``|x| ≤ w/2``, else 0.

    Primitive ``σ(x) = clip(x/w + 1/2, 0, 1)``. With ``V_th = 0.5`` and the default ``w = 1`` the
    window is ``0 ≤ M ≤ 1`` at height 1, the natural reading of the rectangular surrogate used by
    InfLoR's group (Guo et al. 2022; not recovered from the paper, methods.md §2.4).
    """

    name: ClassVar[str] = "rectangular"
    width: float = 1.0

    def __post_init__(self) -> None:
        _check_positive(self, width=self.width)

    def derivative(self, x: Tensor) -> Tensor:
        ops = _native(x)
        if ops is not None:
            out = torch.empty_like(x)
            ops.rectangular_slope(x, out, self.width / 2, self.width)
            return out
        # (|x| ≤ w/2) as 1.0/0.0 written in place, then / w: one fresh tensor instead of three
        return x.abs().le_(self.width / 2).div_(self.width)

    def primitive(self, x: Tensor) -> Tensor:
        return torch.clamp(x / self.width + 0.5, 0.0, 1.0)


@dataclass(frozen=True)
class Sigmoid(BinarySurrogate):
    """Sigmoid surrogate: ``σ(x) = sigmoid(αx)``, ``σ'(x) = α·σ(x)·(1 − σ(x))`` (peak α/4)."""

    name: ClassVar[str] = "sigmoid"
    alpha: float = 4.0

    def __post_init__(self) -> None:
        _check_positive(self, alpha=self.alpha)

    def derivative(self, x: Tensor) -> Tensor:
        s = torch.sigmoid(self.alpha * x)
        return self.alpha * s * (1.0 - s)

    def primitive(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.alpha * x)


@dataclass(frozen=True)
class Atan(BinarySurrogate):
    """Arctangent surrogate (SpikingJelly's ``ATan``): ``σ(x) = atan(παx/2)/π + 1/2``.

    ``σ'(x) = (α/2) / (1 + (παx/2)²)``, peak α/2; heavier tails than the sigmoid.
    """

    name: ClassVar[str] = "atan"
    alpha: float = 2.0

    def __post_init__(self) -> None:
        _check_positive(self, alpha=self.alpha)

    def derivative(self, x: Tensor) -> Tensor:
        return (self.alpha / 2) / (1.0 + (math.pi / 2 * self.alpha * x) ** 2)

    def primitive(self, x: Tensor) -> Tensor:
        return torch.atan(math.pi / 2 * self.alpha * x) / math.pi + 0.5


@dataclass(frozen=True)
class MultiSpikeSurrogate(Surrogate):
    """Surrogate for ``o = clip(⌊u/θ⌋, 0, Γ)``: a smooth comb with Γ peaks at ``u = kθ``.

    Xu, Liu & Yang (arXiv:2112.07426, Eqs. 14-16) propose three curves with an amplitude ``a``
    and a width ``b``; the paper's formulas were not recovered (methods.md §3.3), so the three
    spikeconv curves below are reconstructions with the documented properties: curve 1 can
    exceed ``a`` (overlapping peaks add up), curves 2 and 3 are bounded by ``a``, larger ``b``
    means wider peaks, and ``a = 1, b = 20`` are the defaults. Every curve is written in
    membrane units, ``d_k = u − kθ``, with ``b`` playing the role of a variance: with the paper's
    ``θ = 10`` and ``b = 20`` a peak's standard deviation is ``√(b/2) ≈ 3.2 = 0.32θ``.
    """

    kind: ClassVar[SurrogateKind] = SurrogateKind.MULTI
    a: float = 1.0
    b: float = 20.0

    def __post_init__(self) -> None:
        _check_positive(self, a=self.a, b=self.b)

    def derivative(self, u: Tensor, threshold: Tensor, max_spikes: int) -> Tensor:
        """h(u): the value used for ∂o/∂u in the backward pass."""
        raise NotImplementedError

    def primitive(self, u: Tensor, threshold: Tensor, max_spikes: int) -> Tensor:
        """A smooth staircase whose derivative is :meth:`derivative` (up to a constant)."""
        raise NotImplementedError

    def spikes(self, u: Tensor, threshold: Tensor, max_spikes: int) -> Tensor:
        """``clip(⌊u/θ⌋, 0, Γ)`` forward (spike counts), :meth:`derivative` backward."""
        return _MultiSpike.apply(u, threshold, max_spikes, self)


class _MultiSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, u: Tensor, threshold: Tensor, max_spikes: int, surrogate: MultiSpikeSurrogate) -> Tensor:
        ctx.save_for_backward(u, threshold)
        ctx.max_spikes = max_spikes
        ctx.surrogate = surrogate
        return torch.clamp(torch.floor(u / threshold), 0, max_spikes)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:
        u, threshold = ctx.saved_tensors
        return grad * ctx.surrogate.derivative(u, threshold, ctx.max_spikes), None, None, None


def _nearest_peak(u: Tensor, threshold: Tensor, max_spikes: int) -> Tensor:
    """``d = u − k*θ`` with ``k* = clip(round(u/θ), 1, Γ)``, the closest of the Γ peaks."""
    k = torch.clamp(torch.round(u / threshold), 1, max_spikes)
    return u - k * threshold


def _cell(u: Tensor, threshold: Tensor, k: int, max_spikes: int) -> Tensor:
    """``u`` clipped to the cell where peak ``k`` is the nearest: ``[(k − ½)θ, (k + ½)θ]``.

    The first cell is open to −∞ and the last to +∞, so the cells tile the real line.
    """
    low = None if k == 1 else (k - 0.5) * threshold
    high = None if k == max_spikes else (k + 0.5) * threshold
    if low is None and high is None:
        return u
    return torch.clamp(u, min=low, max=high)


@dataclass(frozen=True)
class CombSum(MultiSpikeSurrogate):
    """Curve 1 stand-in, unbounded: ``h(u) = a·Σ_{k=1..Γ} exp(−(u − kθ)²/b)``.

    Neighbouring peaks add up, so h exceeds ``a`` (at ``u = kθ`` it is ``a·(1 + 2e^{−θ²/b} + …)``)
    — the exploding-gradient risk the paper reports for its curve 1. Primitive:
    ``a·√(πb)/2·Σ_k erf((u − kθ)/√b)``.
    """

    name: ClassVar[str] = "comb-sum"

    def derivative(self, u: Tensor, threshold: Tensor, max_spikes: int) -> Tensor:
        total = torch.zeros_like(u)
        for k in range(1, max_spikes + 1):
            total = total + torch.exp(-((u - k * threshold) ** 2) / self.b)
        return self.a * total

    def primitive(self, u: Tensor, threshold: Tensor, max_spikes: int) -> Tensor:
        scale = self.a * math.sqrt(math.pi * self.b) / 2
        root_b = math.sqrt(self.b)
        return scale * sum(torch.erf((u - k * threshold) / root_b) for k in range(1, max_spikes + 1))


@dataclass(frozen=True)
class CombMax(MultiSpikeSurrogate):
    """Curve 2 stand-in (the paper's choice), bounded by ``a``: ``h(u) = a·max_k exp(−(u − kθ)²/b)``.

    The maximum over Gaussians is the Gaussian of the nearest peak, so one ``exp`` per element.
    Primitive: the sum over k of that Gaussian's integral over its own cell (see ``_cell``),
    ``a·√(πb)/2·erf((clip_k(u) − kθ)/√b)``.
    """

    name: ClassVar[str] = "comb-max"

    def derivative(self, u: Tensor, threshold: Tensor, max_spikes: int) -> Tensor:
        ops = _native(u, threshold)
        if ops is not None:  # exp's argument in one pass, torch's exp on a tensor of u's size, then a·exp
            out = torch.empty_like(u)
            ops.comb_slope(u, out, float(threshold), max_spikes, self.b, self.a, 0)
            ops.comb_slope(u, out.exp_(), float(threshold), max_spikes, self.b, self.a, 1)
            return out
        return self.a * torch.exp(-(_nearest_peak(u, threshold, max_spikes) ** 2) / self.b)

    def primitive(self, u: Tensor, threshold: Tensor, max_spikes: int) -> Tensor:
        scale = self.a * math.sqrt(math.pi * self.b) / 2
        root_b = math.sqrt(self.b)
        return scale * sum(
            torch.erf((_cell(u, threshold, k, max_spikes) - k * threshold) / root_b) for k in range(1, max_spikes + 1)
        )


@dataclass(frozen=True)
class CombRational(MultiSpikeSurrogate):
    """Curve 3 stand-in, bounded by ``a`` with heavier tails: ``h(u) = a·max_k 1/(1 + (u − kθ)²/b)``.

    Primitive: ``a·√b·Σ_k atan((clip_k(u) − kθ)/√b)`` over the nearest-peak cells.
    """

    name: ClassVar[str] = "comb-rational"

    def derivative(self, u: Tensor, threshold: Tensor, max_spikes: int) -> Tensor:
        ops = _native(u, threshold)
        if ops is not None:
            out = torch.empty_like(u)
            ops.comb_slope(u, out, float(threshold), max_spikes, self.b, self.a, 2)
            return out
        # a / t is torch's reciprocal(t)·a (Tensor.__rtruediv__), which the C++ pass repeats
        return self.a / (1.0 + _nearest_peak(u, threshold, max_spikes) ** 2 / self.b)

    def primitive(self, u: Tensor, threshold: Tensor, max_spikes: int) -> Tensor:
        root_b = math.sqrt(self.b)
        return (self.a * root_b) * sum(
            torch.atan((_cell(u, threshold, k, max_spikes) - k * threshold) / root_b) for k in range(1, max_spikes + 1)
        )


_SURROGATES: dict[str, type[Surrogate]] = {}


def register_surrogate(cls: type[Surrogate]) -> type[Surrogate]:
    """Make a surrogate class available by its ``name`` (usable as a class decorator).

    Raises:
        ConfigError: The class is not a BinarySurrogate/MultiSpikeSurrogate dataclass, has no
            name, or its name is already registered.
    """
    if not (isinstance(cls, type) and issubclass(cls, BinarySurrogate | MultiSpikeSurrogate)):
        raise ConfigError(f"{cls!r} is not a BinarySurrogate or MultiSpikeSurrogate subclass")
    if not cls.name:
        raise ConfigError(f"surrogate class {cls.__name__} needs a non-empty ClassVar 'name'")
    if cls.name in _SURROGATES:
        raise ConfigError(f"surrogate {cls.name!r} is already registered ({_SURROGATES[cls.name].__name__}); pick another name")
    _SURROGATES[cls.name] = cls
    return cls


def available_surrogates(kind: SurrogateKind | None = None) -> list[str]:
    """Registered surrogate names, sorted; only those of ``kind`` when given."""
    return sorted(name for name, cls in _SURROGATES.items() if kind is None or cls.kind is kind)


def surrogate_from_name(name: str, **params: float) -> Surrogate:
    """Build the surrogate registered as ``name`` with the given shape parameters.

    Raises:
        ConfigError: Unknown name or parameter, or an invalid value.
    """
    cls = _SURROGATES.get(str(name).strip().lower().replace("_", "-"))
    if cls is None:
        raise ConfigError(f"unknown surrogate {name!r}; choose one of: {', '.join(available_surrogates())}")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - fields)
    if unknown:
        raise ConfigError(f"surrogate {cls.name!r} has no parameter(s) {', '.join(unknown)}; it takes: {', '.join(sorted(fields))}")
    return cls(**params)


def surrogate_from_dict(data: dict[str, Any]) -> Surrogate:
    """Rebuild a surrogate from :meth:`Surrogate.to_dict` output."""
    if not isinstance(data, dict) or "name" not in data:
        raise ConfigError(f"a surrogate must be a dict with a 'name', got {data!r}")
    params = {key: value for key, value in data.items() if key != "name"}
    return surrogate_from_name(data["name"], **params)


for _cls in (Rectangular, Sigmoid, Atan, CombSum, CombMax, CombRational):
    register_surrogate(_cls)
