"""Multi-step kernels: run a neuron over ``K`` timesteps of a layer at once.

The time-first input is ``[K, N, ...]`` (or one ``[N, ...]`` tensor when the input is the same
at every step, as for a direct-encoded image in the first layer). A kernel returns ``[K, N, ...]``
outputs and the final membrane. ``REFERENCE`` loops over :func:`if_step`; ``INPLACE`` does the same
arithmetic in preallocated buffers, which matters on CPU where each fresh large tensor is a page
fault.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from spikeconv.errors import ConfigError
from spikeconv.neurons.dynamics import if_step, multi_spike_if_step
from spikeconv.neurons.strategies import Kernel, Reset

IFKernel = Callable[[Tensor, Tensor, Tensor, Reset, int, bool], tuple[Tensor, Tensor]]


def _step_input(x: Tensor, t: int, static: bool) -> Tensor:
    return x if static else x[t]


def if_reference(
    x: Tensor, v: Tensor, threshold: Tensor, reset: Reset, num_steps: int, static: bool
) -> tuple[Tensor, Tensor]:
    """Loop the pure :func:`if_step` over time; the definition every faster kernel must match."""
    outputs = []
    for t in range(num_steps):
        out, v = if_step(_step_input(x, t, static), v, threshold, reset)
        outputs.append(out)
    return torch.stack(outputs), v


def if_inplace(
    x: Tensor, v: Tensor, threshold: Tensor, reset: Reset, num_steps: int, static: bool
) -> tuple[Tensor, Tensor]:
    """Same arithmetic as :func:`if_reference`, with one output allocation and in-place updates."""
    v = v.clone()
    step_shape = v.shape
    outputs = v.new_empty((num_steps, *step_shape))
    fired = torch.empty(step_shape, dtype=torch.bool, device=v.device)
    for t in range(num_steps):
        v.add_(_step_input(x, t, static))
        torch.ge(v, threshold, out=fired)
        out_t = outputs[t]
        torch.mul(fired, threshold, out=out_t)
        if reset is Reset.SUBTRACT:
            v.sub_(out_t)
        else:
            v.masked_fill_(fired, 0.0)
    return outputs, v


def burst_if_reference(
    x: Tensor, v: Tensor, threshold: Tensor, max_spikes: int, num_steps: int, static: bool
) -> tuple[Tensor, Tensor]:
    """Loop :func:`multi_spike_if_step` (up to ``max_spikes`` spikes per step, soft reset) over time."""
    outputs = []
    for t in range(num_steps):
        out, v = multi_spike_if_step(_step_input(x, t, static), v, threshold, max_spikes)
        outputs.append(out)
    return torch.stack(outputs), v


_IF_KERNELS: dict[Kernel, IFKernel] = {}


def register_if_kernel(kernel: Kernel, fn: IFKernel) -> None:
    """Register the implementation of ``kernel`` for IF neurons; a second registration raises."""
    if kernel in _IF_KERNELS:
        raise ConfigError(f"an IF kernel is already registered for {kernel.value!r}")
    _IF_KERNELS[kernel] = fn


def if_kernel(kernel: Kernel) -> IFKernel:
    """Look up the registered IF kernel for ``kernel``."""
    try:
        return _IF_KERNELS[kernel]
    except KeyError:
        raise ConfigError(f"no IF kernel registered for {kernel.value!r}") from None


def available_if_kernels() -> list[Kernel]:
    """The kernels that have an IF implementation (every one is tested against the reference)."""
    return list(_IF_KERNELS)


register_if_kernel(Kernel.REFERENCE, if_reference)
register_if_kernel(Kernel.INPLACE, if_inplace)
