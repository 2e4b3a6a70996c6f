"""ATen ops continued: pooling, sums and joins, reshapes and no-ops (see :mod:`.ops`)."""

from __future__ import annotations

import operator
from collections.abc import Sequence

import torch
from torch import fx, nn

from spikeconv.ingest.exported.op_helpers import (
    argument,
    batch_kept,
    dim_not_batch,
    first_of_tuple,
    pair,
    shape,
    to_function,
    to_module,
)
from spikeconv.ingest.exported.registry import AtenSite, Varying, register_aten_op


# ------------------------------------------------------------------ pooling
def _max_pool(site: AtenSite) -> nn.MaxPool2d:
    node = site.node
    kernel = pair(node.args[1], 1)
    stride = pair(argument(node, 2, "stride", []), 0)
    return nn.MaxPool2d(kernel, stride=stride if stride != (0, 0) else kernel, padding=pair(argument(node, 3, "padding", 0), 0),
                        dilation=pair(argument(node, 4, "dilation", 1), 1),
                        ceil_mode=bool(argument(node, 5, "ceil_mode", False)))  # fmt: skip


@register_aten_op("max_pool2d", note="nn.MaxPool2d: convert makes it a spiking max-pool or an explicit average pool")
def max_pool2d(site: AtenSite) -> None:
    """``aten.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode)`` -> ``nn.MaxPool2d``."""
    to_module(site, _max_pool(site))


@register_aten_op("max_pool2d_with_indices", note="nn.MaxPool2d (core ATen form; the indices must be unused)")
def max_pool2d_with_indices(site: AtenSite) -> None:
    """``aten.max_pool2d_with_indices(...)[0]`` -> ``nn.MaxPool2d``."""
    module = _max_pool(site)
    first_of_tuple(site)
    to_module(site, module)


@register_aten_op("avg_pool2d", note="nn.AvgPool2d")
def avg_pool2d(site: AtenSite) -> None:
    """``aten.avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)`` -> ``nn.AvgPool2d``."""
    node = site.node
    kernel = pair(node.args[1], 1)
    stride = pair(argument(node, 2, "stride", []), 0)
    module = nn.AvgPool2d(kernel, stride=stride if stride != (0, 0) else kernel, padding=pair(argument(node, 3, "padding", 0), 0),
                          ceil_mode=bool(argument(node, 4, "ceil_mode", False)),
                          count_include_pad=bool(argument(node, 5, "count_include_pad", True)),
                          divisor_override=argument(node, 6, "divisor_override", None))  # fmt: skip
    to_module(site, module)


@register_aten_op("adaptive_avg_pool2d", "_adaptive_avg_pool2d", note="nn.AdaptiveAvgPool2d")
def adaptive_avg_pool2d(site: AtenSite) -> None:
    """``aten.adaptive_avg_pool2d(x, size)`` -> ``nn.AdaptiveAvgPool2d(size)``."""
    to_module(site, nn.AdaptiveAvgPool2d(pair(site.node.args[1], 1)))


@register_aten_op("mean", note="torch.mean over feature dimensions (global average pooling)", check=dim_not_batch(1, "dim", 0))
def mean(site: AtenSite) -> None:
    """``aten.mean.dim(x, dims, keepdim)`` -> ``torch.mean``."""
    node = site.node
    to_function(site, torch.mean, (node.args[0], list(node.args[1])), {"keepdim": bool(argument(node, 2, "keepdim", False))})


@register_aten_op("sum", note="torch.sum over feature dimensions", check=dim_not_batch(1, "dim", 0))
def sum_(site: AtenSite) -> None:
    """``aten.sum.dim_IntList(x, dims, keepdim)`` -> ``torch.sum``."""
    node = site.node
    to_function(site, torch.sum, (node.args[0], list(node.args[1])), {"keepdim": bool(argument(node, 2, "keepdim", False))})


# ------------------------------------------------------------------ sums, scalings, joins
def _scaled_binary(site: AtenSite, op) -> None:
    """``op(a, alpha * b)`` for aten's ``add``/``sub`` with their optional ``alpha`` factor."""
    node = site.node
    other, alpha = node.args[1], argument(node, 2, "alpha", 1)
    if alpha != 1:
        with site.gm.graph.inserting_before(node):
            other = site.gm.graph.call_function(operator.mul, (other, alpha))
    to_function(site, op, (node.args[0], other))


@register_aten_op("add", note="operator.add: residual sum (alpha scales the second term)", varying=Varying.ANY)
def add(site: AtenSite) -> None:
    """``aten.add(a, b, alpha)`` -> ``a + b`` (``a + alpha * b`` when alpha is not 1)."""
    _scaled_binary(site, operator.add)


@register_aten_op("sub", note="operator.sub: difference", varying=Varying.ANY)
def sub(site: AtenSite) -> None:
    """``aten.sub(a, b, alpha)`` -> ``a - b`` (``a - alpha * b`` when alpha is not 1)."""
    _scaled_binary(site, operator.sub)


