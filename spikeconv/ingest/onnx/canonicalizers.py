"""One named function per ONNX op type: onnx2torch's module for a node -> standard torch.

Each function receives the fx node onnx2torch made for one ONNX node and rewrites it in place,
or leaves it alone when it cannot (the support check after canonicalisation then names it).
Shapes come from ``node.meta["tensor_meta"]``, recorded on the probe batch just before. Before
and after, for ``Conv -> Clip(0, 6) -> Concat``::

    conv = self.conv(x); clip = self.clip(conv); cat = self.concat(x, clip)    # OnnxClip, OnnxConcat
    conv = self.conv(x); clip = self.clip(conv); cat = torch.cat([x, clip], 1)   # clip: nn.Hardtanh(0, 6)
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable

import torch
from torch import fx, nn

from spikeconv._fx import add_submodule
from spikeconv.ingest.activations import site_module
from spikeconv.ingest.onnx.registry import OnnxNodeSite, register_onnx_op


def _to_function(site: OnnxNodeSite, fn: Callable, args: tuple, kwargs: dict | None = None) -> None:
    site.node.op, site.node.target = "call_function", fn
    site.node.args, site.node.kwargs = args, kwargs or {}


def _to_module(site: OnnxNodeSite, module: nn.Module) -> None:
    """Call ``module`` on the node's first input instead of onnx2torch's module."""
    old = str(site.node.target)
    if site.node.op == "call_module" and "." not in old and sum(n.target == old for n in site.gm.graph.nodes) == 1:
        delattr(site.gm, old)  # frees the name; onnx2torch makes one module per node
    site.node.op, site.node.target = "call_module", add_submodule(site.gm, site.node.name, module)
    site.node.args, site.node.kwargs = (site.node.args[0],), {}


def _bypass(site: OnnxNodeSite) -> None:
    site.node.replace_all_uses_with(site.node.args[0])
    site.gm.graph.erase_node(site.node)


def _shape(node: object) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def _constant(site: OnnxNodeSite, arg: object) -> torch.Tensor | None:
    """The value of a ``get_attr`` argument (weights, folded constants), else ``None``."""
    if not (isinstance(arg, fx.Node) and arg.op == "get_attr"):
        return None
    value = site.gm
    for part in str(arg.target).split("."):
        value = getattr(value, part, None)
    return value if isinstance(value, torch.Tensor) else None


@register_onnx_op("Conv", note="nn.Conv1d / nn.Conv2d (any stride, padding, dilation, groups)")
def conv(site: OnnxNodeSite) -> None:
    """onnx2torch already makes ``nn.Conv1d``/``nn.Conv2d``: nothing to do."""


@register_onnx_op("Relu", note="nn.ReLU: activation site -> IF neuron")
def relu(site: OnnxNodeSite) -> None:
    """onnx2torch already makes ``nn.ReLU``: nothing to do."""


@register_onnx_op("MaxPool", note="nn.MaxPool2d: convert makes it a spiking max-pool or an explicit average pool")
def max_pool(site: OnnxNodeSite) -> None:
    """onnx2torch already makes ``nn.MaxPool2d``: nothing to do."""


@register_onnx_op("AveragePool", note="nn.AvgPool1d / nn.AvgPool2d")
def average_pool(site: OnnxNodeSite) -> None:
    """onnx2torch already makes ``nn.AvgPool1d``/``nn.AvgPool2d``: nothing to do."""


@register_onnx_op("Gemm", note="nn.Linear (constant weight and bias)")
def gemm(site: OnnxNodeSite) -> None:
    """``nn.Linear`` from onnx2torch stays; an ``OnnxGemm`` on constants becomes one.

    ``Y = α·A·op(B) + β·C`` with ``op(B) = Bᵀ`` if transB, i.e. ``Linear(W = α·op(B)ᵀ, b = β·C)``.
    """
    if isinstance(site.module, nn.Linear) or getattr(site.module, "trans_a", True):
        return
    weight = _constant(site, site.node.args[1]) if len(site.node.args) > 1 else None
    bias = _constant(site, site.node.args[2]) if len(site.node.args) > 2 else None
    if weight is None or weight.dim() != 2 or (len(site.node.args) > 2 and (bias is None or bias.dim() > 1)):
        return
    weight = weight if site.module.trans_b else weight.T
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        linear.weight.copy_(weight * site.module.alpha)
        if bias is not None:
            linear.bias.copy_(bias.expand(weight.shape[0]) * site.module.beta)
    _to_module(site, linear)


@register_onnx_op("MatMul", note="nn.Linear without bias when the second input is a constant 2-D weight; of two activations: "
                  "a product (spike-equivalent operator)", joins=True)  # fmt: skip
def matmul(site: OnnxNodeSite) -> None:
    """``x @ W`` with a constant ``W [in, out]`` is ``Linear(weight = Wᵀ, bias=False)``; ``a @ b`` of data is ``torch.matmul``."""
    weight = _constant(site, site.node.args[1]) if len(site.node.args) == 2 else None
    if weight is None and len(site.node.args) == 2:
        _to_function(site, torch.matmul, tuple(site.node.args))  # a product of two activations (ingest/transformer_ops.py)
        return
    if weight is None or weight.dim() != 2:
        return
    linear = nn.Linear(weight.shape[0], weight.shape[1], bias=False)
    with torch.no_grad():
        linear.weight.copy_(weight.T)
    _to_module(site, linear)


@register_onnx_op("Clip", note="min 0, no max (or inf) -> nn.ReLU; min 0, max c -> capped site nn.Hardtanh(0, c)")
def clip(site: OnnxNodeSite) -> None:
    """``Clip(0, c)`` is a ReLU capped at ``c`` (ReLU6 when c = 6): one activation site.

    onnx2torch makes ``nn.ReLU`` (0, none), ``nn.ReLU6`` (0, 6) or ``OnnxClip(min_val, max_val)``.
    """
    low, high = getattr(site.module, "min_val", None), getattr(site.module, "max_val", None)
    if type(site.module) is nn.ReLU or low is None or float(low) != 0.0:
        return
    cap = math.inf if high is None else float(high)
    if cap > 0.0:
        _to_module(site, site_module(cap))


@register_onnx_op("BatchNormalization", note="nn.BatchNorm1d / nn.BatchNorm2d, folded into the conv/linear before it")
def batch_normalization(site: OnnxNodeSite) -> None:
    """``nn.BatchNorm*d`` from onnx2torch stays; ``OnnxBatchNorm`` on constant statistics becomes one."""
    if isinstance(site.module, (nn.BatchNorm1d, nn.BatchNorm2d)) or len(site.node.args) != 5:
        return
    scale, shift, mean, var = (_constant(site, arg) for arg in site.node.args[1:])
    rank = len(_shape(site.node.args[0]) or ())
    if any(t is None for t in (scale, shift, mean, var)) or rank not in (2, 3, 4):
        return
    bn = (nn.BatchNorm2d if rank == 4 else nn.BatchNorm1d)(scale.numel(), eps=site.module.epsilon)
    with torch.no_grad():
        for tensor, value in ((bn.weight, scale), (bn.bias, shift), (bn.running_mean, mean), (bn.running_var, var)):
            tensor.copy_(value)
    _to_module(site, bn.eval())


def _binary(site: OnnxNodeSite, fn: Callable) -> None:
    if getattr(site.module, "broadcast", None) == 1 and getattr(site.module, "axis", None) is not None:
        return  # opset < 7 axis broadcasting: left for the support check to name
    _to_function(site, fn, tuple(site.node.args[:2]))


@register_onnx_op("Add", note="operator.add (residual sums, bias additions)", joins=True)
def add(site: OnnxNodeSite) -> None:
    """``OnnxBinaryMathOperation('Add')`` -> ``a + b``."""
    _binary(site, operator.add)


@register_onnx_op("Sub", note="operator.sub (e.g. input normalisation)", joins=True)
def sub(site: OnnxNodeSite) -> None:
    """``OnnxBinaryMathOperation('Sub')`` -> ``a - b``."""
    _binary(site, operator.sub)


@register_onnx_op("Mul", note="operator.mul: scaling by a constant; of two activations, a product (spike-equivalent operator)",
                  joins=True)  # fmt: skip
def mul(site: OnnxNodeSite) -> None:
    """``OnnxBinaryMathOperation('Mul')`` -> ``a * b`` (the scan made sure one side is constant)."""
    _binary(site, operator.mul)


@register_onnx_op("Div", note="operator.truediv by a constant")
def div(site: OnnxNodeSite) -> None:
    """``OnnxBinaryMathOperation('Div')`` -> ``a / b`` (float data; the divisor is constant)."""
    _binary(site, operator.truediv)


@register_onnx_op("Concat", note="torch.cat", joins=True)
def concat(site: OnnxNodeSite) -> None:
    """``OnnxConcat(axis)(*xs)`` -> ``torch.cat([*xs], dim=axis)``."""
    _to_function(site, torch.cat, (list(site.node.args),), {"dim": site.module.axis})


@register_onnx_op("GlobalAveragePool", note="nn.AdaptiveAvgPool2d(1) (nn.AdaptiveAvgPool1d(1) on 3-D inputs)")
def global_average_pool(site: OnnxNodeSite) -> None:
    """Mean over all spatial axes, keeping them as size 1: an adaptive average pool to 1."""
    rank = len(_shape(site.node.args[0]) or ())
    if rank in (3, 4):
        _to_module(site, nn.AdaptiveAvgPool2d(1) if rank == 4 else nn.AdaptiveAvgPool1d(1))


@register_onnx_op("ReduceMean", note="nn.AdaptiveAvgPool2d(1) over both spatial axes, else torch.mean")
def reduce_mean(site: OnnxNodeSite) -> None:
    """``ReduceMean(axes, keepdims)`` -> a global average pool or ``torch.mean(x, axes, keepdim)``."""
    rank = len(_shape(site.node.args[0]) or ())
    axes = getattr(site.module, "axes", None)
    if getattr(site.module, "operation_type", None) != "ReduceMean" or not axes or not rank:
        return
    axes = sorted(axis % rank for axis in axes)
    if axes[0] == 0:
        return  # averages over the batch: left for the support check to name
    keepdim = bool(site.module.keepdims)
    if rank == 4 and axes == [2, 3] and keepdim:
        _to_module(site, nn.AdaptiveAvgPool2d(1))
    else:
        _to_function(site, torch.mean, (site.node.args[0],), {"dim": tuple(axes), "keepdim": keepdim})


@register_onnx_op("Flatten", note="nn.Flatten (axis 1), else torch.reshape keeping the batch axis")
def flatten(site: OnnxNodeSite) -> None:
    """``Flatten(axis=1)`` is already ``nn.Flatten``; other axes become a batch-first reshape."""
    if not isinstance(site.module, nn.Flatten):
        reshape(site)


@register_onnx_op("Reshape", note="torch.reshape(x, (-1, *shape[1:])) keeping the batch axis")
def reshape(site: OnnxNodeSite) -> None:
    """A reshape that keeps the batch axis, with its other sizes read off the probe run.

    The ONNX target shape may be computed in the graph (``Shape -> Gather -> Concat``) or fix the
    exported batch size; the canonical form ``reshape(x, (-1, d1, d2, ...))`` works for any batch,
    including the time-flattened ``T·N`` batch of a converted network. A reshape that moves data
    across the batch axis is left alone, and the support check names it.
    """
    source, before, after = site.node.args[0], _shape(site.node.args[0]), _shape(site.node)
    if before is None or after is None or not before or not after or before[0] != after[0]:
        return
    _to_function(site, torch.reshape, (source, (-1, *after[1:])))


@register_onnx_op("Identity", note="removed")
def identity(site: OnnxNodeSite) -> None:
    """An identity is removed."""
    _bypass(site)


@register_onnx_op("Dropout", note="removed (inference)")
def dropout(site: OnnxNodeSite) -> None:
    """Dropout is the identity at inference; removed."""
    _bypass(site)
