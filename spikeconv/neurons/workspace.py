"""Output buffers that a module reuses across calls once nothing else references them.

Why: on CPU a fresh output of a large layer is a fresh mmap, and touching it page-faults every
4 KiB; for the first neuron layer of ``fmnist-cnn`` at T = 32, batch 256 (604 MB of outputs),
allocating and first touching the buffer cost ~5x the writes themselves on the 2-core build
machine. A module asks :func:`reusable_empty` for its output each call and gets last call's tensor
back when its storage is referenced by nothing but this cache (checked with the Python reference count and the
storage's use count, so an output that a hook, a recorder or the caller kept is never overwritten: a new one
is made instead). The cache is keyed weakly by module, so copies and pickles of a network do not
carry it and it goes away with the module.
"""

from __future__ import annotations

import sys
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
        unused = sys.getrefcount(tensor) <= _OWN_REFS and _count(tensor) == alone  # no Python object, no view shares it
        if unused and tensor.shape == shape and tensor.dtype == like.dtype and tensor.device == like.device:
            return tensor
    tensor = like.new_empty(shape)
    cache[key] = (tensor, _count(tensor))
    return tensor


def release(owner: object) -> None:
    """Drop ``owner``'s buffers (their memory is freed once no output refers to them)."""
    _CACHES.pop(owner, None)
