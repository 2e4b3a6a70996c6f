"""The binary neurons' autograd nodes: one step (:class:`_BinaryStep`) and all steps (:class:`_BinaryBPTT`).

Both stand in for autograd over :func:`~spikeconv.neurons.trainable.binary_neuron_step` where they apply
(:func:`binary_step_node`, :func:`binary_bptt`), with the same floats: the forward is the C++ time loop
(``csrc/trainable_loops.cpp``) or the op-by-op step's ops, the backward autograd's float expressions on the step
loop, written out in C++ (``csrc/training_passes.cpp``, ``csrc/trainable_loops.cpp``) or in torch ops
(``tests/neurons/test_native_training.py``, ``tests/neurons/test_fused_training.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from spikeconv.neurons.mpr import MPR_SLOPE_SCALE, MPR_SPAN, MPR_THRESHOLD, mpr_derivative, mpr_parts_both, mpr_value
from spikeconv.neurons.native import native_ops_for
from spikeconv.neurons.strategies import Charge, Reset
from spikeconv.neurons.surrogates import Rectangular
from spikeconv.neurons.trainable_base import keep_for_step_backward, step_node_ops, sum_over_steps

if TYPE_CHECKING:
    from spikeconv.neurons.trainable import BinaryNeuronConfig

__all__ = ["binary_bptt", "binary_step_node", "spikes_ignore_mpr"]


def spikes_ignore_mpr(config: BinaryNeuronConfig, threshold: Tensor) -> bool:
    """Whether MPR leaves every forward spike as it is without MPR, in floats too: true at ``V_th = 0.5``.

    ``Θ(φ(H) − 0.5) = Θ(H − 0.5)``: φ is increasing with ``φ(1/2) = 1/2``, and in float32 the middle branch
    ``tanh(3(H − 1/2))/(2·tanh(3/2)) + 1/2`` cannot round up to 0.5 for the float H just below 0.5 (its
    offset, ≥ 2^−25·3/1.81, exceeds half an ulp of 0.5); every float in [0.499, 0.501] and 4·10^7 random
    ones were checked against torch's φ. So the forward never needs φ, only the backward does.
    """
    return not config.mpr or float(threshold) == MPR_THRESHOLD


def _step_node_ops(x: Tensor, v: Tensor, threshold: Tensor, leak: Tensor, config: BinaryNeuronConfig):  # noqa: ANN202
    """:func:`step_node_ops` for :class:`_BinaryStep`, which also needs the rectangular surrogate and, with MPR,
    the threshold at which MPR leaves the forward spikes unchanged (``V_th = 0.5``)."""
    if type(config.surrogate) is not Rectangular:
        return None
    ops = step_node_ops(x, v, threshold, leak)
    return ops if ops is not None and spikes_ignore_mpr(config, threshold) else None


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


def binary_step_node(x: Tensor, v: Tensor, threshold: Tensor, leak: Tensor, config: BinaryNeuronConfig) -> tuple[Tensor, Tensor] | None:
    """One step of :func:`~spikeconv.neurons.trainable.binary_neuron_step` as one :class:`_BinaryStep` node, or
    ``None`` where that does not apply (then the op-by-op step runs)."""
    ops = _step_node_ops(x, v, threshold, leak, config)
    if ops is None:
        return None
    return _BinaryStep.apply(x, v, threshold, leak, config, ops)


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


def binary_bptt(x: Tensor, v: Tensor, threshold: Tensor, leak: Tensor, config: BinaryNeuronConfig, num_steps: int,
                static: bool) -> tuple[Tensor, Tensor]:  # fmt: skip
    """All steps of :func:`~spikeconv.neurons.trainable.binary_neuron_step` as one :class:`_BinaryBPTT` node: outputs
    ``[K, N, ...]`` and the final membrane."""
    return _BinaryBPTT.apply(x, v, threshold, leak, config, num_steps, static)
