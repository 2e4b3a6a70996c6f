"""Multi-threshold LIF: up to Γ spikes per step (Xu, Liu & Yang 2021, arXiv:2112.07426).

Eqs. 4-5 of the paper, with a zero-th order synapse (the next layer receives the spike count)::

    u[t] = k·u[t−1] + I[t] − V_th·o[t−1]               k = 1 − Δt/τ_m  (0.9 for Δt = 1, τ_m = 10)
    o[t] = clip(⌊u[t] / V_th⌋, 0, Γ)                   Γ = max spikes per step (15)

so a step that would saturate a one-spike LIF keeps the excess, and the reset subtracts exactly
the emitted amount (``V_th`` per spike). The printed Eq. 4 leaves the reset term undecayed; the
exact arrangement was not recovered (methods.md §3.1), so :class:`ResetDecay` keeps the
alternative ``k·(u − V_th·o)`` (reset, then leak; SpikingJelly's order) available.

In charge / fire / reset form the state carried between steps is ``U = k·H − V_th·O`` (or
``k·(H − V_th·O)``) and ``H[t] = U[t−1] + X[t]``, with ``U[0] = 0``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from spikeconv._names import NamedEnum
from spikeconv.errors import ConfigError
from spikeconv.neurons.native import native_ops_for
from spikeconv.neurons.surrogates import CombMax, CombRational, MultiSpikeSurrogate, surrogate_from_dict
from spikeconv.neurons.trainable_base import (
    TrainableNeuron,
    check_finite_positive,
    check_flag,
    keep_for_step_backward,
    step_node_ops,
    sum_over_steps,
)
from spikeconv.neurons.workspace import reusable_empty, scratch

__all__ = ["MultiThresholdConfig", "MultiThresholdLIF", "ResetDecay", "multi_threshold_step"]


class ResetDecay(NamedEnum):
    """Whether the leak also acts on the reset term.

    ``UNDECAYED``: ``u[t] = k·u[t−1] + I[t] − V_th·o[t−1]`` (Eq. 4 as printed, the default);
    ``DECAYED``: ``u[t] = k·(u[t−1] − V_th·o[t−1]) + I[t]`` (reset first, then leak).
    """

    UNDECAYED = "undecayed"
    DECAYED = "decayed"


@dataclass(frozen=True)
class MultiThresholdConfig:
    """Multi-threshold LIF settings (defaults: the paper's Table 1); :meth:`build` makes a module.

    Attributes:
        threshold: V_th (10, in the paper's mV).
        decay: Leak factor k in [0, 1] (``1 − Δt/τ_m`` = 0.9 for τ_m = 10, Δt = 1 [U: Δt lost]).
        max_spikes: Γ, the most spikes per step (>= 1; 15).
        surrogate: Multi-spike surrogate (default: bounded Gaussian comb, a = 1, b = 20).
        reset_decay: Placement of the leak relative to the reset.
        detach_reset: Treat o as a constant in the reset term (default True). With the
            surrogate in membrane units (peak ``a`` per unit of u) the reset path contributes
            ``∂U/∂H = k − V_th·h(H)``, which at ``V_th = 10, a = 1`` reaches −9 near every peak and
            reverses the temporal gradient; measured on digits, keeping it makes training
            diverge while detaching it trains to ~98 %. The paper's BPTT (Eq. 12 reducing to
            Eq. 13 when one term vanishes) is consistent with dropping this term [U].

    At ``V_th = 10`` a network with ordinary BatchNorm (weight 1) hardly reaches threshold at
    initialisation; train it with tdBN (``SnnTrainConfig(tdbn=True)``), which scales every BN
    weight to ``V_th``.
    """

    threshold: float = 10.0
    decay: float = 0.9
    max_spikes: int = 15
    surrogate: MultiSpikeSurrogate = field(default_factory=CombMax)
    reset_decay: ResetDecay = ResetDecay.UNDECAYED
    detach_reset: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "threshold", check_finite_positive("threshold", self.threshold))
        if isinstance(self.decay, bool) or not isinstance(self.decay, int | float) or not 0.0 <= self.decay <= 1.0:
            raise ConfigError(f"decay must be a number in [0, 1], got {self.decay!r}")
        object.__setattr__(self, "decay", float(self.decay))
        if isinstance(self.max_spikes, bool) or not isinstance(self.max_spikes, int) or self.max_spikes < 1:
            raise ConfigError(f"max_spikes must be an integer >= 1, got {self.max_spikes!r}")
        if not isinstance(self.surrogate, MultiSpikeSurrogate):
            raise ConfigError(
                f"a multi-threshold neuron needs a multi-spike surrogate (comb-sum, comb-max, comb-rational), got {self.surrogate!r}"
            )
        if not isinstance(self.reset_decay, ResetDecay):
            raise ConfigError("reset_decay must be a ResetDecay member; use ResetDecay.from_name(...) for strings")
        check_flag("detach_reset", self.detach_reset)

    def build(self) -> MultiThresholdLIF:
        """A new neuron module with this configuration and an empty membrane."""
        return MultiThresholdLIF(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (inverse of :meth:`from_dict`)."""
        return {
            "type": "multi-threshold",
            "threshold": self.threshold,
            "decay": self.decay,
            "max_spikes": self.max_spikes,
            "surrogate": self.surrogate.to_dict(),
            "reset_decay": self.reset_decay.value,
            "detach_reset": self.detach_reset,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MultiThresholdConfig:
        values = {key: value for key, value in data.items() if key != "type"}
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown multi-threshold neuron option(s): {', '.join(sorted(unknown))}")
        if "surrogate" in values:
            values["surrogate"] = surrogate_from_dict(values["surrogate"])
        if "reset_decay" in values:
            values["reset_decay"] = ResetDecay.from_name(values["reset_decay"])
        return cls(**values)


def multi_threshold_step(
    x: Tensor, v: Tensor, threshold: Tensor, decay: Tensor, config: MultiThresholdConfig
) -> tuple[Tensor, Tensor]:
    """One multi-threshold LIF step: ``(I[t], U[t−1]) -> (o[t], U[t])``.

    ``H = U + I``; ``o = clip(⌊H/V_th⌋, 0, Γ)`` (surrogate backward); ``U = k·H − V_th·o``
    (``ResetDecay.UNDECAYED``) or ``k·(H − V_th·o)`` (``DECAYED``). Returns spike counts.
    """
    h = v + x
    spikes = config.surrogate.spikes(h, threshold, config.max_spikes)
    fired = spikes.detach() if config.detach_reset else spikes
    if config.reset_decay is ResetDecay.UNDECAYED:
        return spikes, decay * h - threshold * fired
    return spikes, decay * (h - threshold * fired)


def _multi_threshold_steps(x: Tensor, v: Tensor, threshold: Tensor, decay: Tensor, config: MultiThresholdConfig,
                           num_steps: int, static: bool) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """The forward of :func:`multi_threshold_step` over all steps, op for op, without a graph: H and the spike
    counts of every step ``[K, N, ...]``, and the final membrane."""
    shape = (num_steps, *v.shape)
    h_all, out = v.new_empty(shape), v.new_empty(shape)
    for t in range(num_steps):
        h, o = h_all[t], out[t]
        torch.add(v, x if static else x[t], out=h)
        torch.div(h, threshold, out=o)
        o.floor_().clamp_(0, config.max_spikes)
        if config.reset_decay is ResetDecay.UNDECAYED:
            v = decay * h - threshold * o
        else:
            v = decay * (h - threshold * o)
    return h_all, out, v


def _multi_threshold_steps_native(ops, x: Tensor, v: Tensor, threshold: Tensor, decay: Tensor, config: MultiThresholdConfig,  # noqa: ANN001
                                  num_steps: int, static: bool) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """:func:`_multi_threshold_steps` in the C++ loop: same values, one pass over memory."""
    n, shape = v.shape[0], (num_steps, *v.shape)
    xs = x.reshape(1 if static else num_steps, n, -1).contiguous()
    vs = v.reshape(n, -1).clone()
    h_all, out = v.new_empty(shape), v.new_empty(shape)
    ops.mtlif_run(xs, vs, float(threshold), float(decay), config.max_spikes, out, num_steps, static,
                  config.reset_decay is ResetDecay.DECAYED, h_all)  # fmt: skip
    return h_all, out, vs.view(v.shape)


def _multi_threshold_grads(h_all: Tensor, surrogate: Tensor, threshold: Tensor, decay: Tensor, config: MultiThresholdConfig,
                           grad_out: Tensor, grad_v: Tensor | None) -> tuple[Tensor, Tensor]:  # fmt: skip
    """BPTT through :func:`multi_threshold_step` in torch ops: ``dL/dX[t]`` for every step and ``dL/dU[0]``."""
    grad_x = torch.empty_like(h_all)
    g_v = torch.zeros_like(h_all[0]) if grad_v is None else grad_v
    for t in reversed(range(h_all.shape[0])):
        g_direct = g_v * decay  # U = k·H − θ·O, or k·(H − θ·O): both reach H through k
        g_spikes = grad_out[t]
        if not config.detach_reset:
            g_spikes = g_spikes - (g_v if config.reset_decay is ResetDecay.UNDECAYED else g_direct) * threshold
        g_v = g_direct + g_spikes * surrogate[t]
        grad_x[t] = g_v
    return grad_x, g_v


def _multi_threshold_grads_native(ops, h_all: Tensor, threshold: Tensor, decay: Tensor, config: MultiThresholdConfig,  # noqa: ANN001
                                  grad_out: Tensor, grad_v: Tensor | None, static: bool) -> tuple[Tensor, Tensor]:  # fmt: skip
    """:func:`_multi_threshold_grads` (summed over steps for a static input) in one C++ pass; the surrogate is
    evaluated over all steps at once by torch's vectorised ops (as there), the recurrence in C++."""
    c, (k, n) = config, h_all.shape[:2]
    slopes = c.surrogate.derivative(h_all, threshold, c.max_spikes)
    g_v = h_all.new_zeros((n, h_all[0, 0].numel())) if grad_v is None else grad_v.reshape(n, -1).clone()
    grad_x = h_all.new_empty(h_all.shape[1:] if static else h_all.shape)
    ops.mtlif_bptt(grad_out.reshape(k, n, -1).contiguous(), slopes.reshape(k, n, -1).contiguous(), g_v,
                   grad_x.view(*grad_x.shape[: 1 if static else 2], -1), static, c.reset_decay is ResetDecay.DECAYED,
                   c.detach_reset, float(threshold), float(decay))  # fmt: skip
    return grad_x, g_v.view(h_all.shape[1:])


class _MultiThresholdBPTT(torch.autograd.Function):
    """Every step of :func:`multi_threshold_step` as one autograd node; the backward is BPTT written out.

    Why: as for the binary neurons (:class:`~spikeconv.neurons.binary_nodes._BinaryBPTT`): one saved H,
    the comb surrogate evaluated once over all steps, the recurrence in one C++ pass (float32 on CPU;
    torch ops elsewhere), each gradient the same float expression autograd forms on the step loop.
    """

    @staticmethod
    def forward(ctx, x, v, threshold, decay, config, num_steps, static):  # noqa: ANN001, ANN205 - autograd's signature
        ops = native_ops_for(x, v) if x.dtype == v.dtype == torch.float32 else None
        if ops is not None:
            h_all, out, v_last = _multi_threshold_steps_native(ops, x, v, threshold, decay, config, num_steps, static)
        else:
            h_all, out, v_last = _multi_threshold_steps(x, v, threshold, decay, config, num_steps, static)
        ctx.save_for_backward(h_all, threshold, decay)
        ctx.config, ctx.static, ctx.ops = config, static, ops
        return out, v_last

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_v):  # noqa: ANN001, ANN205
        h_all, threshold, decay = ctx.saved_tensors
        c = ctx.config
        native = ctx.ops is not None and grad_out.dtype == torch.float32 and (grad_v is None or grad_v.dtype == torch.float32)
        if native:
            grad_x, g_v = _multi_threshold_grads_native(ctx.ops, h_all, threshold, decay, c, grad_out, grad_v, ctx.static)
        else:
            surrogate = c.surrogate.derivative(h_all, threshold, c.max_spikes)
            grad_x, g_v = _multi_threshold_grads(h_all, surrogate, threshold, decay, c, grad_out, grad_v)
            grad_x = sum_over_steps(grad_x) if ctx.static else grad_x
        return grad_x, g_v if ctx.needs_input_grad[1] else None, None, None, None, None, None


def _step_node_ops(x: Tensor, v: Tensor, threshold: Tensor, decay: Tensor, config: MultiThresholdConfig):  # noqa: ANN202
    """:func:`~spikeconv.neurons.trainable_base.step_node_ops` for :class:`_MultiThresholdStep`, which also needs a
    comb-max or comb-rational surrogate."""
    if type(config.surrogate) not in (CombMax, CombRational):
        return None
    return step_node_ops(x, v, threshold, decay)


class _MultiThresholdStep(torch.autograd.Function):
    """One step of :func:`multi_threshold_step` as one autograd node, for the step loop.

    Why: op by op a step records six nodes and as many membrane-sized tensors; here the forward is the inference
    kernels' C++ step and the backward one C++ pass after the comb's ``exp`` (torch's, on a tensor of the step's
    size): autograd's float expressions on that step, so trained weights are bit-identical
    (``tests/neurons/test_native_training.py``).
    """

    @staticmethod
    def forward(ctx, x, v, threshold, decay, config, ops):  # noqa: ANN001, ANN205 - autograd's signature
        n = v.shape[0]
        h, spikes, v_next = torch.empty_like(v), torch.empty_like(v), v.clone()
        ops.mtlif_run(x.reshape(1, n, -1), v_next.view(n, -1), float(threshold), float(decay), config.max_spikes, spikes, 1, True,
                      config.reset_decay is ResetDecay.DECAYED, h)  # fmt: skip
        keep_for_step_backward(ctx, config, ops, h, threshold, decay)
        return spikes, v_next

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_spikes, grad_v):  # noqa: ANN001, ANN205
        h, threshold, decay = ctx.saved_tensors
        c, ops = ctx.config, ctx.ops
        surrogate, rational = c.surrogate, type(c.surrogate) is CombRational
        if grad_spikes is None:
            grad_spikes = torch.zeros_like(h)
        none = h.new_empty(0)
        ex = none
        if not rational:  # comb-max: exp's argument in one pass, then torch's exp on a tensor of the step's size
            ex = scratch(h.shape, h, key="comb")
            ops.comb_slope(h, ex, float(threshold), c.max_spikes, surrogate.b, surrogate.a, 0)
            ex.exp_()
        grad_x = torch.empty_like(h)
        ops.mtlif_step_grad(grad_spikes.contiguous(), none if grad_v is None else grad_v.contiguous(), h, ex, grad_x, float(threshold),
                            c.max_spikes, surrogate.b, surrogate.a, float(decay), rational, c.reset_decay is ResetDecay.DECAYED,
                            c.detach_reset)  # fmt: skip
        return grad_x, grad_x, None, None, None, None


