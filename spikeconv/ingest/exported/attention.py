"""Exported attention made batch first, before the support scan: ``nn.MultiheadAttention`` as projections and SDPA.

``torch.export`` writes ``nn.MultiheadAttention`` (``batch_first=True``) as a transpose of the batch to
dimension 1, the packed input projection, views that merge the batch with the heads (sizes fixed at
the export's batch), ``aten.scaled_dot_product_attention``, and the same moves back. A converted
network runs on a time-flattened batch ``T·N``, so nothing may fix or move the batch. Each attention
region, from the tensor the projections read to the tensor the output projection's result becomes,
is replaced by the batch-first form a traced torch model has::

    q, k, v = Linear(x) each -> unflatten(-1, (h, d)) -> transpose(1, 2)       [N, h, L, d]
    o = F.scaled_dot_product_attention(q, k, v, scale=s)
    y = Linear(o.transpose(1, 2).flatten(2))                                     [N, L, E]

Which projection rows feed which head, and which output columns read which head, is not read off the
op sequence (exporters differ) but traced: the region's layout ops (views, transposes, selects, ...)
are run on tensors holding each element's token, batch and feature index, and the result must put
every element of ``q``, ``k``, ``v`` and ``y`` where the batch-first form puts it; a region whose
layout does not is refused, naming its attention node. The final check of the ingested graph against
the program compares values as well.

The class token's ``expand`` to the export's batch is folded into a constant of that batch (rows all equal) by then;
a ``cat`` of such a constant with data gets its first row broadcast to the data's batch instead.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from spikeconv._fx import add_submodule
from spikeconv.errors import UnsupportedLayerError
from spikeconv.ingest.exported import ops_transformer as _ops_transformer  # noqa: F401  (fills the registry)
from spikeconv.ingest.exported.registry import aten_name

__all__ = ["CANONICAL", "prepare_attention_"]

CANONICAL = "spikeconv_canonical"
"""``node.meta`` flag of nodes already in standard torch form: the ATen scan and rewrite leave them alone."""

_LAYOUT = {"view", "reshape", "_unsafe_view", "transpose", "permute", "unsqueeze", "squeeze", "select", "unflatten", "flatten",
           "contiguous", "clone", "alias", "detach", "dropout", "t", "expand"}  # fmt: skip
_LINEAR = {"linear"}


def _name(node: object) -> str | None:
    return aten_name(node.target) if isinstance(node, fx.Node) and node.op == "call_function" else None


def _is_layout(node: object) -> bool:
    return _name(node) in _LAYOUT


def _value(gm: fx.GraphModule, node: fx.Node) -> Tensor | None:
    if not (isinstance(node, fx.Node) and node.op == "get_attr"):
        return None
    value = gm
    for part in str(node.target).split("."):
        value = getattr(value, part)
    return value.detach().clone() if isinstance(value, Tensor) else None


def _shape(node: fx.Node) -> tuple[int, ...]:
    value = node.meta.get("val")
    return tuple(int(s) for s in value.shape)


def _back(node: fx.Node) -> tuple[fx.Node, list[fx.Node]]:
    """The first non-layout node above ``node`` and the layout chain from it down to ``node`` (top first)."""
    chain = []
    while _is_layout(node):
        chain.append(node)
        node = node.args[0]
    return node, chain[::-1]


def _forward(node: fx.Node) -> list[fx.Node]:
    """The layout chain below ``node`` while each link has exactly one user."""
    chain = []
    while len(node.users) == 1 and _is_layout(next(iter(node.users))):
        node = next(iter(node.users))
        chain.append(node)
    return chain


def _run(chain: list[fx.Node], value: Tensor) -> Tensor:
    """``chain`` applied to ``value`` in place of the chain's input (every other argument is a constant)."""
    for node in chain:
        args = (value, *node.args[1:])
        value = node.target(*args, **node.kwargs)
    return value


def _index(shape: tuple[int, ...], axis: int) -> Tensor:
    """A tensor of ``shape`` whose every element holds its index along ``axis`` (float64: exact)."""
    size = shape[axis]
    view = [1] * len(shape)
    view[axis] = size
    return torch.arange(size, dtype=torch.float64).reshape(view).expand(shape).contiguous()


@dataclass(frozen=True)
class _Projection:
    """One of q, k, v: the entry tensor it reads (batch first), its rows of the projection weight and bias."""

    entry: fx.Node
    weight: Tensor
    bias: Tensor | None


def _through_linear(x: Tensor, features: int) -> Tensor:
    """A token/batch trace through a linear layer: every output feature of a position carries that position's index."""
    return x[..., :1].expand(*x.shape[:-1], features)


