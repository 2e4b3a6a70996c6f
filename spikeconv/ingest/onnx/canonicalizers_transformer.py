"""ONNX ops of transformers: LayerNormalization, Softmax, Erf (inside GELU), Transpose, Gather, Expand of the class token.

Each becomes the standard torch spelling a traced torch model has, so the canonical passes of
:mod:`spikeconv.ingest.transformer` treat ONNX and torch models alike. The attention blocks reach
here already batch first (:mod:`spikeconv.ingest.onnx.attention`); ``MatMul`` and ``Mul`` of two
activations are products (:mod:`spikeconv.ingest.onnx.canonicalizers`).
"""

from __future__ import annotations

import operator

import numpy as np
import onnx
import torch
from torch import fx, nn

from spikeconv._fx import add_submodule
from spikeconv.ingest.onnx.registry import OnnxNodeSite, register_onnx_op
from spikeconv.ingest.onnx.tidy import node_attribute

__all__: list[str] = []


def _to_function(site: OnnxNodeSite, fn: object, args: tuple, kwargs: dict | None = None) -> None:
    site.node.op, site.node.target = "call_function", fn
    site.node.args, site.node.kwargs = args, kwargs or {}


def _constant(site: OnnxNodeSite, arg: object) -> torch.Tensor | None:
    if not (isinstance(arg, fx.Node) and arg.op == "get_attr"):
        return None
    value = site.gm
    for part in str(arg.target).split("."):
        value = getattr(value, part, None)
    return value if isinstance(value, torch.Tensor) else None


def _rank(node: object) -> int:
    meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
    return len(meta.shape) if meta is not None and hasattr(meta, "shape") else 0


def _axis_check(name: str, default: int):
    def check(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> str | None:
        return "acts across the batch dimension 0; keep the batch apart" if int(node_attribute(node, name, default)) == 0 else None

    return check


def _layer_norm_check(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> str | None:
    if int(node_attribute(node, "axis", -1)) == 0:
        return "normalises across the batch dimension 0"
    return None if all(name in constants for name in node.input[1:] if name) else "needs constant scale and bias"


@register_onnx_op("LayerNormalization", note="nn.LayerNorm (constant scale and bias): a spike-equivalent operator after conversion",
                  check=_layer_norm_check)  # fmt: skip
def layer_normalization(site: OnnxNodeSite) -> None:
    """``OnnxLayerNorm(axis, epsilon)(x, scale, bias)`` -> ``nn.LayerNorm`` over the dimensions from ``axis`` on."""
    rank = _rank(site.node.args[0])
    scale = _constant(site, site.node.args[1]) if len(site.node.args) > 1 else None
    bias = _constant(site, site.node.args[2]) if len(site.node.args) > 2 else None
    if not rank or scale is None:
        return
    axis = int(getattr(site.module, "axis", -1)) % rank
    shape = tuple(site.node.args[0].meta["tensor_meta"].shape[axis:])
    module = nn.LayerNorm(shape, eps=float(getattr(site.module, "epsilon", 1e-5)), bias=bias is not None)
    with torch.no_grad():
        module.weight.copy_(scale.expand(shape))
        if bias is not None:
            module.bias.copy_(bias.expand(shape))
    site.node.op = "call_module"
    site.node.target = _replace_module(site, module)
    site.node.args, site.node.kwargs = (site.node.args[0],), {}


def _replace_module(site: OnnxNodeSite, module: nn.Module) -> str:
    return add_submodule(site.gm, site.node.name, module)


def _softmax_check(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> str | None:
    return "a softmax over the batch dimension 0 cannot be converted" if int(node_attribute(node, "axis", -1)) == 0 else None


@register_onnx_op("Softmax", note="nn.Softmax over a feature axis (opset 13+): a spike-equivalent operator after conversion",
                  check=_softmax_check)  # fmt: skip
def softmax(site: OnnxNodeSite) -> None:
    """onnx2torch already makes ``nn.Softmax(dim)`` (opset 13+); older flattening softmaxes are left for the support check."""


@register_onnx_op("Erf", note="torch.erf inside 0.5·x·(1 + erf(x/√2)): the pattern becomes nn.GELU")
def erf(site: OnnxNodeSite) -> None:
    """``OnnxErf(x)`` -> ``torch.erf(x)``; ingest gives its GELU pattern an ``nn.GELU`` (other uses are refused there)."""
    _to_function(site, torch.erf, (site.node.args[0],))


def _transpose_check(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> str | None:
    perm = node_attribute(node, "perm", None)
    return None if perm and int(perm[0]) == 0 else "moves the batch dimension; keep dimension 0 first"


@register_onnx_op("Transpose", note="torch.permute that keeps the batch first", check=_transpose_check)
def transpose(site: OnnxNodeSite) -> None:
    """``OnnxTranspose(perm)(x)`` -> ``torch.permute(x, perm)``."""
    _to_function(site, torch.permute, (site.node.args[0], tuple(int(p) for p in site.module.perm)))


def _gather_check(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> str | None:
    index = constants.get(node.input[1])
    if index is None or index.ndim != 0:
        return "only a constant scalar index (x[:, i]) is converted"
    return "indexes the batch dimension 0" if int(node_attribute(node, "axis", 0)) == 0 else None


@register_onnx_op("Gather", note="x[:, i] with a constant index along a feature axis", check=_gather_check)
def gather(site: OnnxNodeSite) -> None:
    """``Gather(x, i, axis)`` -> ``x[:, ..., i]``."""
    index = _constant(site, site.node.args[1])
    rank = _rank(site.node.args[0])
    if index is None or index.dim() != 0 or not rank:
        return
    axis = int(getattr(site.module, "_axis", getattr(site.module, "axis", 0))) % rank  # onnx2torch keeps it private
    _to_function(site, operator.getitem, (site.node.args[0], (*(slice(None),) * axis, int(index))))


@register_onnx_op("Expand", note="a constant (the class token) broadcast to the batch: x.expand(N, ...)")
def expand(site: OnnxNodeSite) -> None:
    """``Expand(constant [1, ...], shape)`` whose target is ``[N, ...]`` -> ``constant.expand(input.shape[0], -1, ...)``."""
    value = _constant(site, site.node.args[0])
    meta = site.node.meta.get("tensor_meta")
    if value is None or meta is None or value.dim() != len(meta.shape):
        return
    if value.shape[0] != 1 or tuple(value.shape[1:]) != tuple(meta.shape[1:]):
        return
    graph = site.gm.graph
    source = next(n for n in graph.nodes if n.op == "placeholder")
    with graph.inserting_before(site.node):
        batch = graph.call_function(operator.getitem, (graph.call_function(getattr, (source, "shape")), 0))
    site.node.op, site.node.target = "call_method", "expand"
    site.node.args, site.node.kwargs = (site.node.args[0], batch, *([-1] * (value.dim() - 1))), {}
