"""Convolutions of a converted network run over the time-flattened batch in cache-sized row chunks, on CPU.

Why: a converted network calls each convolution once on all ``K·N`` rows of a time chunk. On the
2-core build machine mkldnn's NCHW convolution of one huge batch ran 1.1-1.4x slower than the same
rows split into chunks of about 16 MiB of input (``fmnist-cnn``, a residual net with max pooling and a
held-out ONNX CNN at T = 32, batch 256; docs/benchmarks.md). Each output row depends only on its own
input row and mkldnn computes the rows of a chunk as it does those of the whole batch, so the results
are bit-identical (checked per conv shape and on whole networks: ``tests/neurons/test_conv_chunks.py``);
chunks are never smaller than :data:`MIN_ROWS` rows, so a kernel chosen for tiny batches is never
used. The chunks are written into one output buffer the module reuses
(:mod:`spikeconv.neurons.workspace`). Autograd, tracing, export and compilation, and other devices,
get the plain call.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from spikeconv.neurons.rerouting import reroute_forward_
from spikeconv.neurons.workspace import reusable_empty

__all__ = ["CHUNK_BYTES", "MIN_ROWS", "chunk_convolutions_", "chunked_conv2d"]

CHUNK_BYTES = 16 << 20
"""Input bytes per chunk (measured: 16-19 MiB chunks were fastest; 77 MiB ones no faster than the whole batch)."""
MIN_ROWS = 32
"""Fewest rows per chunk."""


def _plain(conv: nn.Conv2d, x: Tensor) -> Tensor:
    return nn.Conv2d.forward(conv, x)


def chunked_conv2d(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """``conv(x)``, bit-identical, computed in row chunks where that applies."""
    rows = x.shape[0] if x.dim() == 4 else 0
    per_row = x[0].numel() * x.element_size() if rows else 0
    chunk = max(MIN_ROWS, CHUNK_BYTES // max(per_row, 1))
    plain = (
        rows <= chunk or type(x) is not torch.Tensor or x.device.type != "cpu" or torch.is_grad_enabled()
        or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling()
    )  # fmt: skip
    if plain:
        return _plain(conv, x)
    first = _plain(conv, x[:chunk])
    out = reusable_empty(conv, "out", (rows, *first.shape[1:]), first)
    out[:chunk].copy_(first)
    del first
    for start in range(chunk, rows, chunk):
        out[start : start + chunk].copy_(_plain(conv, x[start : start + chunk]))
    return out


def _chunked_forward(self: nn.Conv2d, x: Tensor) -> Tensor:
    return chunked_conv2d(self, x)


def chunk_convolutions_(module: nn.Module) -> int:
    """Route every ``nn.Conv2d`` in ``module`` through :func:`chunked_conv2d` (in place).

    The modules keep their type, weights and state dict (exporters and op counters see plain convs);
    only their bound ``forward`` changes. Returns how many.
    """
    return reroute_forward_(module, nn.Conv2d, _chunked_forward)
