"""Multi-step kernels: run a neuron over ``K`` timesteps of a layer at once.

The time-first input is ``[K, N, ...]`` (or one ``[N, ...]`` tensor when the input is the same
at every step, as for a direct-encoded image in the first layer). A kernel returns ``[K, N, ...]``
outputs and the final state. Every neuron kind (``"if"``, ``"signed"``, ``"isi"``, ``"burst"``,
``"bistable"``) has one kernel per :class:`Kernel`:

- ``REFERENCE`` loops the kind's pure step function; it is the definition.
- ``TORCH`` does the same arithmetic in preallocated buffers with in-place ops (on CPU each fresh
  large tensor is a page fault, and a bool→float mask is a dtype copy); always available.
- ``NATIVE`` runs the C++ loops of :mod:`spikeconv.neurons.native` (one pass over memory for
  all steps of a cache-sized block); falls back to ``TORCH`` where the extension is missing or the
  tensors are not float32 on CPU.
- ``INPLACE`` is the default: ``NATIVE`` where it applies, else ``TORCH``.

Every fast kernel gives bit-identical outputs and state to ``REFERENCE`` (same float operations in
the same order; ``tests/neurons/test_fast_kernels.py``). The optional ``bias`` (a per-step input
current broadcastable to one sample) is added as ``V + (X + bias)``, as the reference does by
adding it to the input first; the fast kernels fuse it instead of materialising ``X + bias``.
The optional ``out`` is a ``[K, N, ...]`` buffer the fast kernels write their outputs into (the
reference ignores it).

The NATIVE kernels of the IF family also take ``pool = (kh, kw, sh, sw)``: the output is then the
average pool (no padding) of each step's ``[N, C, H, W]`` spikes, ``[K, N, C, OH, OW]``, computed
block by block in C++ so that the full-size spike map is never written (:mod:`spikeconv.neurons.fusion`);
the values are those of ``avg_pool2d`` on the unpooled output, which the pure-torch fallback computes.
With ``gate = (cumulative, emitted)`` (flat ``[N·C, H, W]`` and ``[N·C, OH, OW]`` float32 state of a 2x2
spiking max-pool gate, updated in place) the step outputs go through that gate instead; there is no
fallback for it, so callers check that the C++ kernels apply first (:class:`~spikeconv.neurons.fusion.NeuronPool`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from spikeconv.errors import ConfigError
from spikeconv.neurons.dynamics import if_step, multi_spike_if_step
from spikeconv.neurons.native import native_ops_for
from spikeconv.neurons.sin_correction import IsiState, isi_if_loop, signed_if_loop
from spikeconv.neurons.strategies import Kernel, Reset

IFKernel = Callable[..., tuple[Tensor, Tensor]]
KINDS = ("if", "signed", "isi", "burst", "bistable")


def _output(out: Tensor | None, v: Tensor, num_steps: int, step_shape: Sequence[int] | None = None) -> Tensor:
    """The ``[K, N, ...]`` output buffer (``step_shape`` per step, else ``v``'s): the caller's (see
    :mod:`spikeconv.neurons.workspace`) or a new one."""
    shape = (num_steps, *(v.shape if step_shape is None else step_shape))
    if out is not None and out.shape == shape and out.dtype == v.dtype and out.device == v.device and out.is_contiguous():
        return out
    return v.new_empty(shape)


def _step_input(x: Tensor, t: int, static: bool) -> Tensor:
    return x if static else x[t]


def _biased(x: Tensor, bias: Tensor | None) -> Tensor:
    return x if bias is None else x + bias


# ---------------------------------------------------------------------------------------------
# REFERENCE: loops of the pure steps


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
        out, v = if_step(_step_input(x, t, static), v, threshold, reset)
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
        out, v = multi_spike_if_step(_step_input(x, t, static), v, threshold, max_spikes)
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
        v = v + _step_input(x, t, static) + bias
        if fire[t]:
            spikes = torch.clamp(torch.floor(v / threshold), 0, max_spikes)
            out = spikes * threshold
            v = v - out
        else:
            out = torch.zeros_like(v)
        outputs.append(out)
    return torch.stack(outputs), v


# ---------------------------------------------------------------------------------------------
# TORCH: the same arithmetic with preallocated buffers and in-place ops


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
    outputs = _output(out, v, num_steps)
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
    outputs = _output(out, v, num_steps)
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
    outputs = _output(out, v, num_steps)
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
    outputs = _output(out, v, num_steps)
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
    outputs = _output(out, v, num_steps)
    for t in range(num_steps):
        v.add_(_step_input(x, t, static)).add_(bias)
        out_t = outputs[t]
        if fire[t]:
            torch.div(v, threshold, out=out_t)
            out_t.floor_().clamp_(0, max_spikes).mul_(threshold)
            v.sub_(out_t)
        else:
            out_t.zero_()
    return outputs, v


# ---------------------------------------------------------------------------------------------
# NATIVE: the C++ loops (float32 on CPU), else TORCH


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


def _native_output(out: Tensor | None, v: Tensor, num_steps: int, pool: Pool | None) -> tuple[Tensor, list[int]]:
    """The output buffer and the C++ pool argument ({H, W, kh, kw, sh, sw}, empty without pooling)."""
    if pool is None:
        return _output(out, v, num_steps), []
    return _output(out, v, num_steps, pooled_shape(v.shape, pool)), [int(v.shape[-2]), int(v.shape[-1]), *pool]


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
    out, geometry = _native_output(out, v, num_steps, pool)
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
    out, geometry = _native_output(out, v, num_steps, pool)
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
    out, geometry = _native_output(out, v, num_steps, pool)
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
    out, geometry = _native_output(out, v, num_steps, pool)
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
    out = _output(out, v, num_steps)
    ops.burst_run(xs, vs, th, b, out, num_steps, static, max_spikes, [int(bool(f)) for f in fire], True, [], [])
    return out, vs.view(v.shape)


# ---------------------------------------------------------------------------------------------
# Registry


_KERNELS: dict[tuple[str, Kernel], Callable] = {}


def register_kernel(kind: str, kernel: Kernel, fn: Callable) -> None:
    """Register the implementation of ``kernel`` for neurons of ``kind``; a second registration raises."""
    if kind not in KINDS:
        raise ConfigError(f"unknown neuron kind {kind!r}; choose one of {', '.join(KINDS)}")
    if (kind, kernel) in _KERNELS:
        raise ConfigError(f"a {kind} kernel is already registered for {kernel.value!r}")
    _KERNELS[(kind, kernel)] = fn


def neuron_kernel(kind: str, kernel: Kernel) -> Callable:
    """Look up the registered ``kind`` kernel for ``kernel``."""
    try:
        return _KERNELS[(kind, kernel)]
    except KeyError:
        raise ConfigError(f"no {kind} kernel registered for {kernel.value!r}") from None


def available_kernels(kind: str) -> list[Kernel]:
    """The kernels that have a ``kind`` implementation (every one is tested against the reference)."""
    return [kernel for (k, kernel) in _KERNELS if k == kind]


def register_if_kernel(kernel: Kernel, fn: IFKernel) -> None:
    """Register the implementation of ``kernel`` for IF neurons; a second registration raises."""
    register_kernel("if", kernel, fn)


def if_kernel(kernel: Kernel) -> IFKernel:
    """Look up the registered IF kernel for ``kernel``."""
    return neuron_kernel("if", kernel)


def available_if_kernels() -> list[Kernel]:
    """The kernels that have an IF implementation (every one is tested against the reference)."""
    return available_kernels("if")


for _kind, _fns in {
    "if": (if_reference, if_inplace, if_native),
    "burst": (burst_if_reference, burst_torch, burst_native),
    "signed": (signed_reference, signed_torch, signed_native),
    "isi": (isi_reference, isi_torch, isi_native),
    "bistable": (bistable_reference, bistable_torch, bistable_native),
}.items():
    for _kernel, _fn in zip((Kernel.REFERENCE, Kernel.TORCH, Kernel.NATIVE, Kernel.INPLACE), (*_fns, _fns[2]), strict=True):
        register_kernel(_kind, _kernel, _fn)