@register_aten_op("mul", note="operator.mul: scaling by a constant, or a product of two activations (spike-equivalent)",
                  varying=Varying.ANY)  # fmt: skip
def mul(site: AtenSite) -> None:
    """``aten.mul(a, b)`` -> ``a * b`` (of two activations: a product, ``spikeconv.ingest.transformer_ops``)."""
    to_function(site, operator.mul, tuple(site.node.args[:2]))


def _div_check(node: fx.Node) -> str | None:
    return "rounded division has no rate equivalent" if node.kwargs.get("rounding_mode") is not None else None


@register_aten_op("div", note="operator.truediv: division by a constant", check=_div_check)
def div(site: AtenSite) -> None:
    """``aten.div(a, c)`` -> ``a / c``."""
    to_function(site, operator.truediv, tuple(site.node.args[:2]))


@register_aten_op("neg", note="operator.neg: negation")
def neg(site: AtenSite) -> None:
    """``aten.neg(x)`` -> ``-x``."""
    to_function(site, operator.neg, (site.node.args[0],))


@register_aten_op("cat", "concat", note="torch.cat: concatenation along a feature dimension", varying=Varying.ANY,
                  check=dim_not_batch(1, "dim", 0))  # fmt: skip
def cat(site: AtenSite) -> None:
    """``aten.cat(tensors, dim)`` -> ``torch.cat``."""
    node = site.node
    to_function(site, torch.cat, (list(node.args[0]), int(argument(node, 1, "dim", 0))))


# ------------------------------------------------------------------ reshapes and no-ops
def _flatten_check(node: fx.Node) -> str | None:
    return "flattens the batch into the features; use start_dim >= 1" if int(argument(node, 1, "start_dim", 0)) == 0 else None


@register_aten_op("flatten", note="torch.flatten (start_dim >= 1)", check=_flatten_check)
def flatten(site: AtenSite) -> None:
    """``aten.flatten(x, start, end)`` -> ``torch.flatten``."""
    node = site.node
    to_function(site, torch.flatten, (node.args[0], int(argument(node, 1, "start_dim", 0)), int(argument(node, 2, "end_dim", -1))))


@register_aten_op("view", "reshape", "_unsafe_view", note="torch.reshape(x, (-1, ...)): the exported batch size is not kept",
                  check=batch_kept)  # fmt: skip
def view(site: AtenSite) -> None:
    """``aten.view(x, [2, 64])`` (batch fixed at export) -> ``torch.reshape(x, (-1, 64))``."""
    features = tuple(int(v) for v in shape(site.node)[1:])
    to_function(site, torch.reshape, (site.node.args[0], (-1, *features)))


@register_aten_op("unsqueeze", note="torch.unsqueeze (not at dimension 0)", check=dim_not_batch(1, "dim", 0))
def unsqueeze(site: AtenSite) -> None:
    """``aten.unsqueeze(x, d)`` -> ``torch.unsqueeze``."""
    to_function(site, torch.unsqueeze, tuple(site.node.args[:2]))


@register_aten_op("squeeze", note="torch.squeeze of given feature dimensions", check=dim_not_batch(1, "dim", 0))
def squeeze(site: AtenSite) -> None:
    """``aten.squeeze.dims(x, dims)`` -> ``torch.squeeze``."""
    node = site.node
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    to_function(site, torch.squeeze, (node.args[0], tuple(dims) if isinstance(dims, Sequence) else dims))


def _permute_check(node: fx.Node) -> str | None:
    return None if int(node.args[1][0]) == 0 else "moves the batch dimension; keep dimension 0 first"


@register_aten_op("permute", note="torch.permute (the batch stays first)", check=_permute_check)
def permute(site: AtenSite) -> None:
    """``aten.permute(x, dims)`` -> ``torch.permute``."""
    to_function(site, torch.permute, (site.node.args[0], tuple(site.node.args[1])))


def _transpose_check(node: fx.Node) -> str | None:
    rank = len(shape(node.args[0]) or ()) or 1
    return "moves the batch dimension" if 0 in (int(node.args[1]) % rank, int(node.args[2]) % rank) else None


@register_aten_op("transpose", note="torch.transpose of two feature dimensions", check=_transpose_check)
def transpose(site: AtenSite) -> None:
    """``aten.transpose(x, a, b)`` -> ``torch.transpose``."""
    to_function(site, torch.transpose, tuple(site.node.args[:3]))


@register_aten_op("dropout", "feature_dropout", "alpha_dropout", "clone", "contiguous", "alias", "detach",
                  note="removed (identity at inference)")  # fmt: skip
def identity(site: AtenSite) -> None:
    """Dropout at inference, copies and aliases: readers read the input instead."""
    site.node.replace_all_uses_with(site.node.args[0])
    site.gm.graph.erase_node(site.node)


@register_aten_op("native_dropout", note="removed (identity at inference; the mask must be unused)")
def native_dropout(site: AtenSite) -> None:
    """``aten.native_dropout(x, p, train)[0]`` -> ``x``."""
    first_of_tuple(site)
    identity(site)
