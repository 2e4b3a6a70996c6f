"""Output buffers that a module reuses across calls once nothing else references them.

Why: on CPU a fresh output of a large layer is a fresh mmap, and touching it page-faults every
4 KiB; for the first neuron layer of ``fmnist-cnn`` at T = 32, batch 256 (604 MB of outputs),
allocating and first touching the buffer cost ~5x the writes themselves on the 2-core build
machine (above 32 MiB glibc maps every allocation afresh). A module asks :func:`reusable_empty` for its output
each call and gets last call's tensor back when it is referenced by nothing but this cache (checked with the
Python reference count, the tensor's and the storage's use counts, so an output that a hook, a recorder, the
caller or an autograd graph still holds is never overwritten: a new one is made instead). The cache is keyed
weakly by module, so copies and pickles of a network do not carry it and it goes away with the module.

:func:`scratch` serves the temporaries a function uses and drops before it returns (never its result): one
buffer per thread, shape and dtype, so a training step's element-wise passes do not page-fault fresh ones.
"""

from __future__ import annotations

import sys
import threading
import weakref

import torch
from torch import Tensor

_use_count = getattr(torch._C, "_storage_Use_Count", None)
_OWN_REFS = 3  # the cache's tuple, the local name and getrefcount's argument
_CACHES: weakref.WeakKeyDictionary[object, dict[str, tuple[Tensor, int]]] = weakref.WeakKeyDictionary()


def _count(tensor: Tensor) -> int:
    return _use_count(tensor.untyped_storage()._cdata)


def reusable_empty(owner: object, key: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
    """An uninitialised ``shape`` tensor with ``like``'s dtype and device, reused when unreferenced."""
    if _use_count is None or type(like) is not torch.Tensor or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return like.new_empty(shape)  # (a traced or exported graph must allocate its own outputs)
    cache = _CACHES.setdefault(owner, {})
    held = cache.get(key)
    if held is not None:
        tensor, alone = held
        # no Python reference, no view and no C++ holder (an autograd node that saved it) shares it
        unused = sys.getrefcount(tensor) <= _OWN_REFS and _count(tensor) == alone and tensor._use_count() == 1
        if unused and tensor.shape == shape and tensor.dtype == like.dtype and tensor.device == like.device:
            return tensor
    tensor = like.new_empty(shape)
    cache[key] = (tensor, _count(tensor))
    return tensor


def release(owner: object) -> None:
    """Drop ``owner``'s buffers (their memory is freed once no output refers to them)."""
    _CACHES.pop(owner, None)


_SCRATCH = threading.local()
_SCRATCH_SIZES = 8  # buffers kept per thread (one per layer size in use; the oldest is dropped)


def scratch(shape: tuple[int, ...], like: Tensor, key: str = "") -> Tensor:
    """An uninitialised ``shape`` tensor like ``like`` that this thread gets again on its next call with the same
    shape and ``key`` (callers that need two at once use two keys): only for temporaries that never leave the
    caller (a returned or saved scratch would be overwritten)."""
    if type(like) is not torch.Tensor or like.device.type != "cpu":
        return like.new_empty(shape)
    buffers: dict = _SCRATCH.__dict__.setdefault("buffers", {})
    slot = (key, tuple(shape), like.dtype)
    tensor = buffers.pop(slot, None)
    if tensor is None:
        tensor = like.new_empty(shape)
        while len(buffers) >= _SCRATCH_SIZES:
            buffers.pop(next(iter(buffers)))
    buffers[slot] = tensor  # (re)inserted last: the dict's order is least recently used first
    return tensor
