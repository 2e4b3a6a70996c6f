"""REFERENCE kernels: loop a neuron kind's pure step over ``K`` timesteps; the definition every faster kernel
matches bit for bit (:mod:`spikeconv.neurons.kernels` registers them as ``Kernel.REFERENCE``).

Arguments and returns are those of every kernel (:mod:`spikeconv.neurons.kernels`): a time-first input
``[K, N, ...]`` (or one ``[N, ...]`` with ``static``), the state, and ``[K, N, ...]`` outputs with the final state.
The optional ``bias`` is added to the input first (``V + (X + bias)``); ``out`` is ignored here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from spikeconv.neurons.dynamics import if_step, multi_spike_if_step
from spikeconv.neurons.sin_correction import IsiState, isi_if_loop, signed_if_loop
from spikeconv.neurons.strategies import Reset


def step_input(x: Tensor, t: int, static: bool) -> Tensor:
    """The input of step ``t``: ``x`` itself when it is ``static``, else ``x[t]``."""
    return x if static else x[t]


def _biased(x: Tensor, bias: Tensor | None) -> Tensor:
    return x if bias is None else x + bias


def if_reference(
    x: Tensor,
    v: Tensor,
    threshold: Tensor,
    reset: Reset,
    num_steps: int,
    static: bool,
    bias: Tensor | None = None,
    out: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Loop the pure :func:`if_step` over time; the definition every faster kernel must match."""
    x = _biased(x, bias)
    outputs = []
    for t in range(num_steps):
        out, v = if_step(step_input(x, t, static), v, threshold, reset)
        outputs.append(out)
    return torch.stack(outputs), v


def burst_if_reference(
    x: Tensor,
    v: Tensor,
    threshold: Tensor,
    max_spikes: int,
    num_steps: int,
    static: bool,
    bias: Tensor | None = None,
    out: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Loop :func:`multi_spike_if_step` (up to ``max_spikes`` spikes per step, soft reset) over time."""
    x = _biased(x, bias)
    outputs = []
    for t in range(num_steps):
        out, v = multi_spike_if_step(step_input(x, t, static), v, threshold, max_spikes)
        outputs.append(out)
    return torch.stack(outputs), v


def signed_reference(
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
    """:func:`~spikeconv.neurons.sin_correction.signed_if_loop` on the biased input."""
    return signed_if_loop(_biased(x, bias), v, count, threshold, low, num_steps, static)


def isi_reference(
    x: Tensor, v: Tensor, state: IsiState, threshold: Tensor, start: int, allowance: float, num_steps: int, static: bool,
    bias: Tensor | None = None, out: Tensor | None = None,
) -> tuple[Tensor, Tensor, IsiState]:  # fmt: skip
    """:func:`~spikeconv.neurons.sin_correction.isi_if_loop` on the biased input."""
    return isi_if_loop(_biased(x, bias), v, state, threshold, start, allowance, num_steps, static)


def bistable_reference(
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
    """Bistable IF (:mod:`spikeconv.neurons.bistable`): ``V ← (V + X) + bias`` every step; on steps
    with ``fire[t]`` also ``S = clip(⌊V/θ⌋, 0, s_max)``, ``V ← V − θS``; output 0 on the others."""
    outputs = []
    for t in range(num_steps):
        v = v + step_input(x, t, static) + bias
        if fire[t]:
            spikes = torch.clamp(torch.floor(v / threshold), 0, max_spikes)
            out = spikes * threshold
            v = v - out
        else:
            out = torch.zeros_like(v)
        outputs.append(out)
    return torch.stack(outputs), v
