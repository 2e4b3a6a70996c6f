"""Attention as the graph of its parts: projections, two activation products and a softmax.

``nn.MultiheadAttention`` is one opaque module to fx and ``F.scaled_dot_product_attention`` one
function; conversion needs their parts, because the projections are affine layers that run on
spikes while the two products and the softmax are transformer operations (spike-equivalent
operators after conversion). Each call is rewritten, batch first, into::

    q, k, v  = Linear(query), Linear(key), Linear(value)           (one packed Linear when query is key is value)
    q, k, v  = split into heads: [N, L, E] -> [N, h, L, E/h]
    scores   = ActivationProduct(q, kᵀ) · scale                   (scale = 1/sqrt(E/h) unless given)
    weights  = Softmax(-1)(scores)
    heads    = ActivationProduct(weights, v)
    output   = Linear(merge heads: [N, h, L, E/h] -> [N, L, E])   (nn.MultiheadAttention's out_proj)

Refused, each in one line naming the node: ``batch_first=False`` (the batch must stay dimension 0 for
the time-flattened batch of a converted network), attention masks, ``add_bias_kv``,
``add_zero_attn``, and an attention-weights output that is read.
"""

from __future__ import annotations

import math
import operator

import torch
import torch.nn.functional as F
from torch import fx, nn

from spikeconv._fx import add_submodule, module_of
from spikeconv.errors import UnsupportedLayerError
from spikeconv.ingest.transformer_ops import ActivationProduct

__all__ = ["decompose_attention_", "mha_problem", "sdpa_problem"]


def _argument(node: fx.Node, index: int, name: str, default: object) -> object:
    return node.args[index] if len(node.args) > index else node.kwargs.get(name, default)


def mha_problem(node: fx.Node, module: nn.MultiheadAttention) -> str | None:
    """Why this ``nn.MultiheadAttention`` call cannot be converted, or ``None``."""
    if not module.batch_first:
        return "batch_first=False puts the batch in dimension 1; build it with batch_first=True"
    if module.bias_k is not None or module.add_zero_attn:
        return "add_bias_kv / add_zero_attn are not converted"
    if _argument(node, 3, "key_padding_mask", None) is not None or _argument(node, 5, "attn_mask", None) is not None:
        return "attention masks are not converted"
    if _argument(node, 7, "is_causal", False):
        return "causal attention is not converted"
    for user in node.users:
        if not (user.op == "call_function" and user.target is operator.getitem and user.args[1] in (0, 1)):
            return "its output tuple must be indexed ([0] the output; [1] the weights, unused)"
        if user.args[1] == 1 and user.users:
            return "its attention weights are read; call it with need_weights=False"
    return None


def sdpa_problem(node: fx.Node) -> str | None:
    """Why this ``F.scaled_dot_product_attention`` call cannot be converted, or ``None``."""
    if _argument(node, 3, "attn_mask", None) is not None or _argument(node, 5, "is_causal", False):
        return "attention masks and causal attention are not converted"
    if _argument(node, 7, "enable_gqa", False):
        return "grouped-query attention is not converted"
    return None


class _Builder:
    """Inserts nodes before ``anchor`` in ``gm``, naming modules after ``prefix``."""

    def __init__(self, gm: fx.GraphModule, anchor: fx.Node, prefix: str) -> None:
        self.gm, self.anchor, self.prefix = gm, anchor, prefix

    def module(self, suffix: str, module: nn.Module, *args: object) -> fx.Node:
        name = add_submodule(self.gm, f"{self.prefix}_{suffix}", module)
        with self.gm.graph.inserting_before(self.anchor):
            return self.gm.graph.call_module(name, args)

    def method(self, name: str, *args: object) -> fx.Node:
        with self.gm.graph.inserting_before(self.anchor):
            return self.gm.graph.call_method(name, args)

    def function(self, fn: object, *args: object) -> fx.Node:
        with self.gm.graph.inserting_before(self.anchor):
            return self.gm.graph.call_function(fn, args)

    def heads(self, x: fx.Node, heads: int) -> fx.Node:
        """``[N, L, h·d] -> [N, h, L, d]``."""
        return self.method("transpose", self.method("unflatten", x, -1, (heads, -1)), 1, 2)

    def attend(self, q: fx.Node, k: fx.Node, v: fx.Node, scale: float | None) -> fx.Node:
        """``softmax(q·kᵀ·scale)·v`` on ``[N, h, L, d]`` heads, as two products and a softmax (scale None: 1/sqrt(d))."""
        product = ActivationProduct("matmul", scale=1.0 if scale is None else scale, scale_by_depth=scale is None)
        scores = self.module("scores", product, q, self.method("transpose", k, -2, -1))
        weights = self.module("softmax", nn.Softmax(dim=-1), scores)
        return self.module("context", ActivationProduct("matmul"), weights, v)


