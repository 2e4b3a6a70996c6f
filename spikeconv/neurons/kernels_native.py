"""NATIVE kernels: the C++ time loops (``csrc/if_loops.cpp``) for float32 CPU tensors, else the TORCH kernels.

Each runs all steps of a cache-sized block of membranes before the next block (one pass over memory) with the
reference's float operations in the same order, so outputs and state are bit-identical to
:mod:`spikeconv.neurons.kernels_reference`; where the extension is missing or the tensors are not float32 on CPU
they run :mod:`spikeconv.neurons.kernels_torch` instead (``Kernel.NATIVE``, and ``Kernel.INPLACE``, the default).

The kernels of the IF family also take ``pool = (kh, kw, sh, sw)``: the output is then the average pool (no
padding) of each step's ``[N, C, H, W]`` spikes, ``[K, N, C, OH, OW]``, computed block by block in C++ so that the
full-size spike map is never written (:mod:`spikeconv.neurons.fusion`); the values are those of ``avg_pool2d`` on
the unpooled output, which the pure-torch fallback computes. With ``gate = (cumulative, emitted)`` (flat
``[N·C, H, W]`` and ``[N·C, OH, OW]`` float32 state of a 2x2 spiking max-pool gate, updated in place) the step
outputs go through that gate instead; there is no fallback for it, so callers check that the C++ kernels apply
first (:class:`~spikeconv.neurons.fusion.NeuronPool`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from spikeconv.errors import ConfigError
from spikeconv.neurons.kernels_torch import bistable_torch, burst_torch, if_inplace, isi_torch, output_buffer, signed_torch
from spikeconv.neurons.native import native_ops_for
from spikeconv.neurons.sin_correction import IsiState
from spikeconv.neurons.strategies import Reset


def _pattern(value: Tensor, sample_shape: torch.Size) -> Tensor | None:
    """``value`` (broadcastable to one step ``[N, ...]`` but constant over N) as one flat sample."""
    if value.dtype != torch.float32:
        return None
    try:
        full = torch.broadcast_to(value, (1, *sample_shape))
    except RuntimeError:
        return None
    return full.reshape(-1).contiguous()


Pool = tuple[int, int, int, int]
"""(kh, kw, sh, sw) of an average pool without padding fused after a neuron."""


def pooled_shape(shape: Sequence[int], pool: Pool) -> tuple[int, ...]:
    """The ``[N, C, OH, OW]`` that pooling one step ``[N, C, H, W]`` gives."""
    kh, kw, sh, sw = pool
    return (*shape[:-2], (shape[-2] - kh) // sh + 1, (shape[-1] - kw) // sw + 1)


Gate = tuple[Tensor, Tensor]
"""(cumulative, emitted) state of a fused 2x2 spiking max-pool gate."""


def _pool_fallback(outputs: Tensor, pool: Pool | None, gate: Gate | None = None) -> Tensor:
    """Unpooled ``[K, N, C, H, W]`` outputs pooled as aten does, or unchanged without ``pool``."""
    if gate is not None:
        raise ConfigError("internal: a fused max-pool gate needs the C++ kernels; run the neuron and the gate separately")
    if pool is None:
        return outputs
    kh, kw, sh, sw = pool
    pooled = torch.nn.functional.avg_pool2d(outputs.flatten(0, 1), (kh, kw), (sh, sw))
    return pooled.view(outputs.shape[0], outputs.shape[1], *pooled.shape[1:])


def _gate_args(gate: Gate | None) -> list[Tensor]:
    return [] if gate is None else list(gate)


def _nativeoutput_buffer(out: Tensor | None, v: Tensor, num_steps: int, pool: Pool | None) -> tuple[Tensor, list[int]]:
    """The output buffer and the C++ pool argument ({H, W, kh, kw, sh, sw}, empty without pooling)."""
    if pool is None:
        return output_buffer(out, v, num_steps), []
    return output_buffer(out, v, num_steps, pooled_shape(v.shape, pool)), [int(v.shape[-2]), int(v.shape[-1]), *pool]


def _native_layout(x: Tensor, v: Tensor, static: bool, *patterns: Tensor | None, pool: Pool | None = None):
    """(ops, x as [S, N, L], v as a fresh [N, L], flat patterns), or None where NATIVE does not apply."""
    if x.dtype != torch.float32 or v.dtype != torch.float32 or x.device.type != "cpu" or v.dim() < 1 or v.numel() == 0:
        return None
    if pool is not None and (v.dim() != 4 or v.shape[-2] < pool[0] or v.shape[-1] < pool[1]):
        return None
    ops = native_ops_for(x, v)
    if ops is None:
        return None
    n = v.shape[0]
    flat = []
    for value in patterns:
        if value is None:
            flat.append(v.new_empty(0))
            continue
        pattern = _pattern(value, v.shape[1:])
        if pattern is None:
            return None
        flat.append(pattern)
    xs = x.reshape(1 if static else x.shape[0], n, -1).contiguous()
    return ops, xs, v.reshape(n, -1).clone(), flat


def if_native(
    x: Tensor,
    v: Tensor,
    threshold: Tensor,
    reset: Reset,
    num_steps: int,
    static: bool,
    bias: Tensor | None = None,
    out: Tensor | None = None,
    pool: Pool | None = None,
    gate: Gate | None = None,
) -> tuple[Tensor, Tensor]:
    """The C++ IF loop (:func:`if_reference`'s arithmetic); :func:`if_inplace` where it does not apply."""
    layout = _native_layout(x, v, static, threshold, bias, pool=pool)
    if layout is None:
        outputs, v = if_inplace(x, v, threshold, reset, num_steps, static, bias, None if pool else out)
        return _pool_fallback(outputs, pool, gate), v
    ops, xs, vs, (th, b) = layout
    out, geometry = _nativeoutput_buffer(out, v, num_steps, pool)
    ops.if_run(xs, vs, th, b, out, num_steps, static, reset is Reset.ZERO, geometry, _gate_args(gate))
    return out, vs.view(v.shape)


def burst_native(
    x: Tensor,
    v: Tensor,
    threshold: Tensor,
    max_spikes: int,
    num_steps: int,
    static: bool,
    bias: Tensor | None = None,
    out: Tensor | None = None,
    pool: Pool | None = None,
    gate: Gate | None = None,
) -> tuple[Tensor, Tensor]:
    """The C++ burst loop; :func:`burst_torch` where it does not apply."""
    layout = _native_layout(x, v, static, threshold, bias, pool=pool)
    if layout is None:
        outputs, v = burst_torch(x, v, threshold, max_spikes, num_steps, static, bias, None if pool else out)
        return _pool_fallback(outputs, pool, gate), v
    ops, xs, vs, (th, b) = layout
    out, geometry = _nativeoutput_buffer(out, v, num_steps, pool)
    ops.burst_run(xs, vs, th, b, out, num_steps, static, max_spikes, [1] * num_steps, False, geometry, _gate_args(gate))
    return out, vs.view(v.shape)


def signed_native(
    x: Tensor,
    v: Tensor,
    count: Tensor,
    threshold: Tensor,
    low: Tensor,
    num_steps: int,
    static: bool,
    bias: Tensor | None = None,
    out: Tensor | None = None,
    pool: Pool | None = None,
    gate: Gate | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """The C++ signed-IF loop; :func:`signed_torch` where it does not apply."""
    layout = _native_layout(x, v, static, threshold, low, bias, pool=pool)
    if layout is None or count.dtype != torch.float32:
        outputs, v, count = signed_torch(x, v, count, threshold, low, num_steps, static, bias, None if pool else out)
        return _pool_fallback(outputs, pool, gate), v, count
    ops, xs, vs, (th, lo, b) = layout
    counts = count.reshape(vs.shape).clone()
    out, geometry = _nativeoutput_buffer(out, v, num_steps, pool)
    ops.signed_run(xs, vs, counts, th, lo, b, out, num_steps, static, geometry, _gate_args(gate))
    return out, vs.view(v.shape), counts.view(v.shape)


def isi_native(
    x: Tensor, v: Tensor, state: IsiState, threshold: Tensor, start: int, allowance: float, num_steps: int, static: bool,
    bias: Tensor | None = None, out: Tensor | None = None, pool: Pool | None = None, gate: Gate | None = None,
) -> tuple[Tensor, Tensor, IsiState]:  # fmt: skip
    """The C++ ISI loop; :func:`isi_torch` where it does not apply."""
    layout = _native_layout(x, v, static, threshold, bias, pool=pool)
    fields = (state.count, state.fired, state.first, state.last, state.last_event)
    if layout is None or any(f.dtype != torch.float32 or f.shape != v.shape for f in fields):
        outputs, v, state = isi_torch(x, v, state, threshold, start, allowance, num_steps, static, bias, None if pool else out)
        return _pool_fallback(outputs, pool, gate), v, state
    ops, xs, vs, (th, b) = layout
    copies = [f.reshape(vs.shape).clone() for f in fields]
    out, geometry = _nativeoutput_buffer(out, v, num_steps, pool)
    ops.isi_run(xs, vs, *copies, th, b, out, num_steps, static, start, float(allowance), geometry, _gate_args(gate))
    count, fired, first, last, last_event = (c.view(v.shape) for c in copies)
    return out, vs.view(v.shape), IsiState(count=count, fired=fired, first=first, last=last, last_event=last_event)


def bistable_native(
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
    """The C++ burst loop with integrate-only steps; :func:`bistable_torch` where it does not apply."""
    layout = _native_layout(x, v, static, threshold, bias)
    if layout is None:
        return bistable_torch(x, v, threshold, bias, fire, max_spikes, num_steps, static, out)
    ops, xs, vs, (th, b) = layout
    out = output_buffer(out, v, num_steps)
    ops.burst_run(xs, vs, th, b, out, num_steps, static, max_spikes, [int(bool(f)) for f in fire], True, [], [])
    return out, vs.view(v.shape)
