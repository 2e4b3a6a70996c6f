"""Trainable binary spiking neurons: hard-reset IF/LIF, SRIF, and the MPR switch (InfLoR).

All follow the charge / fire / reset form of Fang et al. (ICCV 2021) used by InfLoR (Guo et al.,
ECCV 2022), with ``V_reset = 0`` and ``U[0] = 0`` (methods.md §1-2)::

    charge:   H[t] = U[t−1] + X[t]                         (Charge.IF)
              H[t] = U[t−1] + (X[t] − U[t−1]) / τ          (Charge.LIF)
    rectify:  M[t] = φ(H[t])  with MPR,  M[t] = H[t]  without
    fire:     O[t] = Θ(M[t] − V_th)                         (surrogate gradient backward)
    reset:    U[t] = H[t] − O[t]                            (Reset.SUBTRACT: "soft", SRIF)
              U[t] = H[t]·(1 − O[t])                        (Reset.ZERO: "hard")

Spikes are 0/1 and SRIF subtracts the spike *value* 1, not ``V_th``: with ``V_th = 0.5`` this is
the only reading under which InfLoR's worked example (inputs 1.5, 1.2, 1.5, 0.9, 1.4 × V_th) gives
its three SRIF spikes against four for hard-reset IF. MPR changes only the value the firing
function sees (the reset still uses H), so SRIF, SRIF+MPR, IF+MPR and LIF+MPR all exist.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from spikeconv._names import NamedEnum
from spikeconv.errors import ConfigError, DataError
from spikeconv.neurons.if_neuron import SpikingNeuron
from spikeconv.neurons.mpr import MPR_SLOPE_SCALE, MPR_SPAN, mpr_derivative, mpr_parts_both, mpr_spike, mpr_value
from spikeconv.neurons.native import native_ops_for
from spikeconv.neurons.strategies import Reset
from spikeconv.neurons.surrogates import BinarySurrogate, Rectangular, surrogate_from_dict
from spikeconv.neurons.workspace import reusable_empty

__all__ = ["BinaryNeuronConfig", "BinarySpikingNeuron", "Charge", "TrainableNeuron", "binary_neuron_step"]

MPR_THRESHOLD = 0.5
"""MPR keeps every forward spike only when ``V_th = φ(V_th) = 0.5``."""


class Charge(NamedEnum):
    """How the membrane integrates input: ``IF`` adds it (addition only, hardware friendly);
    ``LIF`` leaks towards it with time constant τ (more biological)."""

    IF = "if"
    LIF = "lif"


def check_finite_positive(name: str, value: object) -> float:
    """``value`` as a float, or a one-line ConfigError unless it is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return value