def _projection(gm: fx.GraphModule, arg: fx.Node, where: str) -> _Projection:
    linear, to_head = _back(arg)
    if _name(linear) not in _LINEAR or _value(gm, linear.args[1]) is None:
        raise UnsupportedLayerError(f"cannot convert attention {where}: its query/key/value does not come from a linear projection")
    weight = _value(gm, linear.args[1])
    bias = _value(gm, linear.args[2]) if len(linear.args) > 2 and linear.args[2] is not None else None
    entry, to_linear = _back(linear.args[0])
    head = _shape(arg)
    if len(_shape(entry)) != 3 or len(head) != 4:
        raise UnsupportedLayerError(f"cannot convert attention {where}: expected [N, L, E] inputs and [N, h, L, d] heads")
    traces = {}
    for axis in (0, 1, 2):  # batch, token, feature of the entry
        below = _run(to_linear, _index(_shape(entry), axis))
        traces[axis] = _through_linear(below, weight.shape[0]) if axis < 2 else below
    if not torch.equal(traces[2], _index(tuple(traces[2].shape), traces[2].dim() - 1)):
        raise UnsupportedLayerError(f"cannot convert attention {where}: its projection does not act on the feature dimension")
    out_shape = (*traces[0].shape[:-1], weight.shape[0])
    batch_at, token_at = (_run(to_head, traces[a]) for a in (0, 1))
    feature_at = _run(to_head, _index(out_shape, len(out_shape) - 1))
    rows = feature_at[0, :, 0, :]  # [h, d]: which projection row feeds each head element
    expected_batch, expected_token = _index(head, 0), _index(head, 2)
    if not (torch.equal(batch_at, expected_batch) and torch.equal(token_at, expected_token)
            and torch.equal(feature_at, rows.unsqueeze(0).unsqueeze(2).expand(head))):  # fmt: skip
        raise UnsupportedLayerError(f"cannot convert attention {where}: its heads do not split the features batch first")
    index = rows.reshape(-1).long()
    return _Projection(entry, weight[index], None if bias is None else bias[index])


def _output(gm: fx.GraphModule, node: fx.Node, where: str) -> tuple[Tensor, Tensor | None, fx.Node]:
    """The output projection's weight with columns in head order, its bias, and the region's last node."""
    to_linear = _forward(node)
    tail = to_linear[-1] if to_linear else node
    linear = next(iter(tail.users)) if len(tail.users) == 1 else None
    if linear is None or _name(linear) not in _LINEAR or _value(gm, linear.args[1]) is None:
        raise UnsupportedLayerError(f"cannot convert attention {where}: its result does not reach a linear output projection")
    weight = _value(gm, linear.args[1])
    bias = _value(gm, linear.args[2]) if len(linear.args) > 2 and linear.args[2] is not None else None
    after = _forward(linear)
    last = after[-1] if after else linear
    heads = _shape(node)
    merged = (heads[0], heads[2], heads[1] * heads[3])  # [N, L, h·d]
    feature = (_index(heads, 1) * heads[3] + _index(heads, 3))
    columns = _run(to_linear, feature)
    token_in, batch_in = _run(to_linear, _index(heads, 2)), _run(to_linear, _index(heads, 0))
    token_out = _run(after, _through_linear(token_in, weight.shape[0]))
    batch_out = _run(after, _through_linear(batch_in, weight.shape[0]))
    flat = columns.reshape(-1, columns.shape[-1])
    exit_shape = (merged[0], merged[1], weight.shape[0])
    if not (torch.equal(flat, flat[:1].expand_as(flat)) and tuple(token_out.shape) == exit_shape
            and torch.equal(token_out, _index(exit_shape, 1)) and torch.equal(batch_out, _index(exit_shape, 0))):  # fmt: skip
        raise UnsupportedLayerError(f"cannot convert attention {where}: its output does not merge the heads batch first")
    order = flat[0].long()  # column c of the projection reads merged feature order[c]
    reordered = torch.empty_like(weight)
    reordered[:, order] = weight
    return reordered, bias, last


class _Emit:
    """Inserts standard-torch nodes (flagged :data:`CANONICAL`) before ``anchor``."""

    def __init__(self, gm: fx.GraphModule, anchor: fx.Node) -> None:
        self.gm, self.anchor = gm, anchor

    def node(self, op: str, target: object, *args: object, **kwargs: object) -> fx.Node:
        with self.gm.graph.inserting_before(self.anchor):
            made = self.gm.graph.create_node(op, target, args, kwargs)
        made.meta[CANONICAL] = True
        return made

    def linear(self, name: str, weight: Tensor, bias: Tensor | None, x: fx.Node) -> fx.Node:
        layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        with torch.no_grad():
            layer.weight.copy_(weight)
            if bias is not None:
                layer.bias.copy_(bias)
        return self.node("call_module", add_submodule(self.gm, name, layer), x)


