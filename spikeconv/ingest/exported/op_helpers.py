"""Small readers and rewriters shared by the per-op functions of :mod:`.ops` and :mod:`.ops_shapes`."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence

import torch
from torch import fx, nn

from spikeconv._fx import add_submodule
from spikeconv.ingest.exported.registry import AtenSite


def argument(node: fx.Node, index: int, name: str, default: object) -> object:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def constant(site: AtenSite, arg: object) -> torch.Tensor | None:
    """The tensor a ``get_attr`` argument holds (weights, folded constants), else ``None``."""
    if not (isinstance(arg, fx.Node) and arg.op == "get_attr"):
        return None
    value = site.gm
    for part in str(arg.target).split("."):
        value = getattr(value, part)
    return value.detach().clone()


def shape(node: object) -> tuple | None:
    value = node.meta.get("val") if isinstance(node, fx.Node) else None
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


def owner(site: AtenSite, arg: object) -> str:
    """A module name for a weight layer: its weight's owner (``layer1.0.conv1``), else the node's name."""
    if isinstance(arg, fx.Node) and arg.op == "get_attr" and "." in str(arg.target):
        return str(arg.target).rsplit(".", 1)[0]
    return site.node.name


def to_module(site: AtenSite, module: nn.Module, name: str | None = None) -> None:
    site.node.op, site.node.target = "call_module", add_submodule(site.gm, name or site.node.name, module)
    site.node.args, site.node.kwargs = (site.node.args[0],), {}


def to_function(site: AtenSite, fn: Callable, args: tuple, kwargs: dict | None = None) -> None:
    site.node.op, site.node.target = "call_function", fn
    site.node.args, site.node.kwargs = args, kwargs or {}


def first_of_tuple(site: AtenSite) -> None:
    """The op returned ``(out, extra...)``; its ``getitem(·, 0)`` readers now read the node itself."""
    for user in list(site.node.users):
        if user.op == "call_function" and user.target is operator.getitem and user.args[1] == 0:
            user.replace_all_uses_with(site.node)
            site.gm.graph.erase_node(user)


def pair(value: object, default: int) -> tuple[int, int]:
    values = [int(v) for v in value] if isinstance(value, Sequence) else [int(value)] if value is not None else []
    if not values:
        return default, default
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def batch_kept(node: fx.Node) -> str | None:
    before, after = shape(node.args[0]), shape(node)
    if before is None or after is None or not before or not after or before[0] != after[0]:
        return "reshapes across the batch dimension; keep dimension 0 as the batch"
    return None


def dim_not_batch(index: int, name: str, default: object) -> Callable[[fx.Node], str | None]:
    def check(node: fx.Node) -> str | None:
        dims = argument(node, index, name, default)
        if dims is None:
            return "acts on every dimension, the batch too; name the feature dimensions"
        dims = list(dims) if isinstance(dims, Sequence) else [dims]
        first = node.args[0][0] if isinstance(node.args[0], Sequence) else node.args[0]  # cat takes a list
        rank = len(shape(first) or ()) or 1
        return "operates on the batch dimension 0; keep the batch apart" if any(int(d) % rank == 0 for d in dims) else None

    return check
