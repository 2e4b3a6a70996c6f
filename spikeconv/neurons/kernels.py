"""Multi-step kernels: run a neuron over ``K`` timesteps of a layer at once, one registry per neuron kind.

The time-first input is ``[K, N, ...]`` (or one ``[N, ...]`` tensor when the input is the same
at every step, as for a direct-encoded image in the first layer). A kernel returns ``[K, N, ...]``
outputs and the final state. Every neuron kind (``"if"``, ``"signed"``, ``"isi"``, ``"burst"``,
``"bistable"``) has one kernel per :class:`Kernel`:

- ``REFERENCE`` loops the kind's pure step function; it is the definition
  (:mod:`spikeconv.neurons.kernels_reference`).
- ``TORCH`` does the same arithmetic in preallocated buffers with in-place ops; always available
  (:mod:`spikeconv.neurons.kernels_torch`).
- ``NATIVE`` runs the C++ loops built by :mod:`spikeconv.neurons.native` (one pass over memory for
  all steps of a cache-sized block); falls back to ``TORCH`` where the extension is missing or the
  tensors are not float32 on CPU (:mod:`spikeconv.neurons.kernels_native`).
- ``INPLACE`` is the default: ``NATIVE`` where it applies, else ``TORCH``.

Every fast kernel gives bit-identical outputs and state to ``REFERENCE`` (same float operations in
the same order; ``tests/neurons/test_fast_kernels.py``). The optional ``bias`` (a per-step input
current broadcastable to one sample) is added as ``V + (X + bias)``, as the reference does by
adding it to the input first; the fast kernels fuse it instead of materialising ``X + bias``.
The optional ``out`` is a ``[K, N, ...]`` buffer the fast kernels write their outputs into (the
reference ignores it).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from spikeconv.errors import ConfigError
from spikeconv.neurons.kernels_native import bistable_native, burst_native, if_native, isi_native, signed_native
from spikeconv.neurons.kernels_reference import (
    bistable_reference,
    burst_if_reference,
    if_reference,
    isi_reference,
    signed_reference,
)
from spikeconv.neurons.kernels_torch import bistable_torch, burst_torch, if_inplace, isi_torch, signed_torch
from spikeconv.neurons.strategies import Kernel

IFKernel = Callable[..., tuple[Tensor, Tensor]]
KINDS = ("if", "signed", "isi", "burst", "bistable")


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