def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


def _projections(module: nn.MultiheadAttention) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """(weight, bias) of the query, key and value projections."""
    e = module.embed_dim
    bias = module.in_proj_bias.detach() if module.in_proj_bias is not None else None
    if module._qkv_same_embed_dim:
        weights = module.in_proj_weight.detach().split(e)
    else:
        weights = (module.q_proj_weight.detach(), module.k_proj_weight.detach(), module.v_proj_weight.detach())
    return [(w, None if bias is None else bias[i * e : (i + 1) * e]) for i, w in enumerate(weights)]


def _decompose_mha(gm: fx.GraphModule, node: fx.Node, module: nn.MultiheadAttention) -> None:
    build = _Builder(gm, node, node.name)
    query, key, value = (_argument(node, i, name, None) for i, name in enumerate(("query", "key", "value")))
    heads, projections = module.num_heads, _projections(module)
    if query is key is value:
        weight = torch.cat([w for w, _ in projections])
        bias = None if projections[0][1] is None else torch.cat([b for _, b in projections])
        packed = build.module("in_proj", _linear(weight, bias), query)
        split = build.method("unflatten", packed, -1, (3, heads, -1))
        q, k, v = (build.method("transpose", build.function(operator.getitem, split, (slice(None), slice(None), i)), 1, 2)
                   for i in range(3))  # fmt: skip
    else:
        q, k, v = (build.heads(build.module(f"{name}_proj", _linear(w, b), source), heads)
                   for name, source, (w, b) in zip("qkv", (query, key, value), projections, strict=True))  # fmt: skip
    context = build.attend(q, k, v, 1.0 / math.sqrt(module.head_dim))
    merged = build.method("flatten", build.method("transpose", context, 1, 2), 2)
    out = module.out_proj
    output = build.module("out_proj", _linear(out.weight.detach(), None if out.bias is None else out.bias.detach()), merged)
    for user in list(node.users):
        if user.args[1] == 0:
            user.replace_all_uses_with(output)
        gm.graph.erase_node(user)
    gm.graph.erase_node(node)


def _decompose_sdpa(gm: fx.GraphModule, node: fx.Node) -> None:
    build = _Builder(gm, node, node.name)
    q, k, v = node.args[:3]
    scale = _argument(node, 6, "scale", None)
    output = build.attend(q, k, v, scale)
    node.replace_all_uses_with(output)
    gm.graph.erase_node(node)


def decompose_attention_(gm: fx.GraphModule) -> int:
    """Rewrite every ``nn.MultiheadAttention`` and ``F.scaled_dot_product_attention`` call into its parts. Returns how many.

    Raises:
        UnsupportedLayerError: a call that cannot be converted (see the module docstring), naming it.
    """
    count = 0
    for node in list(gm.graph.nodes):
        module = module_of(gm, node)
        if isinstance(module, nn.MultiheadAttention):
            problem = mha_problem(node, module)
            if problem is not None:
                raise UnsupportedLayerError(f"cannot convert attention {node.name}: {problem}")
            _decompose_mha(gm, node, module)
            count += 1
        elif node.op == "call_function" and node.target is F.scaled_dot_product_attention:
            problem = sdpa_problem(node)
            if problem is not None:
                raise UnsupportedLayerError(f"cannot convert attention {node.name}: {problem}")
            _decompose_sdpa(gm, node)
            count += 1
    if count:
        gm.delete_all_unused_submodules()
        gm.recompile()
    return count
