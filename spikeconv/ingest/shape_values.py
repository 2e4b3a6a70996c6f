"""Shape values: what a graph computes from tensor sizes alone (``x.shape[0]``, ``h // 7``, ``x.dim() == 3``).

Such values are Python numbers at run time, not activations: they carry no spikes and need no
neuron, whatever operation computes them, so the support check accepts them and the spike-site
pass treats them as constants. A size query of a time-flattened tensor reads ``K·N`` where the ANN
read ``N``; the converted graph recomputes it on the repeated tensor where needed
(``spikeconv.neurons.time_layout``).
"""

from __future__ import annotations

import operator

import torch
from torch import fx

__all__ = ["is_shape_query", "remove_shape_asserts_", "shape_values"]

_SIZE_METHODS = ("size", "dim", "numel")
_SIDE_EFFECTS = (torch._assert,)
_ARITHMETIC = {operator.getitem, operator.add, operator.sub, operator.mul, operator.floordiv, operator.truediv,
               operator.mod, operator.pow, operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge,
               operator.neg, torch._assert}  # fmt: skip


def is_shape_query(node: fx.Node) -> bool:
    """``x.shape``, ``x.size()``, ``x.dim()``, ``x.numel()``."""
    if node.op == "call_method" and node.target in _SIZE_METHODS:
        return True
    return node.op == "call_function" and node.target is getattr and len(node.args) > 1 and node.args[1] == "shape"


def shape_values(gm: fx.GraphModule) -> set[fx.Node]:
    """Nodes whose value derives from tensor sizes and constants only (shape arithmetic and assertions)."""
    found: set[fx.Node] = set()
    for node in gm.graph.nodes:
        if is_shape_query(node):
            found.add(node)
        elif node.op == "call_function" and node.target in _ARITHMETIC and node.all_input_nodes:
            if all(n in found for n in node.all_input_nodes):
                found.add(node)
    return found


def remove_shape_asserts_(gm: fx.GraphModule) -> int:
    """Erase ``torch._assert`` calls on shape values (torchvision's input-size checks). Returns how many."""
    values = shape_values(gm)
    asserts = [n for n in gm.graph.nodes if n.op == "call_function" and n.target in _SIDE_EFFECTS and n in values]
    for node in asserts:
        gm.graph.erase_node(node)
    if asserts:
        gm.graph.eliminate_dead_code()
    return len(asserts)