class MultiThresholdLIF(TrainableNeuron):
    """Multi-threshold LIF neuron emitting integer spike counts 0..Γ per step.

    Dynamics: :func:`multi_threshold_step`. Buffers: ``threshold`` (V_th), ``decay`` (k).
    Shapes as :class:`~spikeconv.neurons.trainable_base.TrainableNeuron`.
    """

    def __init__(self, config: MultiThresholdConfig) -> None:
        super().__init__()
        if not isinstance(config, MultiThresholdConfig):
            raise ConfigError(f"MultiThresholdLIF needs a MultiThresholdConfig, got {type(config).__name__}")
        self.config = config
        self.register_buffer("threshold", torch.tensor(config.threshold))
        self.register_buffer("decay", torch.tensor(config.decay))

    def extra_repr(self) -> str:
        c = self.config
        surrogate = f"{c.surrogate.name}(a={c.surrogate.a:g}, b={c.surrogate.b:g})"
        return f"V_th={c.threshold:g}, k={c.decay:g}, Γ={c.max_spikes}, surrogate={surrogate}"

    def step(self, x: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        threshold, decay = self.threshold.to(x.dtype), self.decay.to(x.dtype)
        ops = _step_node_ops(x, v, threshold, decay, self.config)
        if ops is not None:
            return _MultiThresholdStep.apply(x, v, threshold, decay, self.config, ops)
        return multi_threshold_step(x, v, threshold, decay, self.config)

    def fast_forward(self, x: Tensor, v: Tensor, num_steps: int, static: bool) -> tuple[Tensor, Tensor] | None:
        c = self.config
        ops = native_ops_for(x, v)
        if (ops is None or type(c.surrogate).spikes is not MultiSpikeSurrogate.spikes or x.dtype != torch.float32
                or v.dtype != torch.float32 or x.device.type != "cpu" or self.threshold.dim() or self.decay.dim() or v.numel() == 0):
            return None  # fmt: skip
        xs = x.reshape(1 if static else num_steps, v.shape[0], -1).contiguous()
        vs = v.reshape(v.shape[0], -1).clone()
        out = reusable_empty(self, "out", (num_steps, *v.shape), v)
        ops.mtlif_run(xs, vs, float(self.threshold), float(self.decay), c.max_spikes, out, num_steps, static,
                      c.reset_decay is ResetDecay.DECAYED, v.new_empty(0))  # fmt: skip
        return out, vs.view(v.shape)

    def fused_bptt(self, x: Tensor, v: Tensor, num_steps: int, static: bool) -> tuple[Tensor, Tensor] | None:
        c = self.config
        if type(c.surrogate).spikes is not MultiSpikeSurrogate.spikes or self.threshold.dim() or self.decay.dim() or v.numel() == 0:
            return None
        return _MultiThresholdBPTT.apply(x, v, self.threshold.to(x.dtype), self.decay.to(x.dtype), c, num_steps, static)