@dataclass(frozen=True)
class BinaryNeuronConfig:
    """One binary trainable neuron type; :meth:`build` makes a fresh module per call site.

    Attributes:
        charge: IF or LIF charging.
        reset: ``Reset.SUBTRACT`` (subtract the emitted spike, SRIF) or ``Reset.ZERO`` (hard).
        mpr: Present φ(H) instead of H to the firing function (needs ``threshold = 0.5``).
        threshold: V_th (0.5 per methods.md §1.3).
        tau: LIF membrane time constant τ > 1 (SpikingJelly's default 2; InfLoR's value was not
            recovered); unused by IF.
        surrogate: Binary surrogate gradient (default: unit-height window on ``0 ≤ M ≤ 1``).
        detach_reset: Treat O as a constant in the reset (a common BPTT simplification); the
            default keeps ∂U/∂H = 1 − ∂O/∂H.
    """

    charge: Charge = Charge.IF
    reset: Reset = Reset.SUBTRACT
    mpr: bool = False
    threshold: float = 0.5
    tau: float = 2.0
    surrogate: BinarySurrogate = field(default_factory=Rectangular)
    detach_reset: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.charge, Charge) or not isinstance(self.reset, Reset):
            raise ConfigError("charge and reset must be Charge and Reset members; use Charge.from_name(...) for strings")
        if not isinstance(self.surrogate, BinarySurrogate):
            raise ConfigError(f"a binary neuron needs a binary surrogate (rectangular, sigmoid, atan, ...), got {self.surrogate!r}")
        object.__setattr__(self, "threshold", check_finite_positive("threshold", self.threshold))
        object.__setattr__(self, "tau", check_finite_positive("tau", self.tau))
        check_flag("mpr", self.mpr)
        check_flag("detach_reset", self.detach_reset)
        if self.tau < 1:
            raise ConfigError(f"tau must be >= 1 (the leak 1/tau is a fraction), got {self.tau!r}")
        if self.mpr and self.threshold != MPR_THRESHOLD:
            raise ConfigError(
                f"MPR is defined for threshold {MPR_THRESHOLD} (φ(0.5) = 0.5 keeps the spikes unchanged), got {self.threshold}; "
                "use threshold 0.5 or turn MPR off"
            )

    def build(self) -> BinarySpikingNeuron:
        """A new neuron module with this configuration and an empty membrane."""
        return BinarySpikingNeuron(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (inverse of :meth:`from_dict`); ``type`` tells the neuron families apart."""
        return {
            "type": "binary",
            "charge": self.charge.value,
            "reset": self.reset.value,
            "mpr": self.mpr,
            "threshold": self.threshold,
            "tau": self.tau,
            "surrogate": self.surrogate.to_dict(),
            "detach_reset": self.detach_reset,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BinaryNeuronConfig:
        values = {key: value for key, value in data.items() if key != "type"}
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown binary neuron option(s): {', '.join(sorted(unknown))}")
        if "charge" in values:
            values["charge"] = Charge.from_name(values["charge"])
        if "reset" in values:
            values["reset"] = Reset.from_name(values["reset"])
        if "surrogate" in values:
            values["surrogate"] = surrogate_from_dict(values["surrogate"])
        return cls(**values)


def binary_neuron_step(x: Tensor, v: Tensor, threshold: Tensor, leak: Tensor, config: BinaryNeuronConfig) -> tuple[Tensor, Tensor]:
    """One step of a binary trainable neuron: ``(X[t], U[t−1]) -> (O[t], U[t])``.

    Args:
        x: Input current ``[N, ...]``.
        v: Membrane after the previous reset, same shape.
        threshold: V_th (0-dim buffer).
        leak: ``1/τ`` (0-dim buffer), used by LIF only.
        config: Charge, reset, MPR switch, surrogate and reset detachment.

    Returns:
        ``(spikes, membrane)``: 0/1 spikes and the membrane after reset, both shaped like ``x``.
    """
    h = v + x if config.charge is Charge.IF else v + (x - v) * leak
    spikes = mpr_spike(h, threshold, config.surrogate) if config.mpr else config.surrogate.spike(h - threshold)
    fired = spikes.detach() if config.detach_reset else spikes
    if config.reset is Reset.SUBTRACT:
        return spikes, h - fired
    return spikes, h * (1.0 - fired)


def plain_autograd() -> bool:
    """Whether a hand-written autograd Function may stand in for the step loop (not traced, exported or compiled)."""
    return not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling())


class TrainableNeuron(SpikingNeuron):
    """Base of the trainable neurons: runs a pure step over time, keeps the membrane.

    Shapes: input ``[K·N, ...]`` time-flattened, or ``[N, ...]`` with ``static=True`` (the same
    input at every step, e.g. the first layer of a direct-encoded image); output ``[K·N, ...]``.
    Training is backpropagation through time: autograd over the loop of :meth:`step` (whose steps may each be
    one C++-backed autograd node with the op-by-op step's floats), or, with ``fused_training``, by
    :meth:`fused_bptt` (one autograd node for all steps, gradients equal to the step loop's up to rounding)
    where the neuron has one.
    """

    fused_training = False
    """Use :meth:`fused_bptt` when a gradient is recorded (``True``, per instance or class); by default autograd
    records the step loop (one node per step where :class:`_BinaryStep` applies), which a quiet 2-core machine
    measured 1.05-1.12x faster than the fused path for LIF and SRIF+MPR and as fast for mtlif, with gradients that
    are the op-by-op step's by construction (docs/benchmarks.md, "Direct-training speed")."""

    def __init__(self) -> None:
        super().__init__()
        self._v: Tensor | None = None

    def reset_state(self) -> None:
        self._v = None

    def step(self, x: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """One step ``(X[t], state) -> (output, state)``."""
        raise NotImplementedError

    def fast_forward(self, x: Tensor, v: Tensor, num_steps: int, static: bool) -> tuple[Tensor, Tensor] | None:
        """Outputs ``[K, N, ...]`` and final membrane from a C++ loop bit-identical to looping :meth:`step`,
        or ``None`` where there is none; called only when no gradient is recorded."""
        return None

    def fused_bptt(self, x: Tensor, v: Tensor, num_steps: int, static: bool) -> tuple[Tensor, Tensor] | None:
        """Outputs ``[K, N, ...]`` and final membrane from one autograd Function whose forward equals looping
        :meth:`step` and whose gradients equal the loop's, or ``None`` where there is none; called only when
        a gradient is recorded."""
        return None

    def spike_counts(self, step_output: Tensor) -> Tensor:
        """Spikes per unit of one step's output (:class:`~spikeconv.neurons.SpikeRecorder`): a binary
        spike is 1, a multi-threshold output ``k`` is ``k`` spikes."""
        return step_output.abs()

    def _whole_sequence(self, x: Tensor, v: Tensor, num_steps: int, static: bool) -> tuple[Tensor, Tensor] | None:
        """All steps at once (C++ loop without gradients, fused BPTT with them), or ``None`` for the step loop."""
        sequence = x if static else x.reshape(num_steps, -1, *x.shape[1:])
        if not torch.is_grad_enabled() or not (x.requires_grad or v.requires_grad):
            return self.fast_forward(sequence, v, num_steps, static)
        if self.fused_training and plain_autograd() and x.dtype == v.dtype:
            return self.fused_bptt(sequence, v, num_steps, static)
        return None

    def forward(self, x: Tensor, num_steps: int, static: bool = False) -> Tensor:
        if static:
            inputs: tuple[Tensor, ...] = (x,) * num_steps
        else:
            if x.dim() < 1 or x.shape[0] % num_steps:
                raise DataError(f"{type(self).__name__}: input batch {tuple(x.shape)[:1]} is not a multiple of num_steps={num_steps}")
            inputs = x.reshape(num_steps, x.shape[0] // num_steps, *x.shape[1:]).unbind(0)
        v = self._v
        if v is None or v.shape != inputs[0].shape:
            v = torch.zeros_like(inputs[0])
        whole = self._whole_sequence(x, v, num_steps, static)
        if whole is not None:
            outputs_tensor, self._v = whole
            return outputs_tensor.flatten(0, 1)
        outputs = []
        for step_input in inputs:
            out, v = self.step(step_input, v)
            outputs.append(out)
        self._v = v
        if plain_autograd() and all(type(o) is torch.Tensor and o.device.type == "cpu" for o in outputs):
            return _StepsInOrder.apply(self, *outputs)
        return torch.cat(outputs)


def step_node_ops(x: Tensor, v: Tensor, *scalars: Tensor):  # noqa: ANN201
    """The C++ extension where a one-node step (:class:`_BinaryStep`, ``multi_threshold._MultiThresholdStep``) may
    stand in for the op-by-op step, as far as the tensors go: a recorded gradient in plain autograd, ``x`` and
    ``v`` float32, contiguous, on CPU and of one shape, and each of ``scalars`` one value without a gradient."""
    if not (torch.is_grad_enabled() and (x.requires_grad or v.requires_grad)) or not plain_autograd():
        return None
    if any(s.numel() != 1 or s.requires_grad for s in scalars):
        return None
    if x.shape != v.shape or not (x.dtype == v.dtype == torch.float32) or not (x.is_contiguous() and v.is_contiguous()) or not v.numel():
        return None
    return native_ops_for(x, v)


def _step_node_ops(x: Tensor, v: Tensor, threshold: Tensor, leak: Tensor, config: BinaryNeuronConfig):  # noqa: ANN202
    """:func:`step_node_ops` for :class:`_BinaryStep`, which also needs the rectangular surrogate and, with MPR,
    the threshold at which MPR leaves the forward spikes unchanged (``V_th = 0.5``)."""
    if type(config.surrogate) is not Rectangular:
        return None
    ops = step_node_ops(x, v, threshold, leak)
    return ops if ops is not None and spikes_ignore_mpr(config, threshold) else None


def keep_for_step_backward(ctx: Any, config: object, ops: object, *tensors: Tensor) -> None:
    """What a step node's backward reads. Gradients of unused outputs arrive as ``None``, not zeros: where no
    membrane gradient arrives autograd adds nothing, so a −0 gradient must stay −0."""
    ctx.save_for_backward(*tensors)
    ctx.config, ctx.ops = config, ops
    ctx.set_materialize_grads(False)


class _BinaryStep(torch.autograd.Function):
    """One step of :func:`binary_neuron_step` (rectangular surrogate) as one autograd node, for the step loop.

    Why: op by op, a step records 6-9 nodes and as many membrane-sized tensors (charge, φ, firing, reset and their
    backward accumulations). Here the forward is the inference kernels' C++ step (MPR needs no φ for the spikes
    at V_th = 0.5, ``spikes_ignore_mpr``) and the backward one C++ pass after MPR's ``tanh``/``pow`` (torch's, on
    tensors of the step's size): autograd's float expressions on that step, so trained weights are bit-identical
    (``tests/neurons/test_native_training.py``).
    """

    @staticmethod
    def forward(ctx, x, v, threshold, leak, config, ops):  # noqa: ANN001, ANN205 - autograd's signature
        n = v.shape[0]
        h, spikes, v_next = torch.empty_like(v), torch.empty_like(v), v.clone()
        ops.binary_run(x.reshape(1, n, -1), v_next.view(n, -1), float(threshold), float(leak), spikes, 1, True,
                       config.charge is Charge.LIF, config.reset is Reset.ZERO, h)  # fmt: skip
        keep_for_step_backward(ctx, config, ops, h, spikes, threshold, leak)
        return spikes, v_next

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_spikes, grad_v):  # noqa: ANN001, ANN205
        h, spikes, threshold, leak = ctx.saved_tensors
        c, ops = ctx.config, ctx.ops
        if grad_spikes is None:
            grad_spikes = torch.zeros_like(h)
        none = h.new_empty(0)
        t, r1, r2 = mpr_parts_both(ops, h) if c.mpr else (none, none, none)
        lif = c.charge is Charge.LIF
        grad_x, grad_v_prev = torch.empty_like(h), torch.empty_like(h) if lif else none
        width = c.surrogate.width
        ops.binary_step_grad(grad_spikes.contiguous(), none if grad_v is None else grad_v.contiguous(), h, spikes, t, r1, r2,
                             grad_x, grad_v_prev, float(threshold), MPR_SPAN, MPR_SLOPE_SCALE, width / 2, width, float(leak), lif,
                             c.reset is Reset.ZERO, c.detach_reset, c.mpr)  # fmt: skip
        return grad_x, grad_v_prev if lif else grad_x, None, None, None, None


class _StepsInOrder(torch.autograd.Function):
    """``torch.cat`` of the step outputs (and, backward, ``CatBackward``'s slices), into a buffer the neuron reuses
    once the previous step's graph is gone: a fresh ``[T·N, ...]`` of the first layer is above glibc's 32 MiB mmap
    limit, and page-faulting it cost a third of the copy's time again (``workspace.reusable_empty``)."""

    @staticmethod
    def forward(ctx, owner, *steps):  # noqa: ANN001, ANN205 - autograd's signature
        first = steps[0]
        out = reusable_empty(owner, "steps", (len(steps) * first.shape[0], *first.shape[1:]), first)
        torch.cat(steps, out=out)
        ctx.rows = first.shape[0]
        return out

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        return None, *grad.split(ctx.rows)


def _binary_steps(x: Tensor, v: Tensor, threshold: Tensor, leak: Tensor, config: BinaryNeuronConfig, num_steps: int,
                  static: bool) -> tuple[Tensor, Tensor | None, Tensor, Tensor]:  # fmt: skip
    """The forward of :func:`binary_neuron_step` over all steps, op for op, without a graph.

    Returns H and φ(H) of every step (``None`` without MPR or where :func:`spikes_ignore_mpr`), the spikes
    ``[K, N, ...]`` and the final membrane.
    """
    shape = (num_steps, *v.shape)
    h_all, out = v.new_empty(shape), v.new_empty(shape)
    presented_all = None if spikes_ignore_mpr(config, threshold) else v.new_empty(shape)
    for t in range(num_steps):
        x_t, h = x if static else x[t], h_all[t]
        if config.charge is Charge.IF:
            torch.add(v, x_t, out=h)
        else:
            torch.add(v, (x_t - v) * leak, out=h)
        presented = h
        if presented_all is not None:
            presented = presented_all[t]
            presented.copy_(mpr_value(h))
        out[t].copy_((presented - threshold) >= 0)
        v = h - out[t] if config.reset is Reset.SUBTRACT else h * (1.0 - out[t])
    return h_all, presented_all, out, v


def _binary_steps_native(ops, x: Tensor, v: Tensor, threshold: Tensor, leak: Tensor, config: BinaryNeuronConfig,  # noqa: ANN001
                         num_steps: int, static: bool) -> tuple[Tensor, None, Tensor, Tensor]:  # fmt: skip
    """:func:`_binary_steps` in the C++ loop: same values, one pass over memory. With MPR only for V_th = 0.5
    (see :func:`spikes_ignore_mpr`); φ(H) is then not computed at all."""
    n, shape = v.shape[0], (num_steps, *v.shape)
    xs = x.reshape(1 if static else num_steps, n, -1).contiguous()
    vs = v.reshape(n, -1).clone()
    h_all, out = v.new_empty(shape), v.new_empty(shape)
    ops.binary_run(xs, vs, float(threshold), float(leak), out, num_steps, static, config.charge is Charge.LIF,
                   config.reset is Reset.ZERO, h_all)  # fmt: skip
    return h_all, None, out, vs.view(v.shape)


def spikes_ignore_mpr(config: BinaryNeuronConfig, threshold: Tensor) -> bool:
    """Whether MPR leaves every forward spike as it is without MPR, in floats too: true at ``V_th = 0.5``.

    ``Θ(φ(H) − 0.5) = Θ(H − 0.5)``: φ is increasing with ``φ(1/2) = 1/2``, and in float32 the middle branch
    ``tanh(3(H − 1/2))/(2·tanh(3/2)) + 1/2`` cannot round up to 0.5 for the float H just below 0.5 (its
    offset, ≥ 2^−25·3/1.81, exceeds half an ulp of 0.5); every float in [0.499, 0.501] and 4·10^7 random
    ones were checked against torch's φ. So the forward never needs φ, only the backward does.
    """
    return not config.mpr or float(threshold) == MPR_THRESHOLD


def _presented(h_all: Tensor, presented_all: Tensor, config: BinaryNeuronConfig) -> Tensor:
    """The membrane the firing function saw: saved φ(H), or φ(H) now (the forward skipped it), or H."""
    if presented_all.numel():
        return presented_all
    return mpr_value(h_all) if config.mpr else h_all


def _slopes(h_all: Tensor, presented_all: Tensor, threshold: Tensor, config: BinaryNeuronConfig) -> tuple[Tensor, Tensor | None]:
    """σ'(P − θ) on the presented membrane P and, with MPR, φ'(H), for every step: what both BPTT paths chain."""
    surrogate = config.surrogate.derivative(_presented(h_all, presented_all, config) - threshold)
    return surrogate, (mpr_derivative(h_all) if config.mpr else None)


def _binary_grads(h_all: Tensor, presented_all: Tensor, out: Tensor, threshold: Tensor, leak: Tensor, config: BinaryNeuronConfig,
                  grad_out: Tensor, grad_v: Tensor | None) -> tuple[Tensor, Tensor]:  # fmt: skip
    """BPTT through :func:`binary_neuron_step` in torch ops: ``dL/dX[t]`` for every step and ``dL/dU[0]``."""
    c = config
    surrogate, rectifier = _slopes(h_all, presented_all, threshold, c)
    grad_x = torch.empty_like(h_all)
    g_v = torch.zeros_like(h_all[0]) if grad_v is None else grad_v
    for t in reversed(range(h_all.shape[0])):
        if c.reset is Reset.SUBTRACT:
            g_spike = grad_out[t] if c.detach_reset else grad_out[t] - g_v
            g_direct = g_v
        else:
            g_spike = grad_out[t] if c.detach_reset else grad_out[t] - g_v * h_all[t]
            g_direct = g_v * (1.0 - out[t])
        g_presented = g_spike * surrogate[t]
        g_h = g_direct + (g_presented if rectifier is None else g_presented * rectifier[t])
        if c.charge is Charge.IF:
            grad_x[t], g_v = g_h, g_h
        else:
            g_leak = g_h * leak
            grad_x[t], g_v = g_leak, g_h - g_leak
    return grad_x, g_v


def _binary_grads_native(ops, h_all: Tensor, presented_all: Tensor, out: Tensor, threshold: Tensor, leak: Tensor,  # noqa: ANN001
                         config: BinaryNeuronConfig, grad_out: Tensor, grad_v: Tensor | None,
                         static: bool) -> tuple[Tensor, Tensor]:  # fmt: skip
    """:func:`_binary_grads` (summed over steps for a static input) in one C++ pass. The surrogate and MPR's φ'
    are evaluated over all steps at once by the same torch ops as there (vectorised; scalar ``tanh``/``pow`` in
    the C++ loop made it slower than autograd), so the gradients are its values."""
    c, (k, n) = config, h_all.shape[:2]
    flat = (k, n, -1)
    surrogate, rectifier = _slopes(h_all, presented_all, threshold, c)
    surrogate = surrogate.reshape(flat).contiguous()
    rect = h_all.new_empty(0) if rectifier is None else rectifier.reshape(flat).contiguous()
    g_v = h_all.new_zeros((n, h_all[0, 0].numel())) if grad_v is None else grad_v.reshape(n, -1).clone()
    grad_x = h_all.new_empty(h_all.shape[1:] if static else h_all.shape)
    ops.binary_bptt(grad_out.reshape(flat).contiguous(), h_all.reshape(flat), out.reshape(flat), surrogate, rect, g_v,
                    grad_x.view(*grad_x.shape[: 1 if static else 2], -1), static, c.charge is Charge.LIF, c.reset is Reset.ZERO,
                    c.detach_reset, float(leak))  # fmt: skip
    return grad_x, g_v.view(h_all.shape[1:])


def _native_for_training(*tensors: Tensor):  # noqa: ANN202
    """The C++ extension where every tensor is float32 on CPU, else ``None``."""
    if not all(t.dtype == torch.float32 for t in tensors):
        return None
    return native_ops_for(*tensors)


class _BinaryBPTT(torch.autograd.Function):
    """Every step of :func:`binary_neuron_step` as one autograd node; the backward is BPTT written out.

    Why: autograd over the step loop records about ten nodes and as many fresh tensors per step and
    evaluates the surrogate step by step; this node saves H (and φ(H)) once and runs the recurrence in
    one C++ pass (float32 on CPU; torch ops elsewhere). Each gradient is the same float expression
    autograd forms on the loop (sums of two terms, so their order is moot).
    """

    @staticmethod
    def forward(ctx, x, v, threshold, leak, config, num_steps, static):  # noqa: ANN001, ANN205 - autograd's signature
        ops = _native_for_training(x, v)
        if ops is not None and spikes_ignore_mpr(config, threshold):
            h_all, presented_all, out, v_last = _binary_steps_native(ops, x, v, threshold, leak, config, num_steps, static)
        else:
            h_all, presented_all, out, v_last = _binary_steps(x, v, threshold, leak, config, num_steps, static)
        ctx.save_for_backward(h_all, h_all.new_empty(0) if presented_all is None else presented_all, out, threshold, leak)
        ctx.config, ctx.static, ctx.ops = config, static, ops
        return out, v_last

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_v):  # noqa: ANN001, ANN205
        saved = ctx.saved_tensors
        ops = ctx.ops if _native_for_training(grad_out, *(() if grad_v is None else (grad_v,))) is not None else None
        if ops is not None:
            grad_x, g_v = _binary_grads_native(ops, *saved, ctx.config, grad_out, grad_v, ctx.static)
        else:
            grad_x, g_v = _binary_grads(*saved, ctx.config, grad_out, grad_v)
            grad_x = sum_over_steps(grad_x) if ctx.static else grad_x
        return grad_x, g_v if ctx.needs_input_grad[1] else None, None, None, None, None, None


def sum_over_steps(grads: Tensor) -> Tensor:
    """Σ_t grads[t] from the last step to the first, the order autograd accumulates a reused input's gradient."""
    total = grads[-1].clone()
    for t in reversed(range(grads.shape[0] - 1)):
        total.add_(grads[t])
    return total


class BinarySpikingNeuron(TrainableNeuron):
    """Hard-reset IF/LIF or SRIF, with or without MPR (see the module docstring).

    Dynamics: :func:`binary_neuron_step`. Buffers: ``threshold`` (V_th) and ``leak`` (1/τ).
    """

    def __init__(self, config: BinaryNeuronConfig) -> None:
        super().__init__()
        if not isinstance(config, BinaryNeuronConfig):
            raise ConfigError(f"BinarySpikingNeuron needs a BinaryNeuronConfig, got {type(config).__name__}")
        self.config = config
        self.register_buffer("threshold", torch.tensor(config.threshold))
        self.register_buffer("leak", torch.tensor(1.0 / config.tau))

    def extra_repr(self) -> str:
        c = self.config
        kind = f"{'SR' if c.reset is Reset.SUBTRACT else 'hard-reset '}{c.charge.value.upper()}"
        tau = f", tau={c.tau:g}" if c.charge is Charge.LIF else ""
        return f"{kind}{' + MPR' if c.mpr else ''}, V_th={c.threshold:g}{tau}, surrogate={c.surrogate.name}"

    def step(self, x: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        threshold, leak = self.threshold.to(x.dtype), self.leak.to(x.dtype)
        ops = _step_node_ops(x, v, threshold, leak, self.config)
        if ops is not None:
            return _BinaryStep.apply(x, v, threshold, leak, self.config, ops)
        return binary_neuron_step(x, v, threshold, leak, self.config)

    def fast_forward(self, x: Tensor, v: Tensor, num_steps: int, static: bool) -> tuple[Tensor, Tensor] | None:
        c = self.config
        ops = native_ops_for(x, v)
        if (ops is None or self.threshold.dim() or self.leak.dim() or not spikes_ignore_mpr(c, self.threshold)
                or type(c.surrogate).spike is not BinarySurrogate.spike or x.dtype != torch.float32 or v.dtype != torch.float32
                or x.device.type != "cpu" or v.numel() == 0):
            return None  # fmt: skip
        xs = x.reshape(1 if static else num_steps, v.shape[0], -1).contiguous()
        vs = v.reshape(v.shape[0], -1).clone()
        out = reusable_empty(self, "out", (num_steps, *v.shape), v)
        ops.binary_run(xs, vs, float(self.threshold), float(self.leak), out, num_steps, static, c.charge is Charge.LIF,
                       c.reset is Reset.ZERO, v.new_empty(0))  # fmt: skip
        return out, vs.view(v.shape)

    def fused_bptt(self, x: Tensor, v: Tensor, num_steps: int, static: bool) -> tuple[Tensor, Tensor] | None:
        c = self.config
        if type(c.surrogate).spike is not BinarySurrogate.spike or self.threshold.dim() or self.leak.dim() or v.numel() == 0:
            return None
        return _BinaryBPTT.apply(x, v, self.threshold.to(x.dtype), self.leak.to(x.dtype), c, num_steps, static)
