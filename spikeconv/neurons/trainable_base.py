"""The base of directly trained neurons: a pure step looped over time, and what their autograd nodes share.

:class:`TrainableNeuron` runs a neuron's pure step over the ``K`` steps of a time-flattened input and keeps the
membrane; where a gradient is recorded the step outputs are gathered into a buffer the neuron reuses
(:class:`_StepsInOrder`). The binary neurons (:mod:`spikeconv.neurons.trainable`) and the multi-threshold LIF
(:mod:`spikeconv.neurons.multi_threshold`) build on it, and their one-node steps share :func:`step_node_ops`,
:func:`keep_for_step_backward` and :func:`sum_over_steps`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from spikeconv.errors import ConfigError, DataError
from spikeconv.neurons.if_neuron import SpikingNeuron
from spikeconv.neurons.native import native_ops_for
from spikeconv.neurons.workspace import reusable_empty

__all__ = [
    "TrainableNeuron",
    "check_finite_positive",
    "check_flag",
    "keep_for_step_backward",
    "plain_autograd",
    "step_node_ops",
    "sum_over_steps",
]


def check_finite_positive(name: str, value: object) -> float:
    """``value`` as a float, or a one-line ConfigError unless it is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return value


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
    records the step loop (one node per step where ``binary_nodes._BinaryStep`` applies), which a quiet 2-core machine
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
    """The C++ extension where a one-node step (``binary_nodes._BinaryStep``, ``multi_threshold._MultiThresholdStep``) may
    stand in for the op-by-op step, as far as the tensors go: a recorded gradient in plain autograd, ``x`` and
    ``v`` float32, contiguous, on CPU and of one shape, and each of ``scalars`` one value without a gradient."""
    if not (torch.is_grad_enabled() and (x.requires_grad or v.requires_grad)) or not plain_autograd():
        return None
    if any(s.numel() != 1 or s.requires_grad for s in scalars):
        return None
    if x.shape != v.shape or not (x.dtype == v.dtype == torch.float32) or not (x.is_contiguous() and v.is_contiguous()) or not v.numel():
        return None
    return native_ops_for(x, v)


def keep_for_step_backward(ctx: Any, config: object, ops: object, *tensors: Tensor) -> None:
    """What a step node's backward reads. Gradients of unused outputs arrive as ``None``, not zeros: where no
    membrane gradient arrives autograd adds nothing, so a −0 gradient must stay −0."""
    ctx.save_for_backward(*tensors)
    ctx.config, ctx.ops = config, ops
    ctx.set_materialize_grads(False)


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


def sum_over_steps(grads: Tensor) -> Tensor:
    """Σ_t grads[t] from the last step to the first, the order autograd accumulates a reused input's gradient."""
    total = grads[-1].clone()
    for t in reversed(range(grads.shape[0] - 1)):
        total.add_(grads[t])
    return total
