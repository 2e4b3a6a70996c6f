"""ATen ops of transformers: LayerNorm, GELU, softmax, products of two activations, attention, ``select``, ``unflatten``.

Each becomes the standard torch spelling that a traced torch model has (``F.layer_norm``,
``F.gelu``, ``F.softmax``, ``torch.matmul``, ``F.scaled_dot_product_attention``, indexing), so the
canonical passes of :mod:`spikeconv.ingest.transformer` give each its module, exactly as for a
torch model. ``nn.MultiheadAttention``'s export moves the batch to dimension 1 and back; those
regions are rewritten batch first before the support scan (:mod:`.attention`).
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import fx

from spikeconv.ingest.exported.op_helpers import argument, dim_not_batch, first_of_tuple, shape, to_function
from spikeconv.ingest.exported.registry import AtenSite, Varying, register_aten_op


@register_aten_op("layer_norm", note="F.layer_norm: a spike-equivalent operator after conversion")
def layer_norm(site: AtenSite) -> None:
    """``aten.layer_norm(x, shape, w, b, eps)`` -> ``F.layer_norm`` (its constant weights are read when its module is made)."""
    node = site.node
    to_function(site, F.layer_norm, (node.args[0], tuple(int(s) for s in node.args[1]), argument(node, 2, "weight", None),
                                     argument(node, 3, "bias", None), float(argument(node, 4, "eps", 1e-5))))  # fmt: skip


@register_aten_op("gelu", note="F.gelu: a spike-equivalent operator after conversion")
def gelu(site: AtenSite) -> None:
    """``aten.gelu(x, approximate)`` -> ``F.gelu``."""
    to_function(site, F.gelu, (site.node.args[0],), {"approximate": str(site.node.kwargs.get("approximate", "none"))})


@register_aten_op("softmax", "_softmax", note="F.softmax over a feature dimension: a spike-equivalent operator after conversion",
                  check=dim_not_batch(1, "dim", 0))  # fmt: skip
def softmax(site: AtenSite) -> None:
    """``aten.softmax(x, dim)`` / ``aten._softmax(x, dim, half_to_float)`` -> ``F.softmax(x, dim)``."""
    to_function(site, F.softmax, (site.node.args[0],), {"dim": int(site.node.args[1])})


@register_aten_op("matmul", "bmm", note="torch.matmul: a product of two activations (spike-equivalent) or affine with a constant",
                  varying=Varying.ANY)  # fmt: skip
def matmul(site: AtenSite) -> None:
    """``aten.matmul(a, b)`` / ``aten.bmm(a, b)`` -> ``torch.matmul(a, b)``."""
    to_function(site, torch.matmul, tuple(site.node.args[:2]))


def _sdpa_check(node: fx.Node) -> str | None:
    if argument(node, 3, "attn_mask", None) is not None or argument(node, 5, "is_causal", False):
        return "attention masks and causal attention are not converted"
    return "grouped-query attention is not converted" if node.kwargs.get("enable_gqa", False) else None


@register_aten_op("scaled_dot_product_attention", note="F.scaled_dot_product_attention: Q·Kᵀ, softmax and ·V, spike-equivalent",
                  varying=Varying.ANY, check=_sdpa_check)  # fmt: skip
def scaled_dot_product_attention(site: AtenSite) -> None:
    """``aten.scaled_dot_product_attention(q, k, v, scale=s)`` -> ``F.scaled_dot_product_attention``."""
    node = site.node
    scale = node.kwargs.get("scale")
    to_function(site, F.scaled_dot_product_attention, tuple(node.args[:3]), {} if scale is None else {"scale": float(scale)})


@register_aten_op("select", note="indexing along a feature dimension (x[:, i])", check=dim_not_batch(1, "dim", 0))
def select(site: AtenSite) -> None:
    """``aten.select(x, d, i)`` -> ``x[:, ..., i]`` (``d`` full slices first)."""
    node = site.node
    rank = len(shape(node.args[0]) or ()) or 1
    dim = int(node.args[1]) % rank
    to_function(site, operator.getitem, (node.args[0], (*(slice(None),) * dim, int(node.args[2]))))


@register_aten_op("unflatten", note="x.unflatten(d, sizes): reshape of a feature dimension", check=dim_not_batch(1, "dim", 0))
def unflatten(site: AtenSite) -> None:
    """``aten.unflatten(x, d, sizes)`` -> ``x.unflatten(d, sizes)``."""
    node = site.node
    node.op, node.target = "call_method", "unflatten"
    node.args, node.kwargs = (node.args[0], int(node.args[1]), tuple(int(s) for s in node.args[2])), {}


@register_aten_op("native_layer_norm", note="F.layer_norm (core ATen form; the statistics outputs must be unused)")
def native_layer_norm(site: AtenSite) -> None:
    """``aten.native_layer_norm(x, shape, w, b, eps)[0]`` -> ``F.layer_norm``."""
    first_of_tuple(site)
    layer_norm(site)


@register_aten_op("slice", note="x[:, a:b:s]: slicing a feature dimension", check=dim_not_batch(1, "dim", 0))
def slice_(site: AtenSite) -> None:
    """``aten.slice(x, d, start, end, step)`` -> ``x[:, ..., start:end:step]`` (``d`` full slices first)."""
    node = site.node
    rank = len(shape(node.args[0]) or ()) or 1
    dim = int(argument(node, 1, "dim", 0)) % rank
    start, end, step = argument(node, 2, "start", None), argument(node, 3, "end", None), argument(node, 4, "step", 1)
    to_function(site, operator.getitem, (node.args[0], (*(slice(None),) * dim, slice(start, end, step))))
