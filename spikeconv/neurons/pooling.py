"""Average pooling of spike maps without aten's slow channels-first CPU path.

Profiling the converted ``fmnist-cnn`` (torch 2.14, 2 threads) put ``avg_pool2d`` at a quarter of
the forward: its NCHW kernel runs at about a third of the memory bandwidth (2x2 pooling of a
``[2048, 32, 24, 24]`` spike map: 244 ms against 128 ms for a plain copy). Its channels-last kernel
is fast and gives the same values, but a channels-last pooled map makes the next mkldnn
convolution sum in another order (results differ in the last bits), so the layout cannot simply
change. :func:`avg_pool2d_exact` pools NCHW planes in C++ with aten's arithmetic (each window
summed row by row from 0, divided by ``kh·kw``), bit-identical and about 4x faster; it falls back
to ``F.avg_pool2d`` wherever that arithmetic is not the one aten uses (padding, ceil mode, a
divisor override) or the C++ kernels are unavailable. With a gradient (direct training) the forward runs the
same C++ pooling and the backward repeats aten's ``avg_pool2d_backward`` in C++ (its NCHW kernel is as slow), so
trained weights are bit-identical too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from spikeconv.neurons.native import native_ops_for
from spikeconv.neurons.rerouting import reroute_forward_
from spikeconv.neurons.workspace import reusable_empty


def _pair(value: int | tuple[int, ...] | None) -> tuple[int, int] | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    if isinstance(value, tuple | list) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    return None


def exact_geometry(pool: nn.Module) -> tuple[int, int, int, int] | None:
    """``(kh, kw, sh, sw)`` of an ``nn.AvgPool2d`` whose arithmetic the C++ pooling reproduces (no padding, ceil
    mode or divisor override), else ``None``."""
    if type(pool) is not nn.AvgPool2d or pool.ceil_mode or pool.divisor_override is not None or _pair(pool.padding) != (0, 0):
        return None
    kernel = _pair(pool.kernel_size)
    stride = _pair(pool.stride if pool.stride not in (None, (), []) else pool.kernel_size)
    if kernel is None or stride is None or min(*kernel, *stride) < 1:
        return None
    return (*kernel, *stride)


def _pool_into(ops, x: Tensor, out: Tensor, geometry: tuple[int, int, int, int]) -> Tensor:  # noqa: ANN001
    n, c, h, w = x.shape
    ops.avg_pool_run(x.contiguous().view(n * c, h, w), out.view(n * c, *out.shape[2:]), *geometry)
    return out


def _pooled_shape(x: Tensor, geometry: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    kh, kw, sh, sw = geometry
    return x.shape[0], x.shape[1], (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1


class _ExactAvgPool(torch.autograd.Function):
    """Average pooling with both passes in C++: aten's forward and backward arithmetic, bit for bit."""

    @staticmethod
    def forward(ctx, x, pool, geometry, ops):  # noqa: ANN001, ANN205 - autograd's signature
        ctx.geometry, ctx.ops, ctx.input_shape, ctx.pool = geometry, ops, x.shape, pool
        return _pool_into(ops, x, x.new_empty(_pooled_shape(x, geometry)), geometry)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # noqa: ANN001, ANN205 - autograd hands a float32 CPU output a float32 CPU gradient
        n, c, h, w = ctx.input_shape
        # reused once the previous step's gradient is gone (a first layer's is above glibc's 32 MiB mmap limit)
        grad_in = reusable_empty(ctx.pool, "grad", ctx.input_shape, grad)
        ctx.ops.avg_pool_grad(grad.contiguous().view(n * c, *grad.shape[2:]), grad_in.view(n * c, h, w), *ctx.geometry)
        return grad_in, None, None, None


def avg_pool2d_exact(pool: nn.AvgPool2d, x: Tensor) -> Tensor:
    """``pool(x)``, bit-identical (and so its gradient), through the C++ kernels where they apply."""
    geometry = exact_geometry(pool)
    applies = (
        geometry is not None and x.dim() == 4 and x.dtype == torch.float32 and x.device.type == "cpu"
        and x.shape[2] >= geometry[0] and x.shape[3] >= geometry[1] and x.numel() > 0
    )  # fmt: skip
    ops = native_ops_for(x) if applies else None
    if ops is None:
        return F.avg_pool2d(x, pool.kernel_size, pool.stride, pool.padding, pool.ceil_mode, pool.count_include_pad,
                            pool.divisor_override)  # fmt: skip
    if torch.is_grad_enabled() and x.requires_grad:
        return _ExactAvgPool.apply(x, pool, geometry, ops)
    return _pool_into(ops, x, reusable_empty(pool, "out", _pooled_shape(x, geometry), x), geometry)


def _exact_forward(self: nn.AvgPool2d, x: Tensor) -> Tensor:
    return avg_pool2d_exact(self, x)


def accelerate_avg_pools_(module: nn.Module) -> int:
    """Route every ``nn.AvgPool2d`` in ``module`` through :func:`avg_pool2d_exact` (in place).

    The modules keep their type (``type(m) is nn.AvgPool2d``: exporters and op counters that look
    pool modules up by type still see them); only their bound ``forward`` changes. Returns how many.
    """
    return reroute_forward_(module, nn.AvgPool2d, _exact_forward)