def _prefix(gm: fx.GraphModule, last: fx.Node, where: str) -> str:
    """The attention module's path when the output projection's weight names it (``...self_attention.out_proj.weight``)."""
    for node in (last, *last.all_input_nodes):
        if _name(node) in _LINEAR and isinstance(node.args[1], fx.Node) and str(node.args[1].target).count(".") >= 2:
            return str(node.args[1].target).rsplit(".", 2)[0]
    return where


def _rewrite_region_(gm: fx.GraphModule, sdpa: fx.Node) -> None:
    where = sdpa.name
    projections = [_projection(gm, arg, where) for arg in sdpa.args[:3]]
    out_weight, out_bias, last = _output(gm, sdpa, where)
    heads = _shape(sdpa.args[0])[1]
    prefix = _prefix(gm, last if _name(last) in _LINEAR else _back(last)[0], where)
    emit = _Emit(gm, last)
    split = []
    for label, projection in zip("qkv", projections, strict=True):
        flat = emit.linear(f"{prefix}_{label}_proj", projection.weight, projection.bias, projection.entry)
        split.append(emit.node("call_method", "transpose", emit.node("call_method", "unflatten", flat, -1, (heads, -1)), 1, 2))
    scale = sdpa.kwargs.get("scale")
    attended = emit.node("call_function", F.scaled_dot_product_attention, *split, **({} if scale is None else {"scale": float(scale)}))
    merged = emit.node("call_method", "flatten", emit.node("call_method", "transpose", attended, 1, 2), 2)
    output = emit.linear(f"{prefix}_out_proj", out_weight, out_bias, merged)
    output.meta["val"] = last.meta.get("val")
    last.replace_all_uses_with(output)


def _one_row(gm: fx.GraphModule, node: object, batch: int, *, before: fx.Node) -> fx.Node | None:
    """A batch-1 read of ``node`` where it is a constant expanded to the export's ``batch`` (every row equal), else None.

    A program exported for a batch of 32 holds the class token as 32 equal rows; kept so, it would only run batches of 32."""
    if not isinstance(node, fx.Node) or node.op != "get_attr" or node.meta.get("val") is None:
        return None
    if _shape(node)[0] == 1:
        return node
    value = _value(gm, node)
    if value is None or value.shape[0] != batch or not torch.equal(value, value[:1].expand_as(value)):
        return None
    name = f"{str(node.target).replace('.', '_')}_row"
    if not hasattr(gm, name):
        gm.register_buffer(name, value[:1].clone())
    with gm.graph.inserting_before(before):
        row = gm.graph.get_attr(name)
    row.meta["val"] = node.meta["val"][:1]
    return row


def _broadcast_batch_constants_(gm: fx.GraphModule) -> None:
    """``cat`` of a constant of one row (a folded ``expand`` of the class token to the export's batch) with data: expand
    it to the data's batch."""
    for node in list(gm.graph.nodes):
        if _name(node) not in ("cat", "concat") or not isinstance(node.args[0], (list, tuple)):
            continue
        tensors = list(node.args[0])
        data = next((t for t in tensors if isinstance(t, fx.Node) and t.op != "get_attr"), None)
        dim = int(node.args[1]) if len(node.args) > 1 else int(node.kwargs.get("dim", 0))
        if data is None or dim % max(len(_shape(data)), 1) == 0:
            continue
        for index, tensor in enumerate(tensors):
            tensor = _one_row(gm, tensor, _shape(data)[0], before=node)
            if tensor is not None:
                emit = _Emit(gm, node)
                size = emit.node("call_function", operator.getitem, emit.node("call_function", getattr, data, "shape"), 0)
                expanded = emit.node("call_method", "expand", tensor, size, *([-1] * (len(_shape(tensor)) - 1)))
                expanded.meta["val"] = tensor.meta["val"]
                tensors[index] = expanded
        node.args = (tensors, *node.args[1:])


def prepare_attention_(gm: fx.GraphModule) -> int:
    """Rewrite every attention region batch first and broadcast batch-1 constants (in place). Returns the regions.

    Raises:
        UnsupportedLayerError: An attention region whose layout is not a batch-first multi-head split, named.
    """
    regions = [n for n in gm.graph.nodes if _name(n) == "scaled_dot_product_attention"]
    for sdpa in regions:
        _rewrite_region_(gm, sdpa)
    _broadcast_batch_constants_(gm)
    if regions:
        for node in reversed(list(gm.graph.nodes)):  # the old regions; fx keeps a dead aten.dropout (it counts as random)
            if not node.users and _name(node) in (*_LAYOUT, *_LINEAR, "scaled_dot_product_attention"):
                gm.graph.erase_node(node)
        gm.graph.eliminate_dead_code()
        gm.delete_all_unused_submodules()
        gm.recompile()
    return len(regions)
