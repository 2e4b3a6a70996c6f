"""Decide which values of a time-aware graph vary over time, and where to repeat the others.

Shared by conversion (``convert/rewrite.py``) and direct training (``training/snn/spikify.py``).

Every value is one of: CONSTANT (weights and what derives only from them), STATIC (depends on the
input but not on time, batch ``N``: everything before the first neuron of a direct-encoded
input) or DYNAMIC (time-flattened batch ``K·N``). Static values are computed once per sample;
where one meets a dynamic value it is repeated over time. Before/after, for a residual join of
the static input ``x`` and a neuron output::

    add = x + neuron_out
    x_over_time = repeat_over_time(x, num_steps); add = x_over_time + neuron_out
"""

from __future__ import annotations

import operator
from enum import Enum

from torch import fx

from spikeconv.errors import ConversionError
from spikeconv.neurons.time import repeat_over_time


class TimeKind(Enum):
    CONSTANT = 0
    STATIC = 1
    DYNAMIC = 2


_SHAPE_ARITHMETIC = (operator.add, operator.sub, operator.mul, operator.floordiv, operator.truediv, operator.pow,
                     operator.mod, operator.neg)  # fmt: skip


def is_shape_query(node: fx.Node) -> bool:
    """Nodes that read a size rather than compute a tensor (``x.size(0)``, ``x.shape[1]``, ``x.shape[2] // 4``)."""
    if node.op == "call_method" and node.target in ("size", "dim"):
        return True
    if node.op == "call_function" and node.target is getattr and node.args[1] == "shape":
        return True
    if node.op == "call_function" and node.target is operator.getitem:
        source = node.args[0]
        return isinstance(source, fx.Node) and is_shape_query(source)
    if node.op == "call_function" and node.target in _SHAPE_ARITHMETIC:  # arithmetic on sizes (transformers' head sizes)
        return bool(node.all_input_nodes) and all(is_shape_query(n) for n in node.all_input_nodes)
    return False


def _repeated(graph: fx.Graph, node: fx.Node, steps: fx.Node, cache: dict) -> fx.Node:
    """The time-repeated version of a static tensor, or of a shape query on one."""
    if node in cache:
        return cache[node]
    if is_shape_query(node) and node.target in _SHAPE_ARITHMETIC:
        args = fx.node.map_arg(node.args, lambda n: _repeated(graph, n, steps, cache))
        with graph.inserting_after(node):
            copy = graph.create_node(node.op, node.target, args, node.kwargs)
    elif is_shape_query(node):
        source = _repeated(graph, node.args[0], steps, cache)
        with graph.inserting_after(source):
            copy = graph.create_node(node.op, node.target, (source, *node.args[1:]), node.kwargs)
    else:
        with graph.inserting_after(node):
            copy = graph.call_function(repeat_over_time, (node, steps))
    cache[node] = copy
    return copy


def lay_out_time_(
    gm: fx.GraphModule, neurons: set[fx.Node], steps: fx.Node, input_static: bool
) -> dict[fx.Node, TimeKind]:
    """Classify every node, mark static neuron inputs and insert repeats (in place)."""
    kinds: dict[fx.Node, TimeKind] = {}
    cache: dict[fx.Node, fx.Node] = {}
    graph = gm.graph
    for node in list(graph.nodes):
        if node in cache.values() or node is steps:
            continue
        inputs = [n for n in node.all_input_nodes if n is not steps]
        if node.op == "placeholder":
            kinds[node] = TimeKind.STATIC if input_static else TimeKind.DYNAMIC
        elif node.op == "get_attr":
            kinds[node] = TimeKind.CONSTANT
        elif node in neurons:
            source = kinds.get(node.args[0])
            if source is TimeKind.CONSTANT:
                raise ConversionError(f"activation {node.name} does not depend on the input")
            node.kwargs = {**node.kwargs, "static": source is TimeKind.STATIC}
            kinds[node] = TimeKind.DYNAMIC
        elif node.op == "output":
            _repeat_static_inputs(graph, node, kinds, steps, cache)
        else:
            kinds[node] = max((kinds[n] for n in inputs), default=TimeKind.CONSTANT,
                              key=lambda k: k.value)  # fmt: skip
            if kinds[node] is TimeKind.DYNAMIC:
                _repeat_static_inputs(graph, node, kinds, steps, cache)
    return kinds


def _repeat_static_inputs(graph, node, kinds, steps, cache) -> None:
    for source in list(node.all_input_nodes):
        if kinds.get(source) is TimeKind.STATIC:
            node.replace_input_with(source, _repeated(graph, source, steps, cache))
