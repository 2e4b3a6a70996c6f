"""TORCH kernels: the reference kernels' arithmetic in preallocated buffers with in-place ops (``Kernel.TORCH``).

Why: on CPU each fresh large tensor is a page fault, and a bool→float mask is a dtype copy; these make one output
allocation per call and update the state in place, doing the same float operations in the same order as
:mod:`spikeconv.neurons.kernels_reference`, so outputs and state are bit-identical
(``tests/neurons/test_fast_kernels.py``). Always available; the NATIVE kernels fall back to them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from spikeconv.neurons.kernels_reference import step_input
from spikeconv.neurons.sin_correction import IsiState
from spikeconv.neurons.strategies import Reset


def output_buffer(out: Tensor | None, v: Tensor, num_steps: int, step_shape: Sequence[int] | None = None) -> Tensor:
    """The ``[K, N, ...]`` output buffer (``step_shape`` per step, else ``v``'s): the caller's (see
    :mod:`spikeconv.neurons.workspace`) or a new one."""
    shape = (num_steps, *(v.shape if step_shape is None else step_shape))
    if out is not None and out.shape == shape and out.dtype == v.dtype and out.device == v.device and out.is_contiguous():
        return out
    return v.new_empty(shape)


class _Inputs:
    """Per-step input ``X[t] + bias`` without materialising the biased sequence (one step buffer)."""

    def __init__(self, x: Tensor, bias: Tensor | None, static: bool) -> None:
        self.static = static
        self.x = x + bias if static and bias is not None else x
        self.bias = None if static else bias
        self.buffer = torch.empty_like(x[0]) if self.bias is not None else None

    def __getitem__(self, t: int) -> Tensor:
        if self.static:
            return self.x
        if self.buffer is None:
            return self.x[t]
        return torch.add(self.x[t], self.bias, out=self.buffer)


def if_inplace(
    x: Tensor,
    v: Tensor,
    threshold: Tensor,
    reset: Reset,
    num_steps: int,
    static: bool,
    bias: Tensor | None = None,
    out: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Same arithmetic as :func:`if_reference`, with one output allocation and in-place updates.

    ``θ·S`` is written as ``where(H ≥ θ, θ, 0)``: S is 0 or 1, so this is the same value without the
    bool→float copy and the multiply.
    """
    inputs = _Inputs(x, bias, static)
    v = v.clone()
    outputs = output_buffer(out, v, num_steps)
    fired = torch.empty(v.shape, dtype=torch.bool, device=v.device)
    zero = v.new_zeros(())
    for t in range(num_steps):
        v.add_(inputs[t])
        torch.ge(v, threshold, out=fired)
        out_t = outputs[t]
        torch.where(fired, threshold, zero, out=out_t)
        if reset is Reset.SUBTRACT:
            v.sub_(out_t)
        else:
            v.masked_fill_(fired, 0.0)
    return outputs, v


def burst_torch(
    x: Tensor,
    v: Tensor,
    threshold: Tensor,
    max_spikes: int,
    num_steps: int,
    static: bool,
    bias: Tensor | None = None,
    out: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """:func:`burst_if_reference` with in-place ops."""
    inputs = _Inputs(x, bias, static)
    v = v.clone()
    outputs = output_buffer(out, v, num_steps)
    for t in range(num_steps):
        v.add_(inputs[t])
        out_t = outputs[t]
        torch.div(v, threshold, out=out_t)
        out_t.floor_().clamp_(0, max_spikes).mul_(threshold)
        v.sub_(out_t)
    return outputs, v


def signed_torch(
    x: Tensor,
    v: Tensor,
    count: Tensor,
    threshold: Tensor,
    low: Tensor,
    num_steps: int,
    static: bool,
    bias: Tensor | None = None,
    out: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`signed_reference` with in-place ops (S in {−1, 0, 1}, so ``θ·S`` is exact)."""
    inputs = _Inputs(x, bias, static)
    v, count = v.clone(), count.clone()
    outputs = output_buffer(out, v, num_steps)
    pos = torch.empty(v.shape, dtype=torch.bool, device=v.device)
    neg = torch.empty_like(pos)
    spikes = torch.empty_like(v)
    for t in range(num_steps):
        v.add_(inputs[t])
        torch.ge(v, threshold, out=pos)
        torch.lt(v, low, out=neg)
        neg.logical_and_(count > 0)
        spikes.copy_(pos).sub_(neg.to(v.dtype))
        out_t = outputs[t]
        torch.mul(spikes, threshold, out=out_t)
        v.sub_(out_t)
        count.add_(spikes)
    return outputs, v, count


def isi_torch(
    x: Tensor, v: Tensor, state: IsiState, threshold: Tensor, start: int, allowance: float, num_steps: int, static: bool,
    bias: Tensor | None = None, out: Tensor | None = None,
) -> tuple[Tensor, Tensor, IsiState]:  # fmt: skip
    """:func:`isi_reference` with in-place state updates."""
    inputs = _Inputs(x, bias, static)
    v = v.clone()
    s = IsiState(count=state.count.clone(), fired=state.fired.clone(), first=state.first.clone(), last=state.last.clone(),
                 last_event=state.last_event.clone())  # fmt: skip
    outputs = output_buffer(out, v, num_steps)
    for k in range(num_steps):
        t = start + k
        v.add_(inputs[k])
        pos = v >= threshold
        mean_isi = (s.last - s.first) / (s.fired - 1).clamp(min=1)
        neg = ~pos & (s.count > 0) & (s.fired >= 2) & ((t - s.last_event) > mean_isi + allowance)
        spikes = pos.to(v.dtype) - neg.to(v.dtype)
        out_t = outputs[k]
        torch.mul(spikes, threshold, out=out_t)
        v.sub_(out_t)
        s.first.masked_fill_(pos & (s.fired == 0), float(t))
        s.count.add_(spikes)
        s.fired.add_(pos.to(v.dtype))
        s.last.masked_fill_(pos, float(t))
        s.last_event.masked_fill_(pos | neg, float(t))
    return outputs, v, s


def bistable_torch(
    x: Tensor,
    v: Tensor,
    threshold: Tensor,
    bias: Tensor,
    fire: Sequence[bool],
    max_spikes: int,
    num_steps: int,
    static: bool,
    out: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """:func:`bistable_reference` with in-place ops."""
    v = v.clone()
    outputs = output_buffer(out, v, num_steps)
    for t in range(num_steps):
        v.add_(step_input(x, t, static)).add_(bias)
        out_t = outputs[t]
        if fire[t]:
            torch.div(v, threshold, out=out_t)
            out_t.floor_().clamp_(0, max_spikes).mul_(threshold)
            v.sub_(out_t)
        else:
            out_t.zero_()
    return outputs, v
