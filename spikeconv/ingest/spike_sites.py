"""Spike sites in front of the affine layers of a transformer: ``x = relu(x) − relu(−x)``.

In a ReLU CNN every convolution and linear layer after the first receives spikes, because a ReLU
(an activation site, later an IF neuron) sits in front of it. A transformer's linear layers receive
the outputs of LayerNorm, GELU or attention, which are signed and not ReLUs. So that they too run on
spikes (accumulates, not multiply-accumulates), ingest inserts in front of each such layer the
identity written as two activation sites, one for each sign::

    fc2 = self.fc2(gelu)
    gelu_pos = self.fc2_in_pos(gelu); neg = -gelu; gelu_neg = self.fc2_in_neg(neg)
    sub = gelu_pos - gelu_neg; fc2 = self.fc2(sub)                            # two nn.ReLU sites

The ANN computes exactly what it did (``relu(x) − relu(−x) = x``); after calibration each site is an
IF neuron with its own threshold, so the pair is a signed (ON/OFF) spiking unit whose rate
difference approaches ``x`` as T grows, and every calibration rule, correction, rate-code
prediction and counter applies to it unchanged. Layers fed by spikes already (after a ReLU), by the
network input (the patch embedding: analog first layer) or only by constants get no pair.

Only graphs with transformer operations (:mod:`spikeconv.ingest.transformer_ops`) get pairs; a
ReLU CNN's graph is left exactly as it was.
"""

from __future__ import annotations

import operator
from enum import Enum

import torch.nn.functional as F
from torch import fx, nn

from spikeconv._fx import add_submodule, module_of
from spikeconv.ingest.activations import is_activation_site
from spikeconv.ingest.transformer_ops import operator_kind

__all__ = ["insert_spike_sites_"]

_WEIGHT_MODULES = (nn.Linear, nn.Conv1d, nn.Conv2d)
_WEIGHT_FUNCTIONS = (F.linear, F.conv1d, F.conv2d)


class _Carries(Enum):
    """What a value carries in the converted network."""

    CONSTANT = 0
    INPUT = 1  # the network input and affine functions of it alone (computed once, analog)
    SPIKES = 2  # activation-site outputs and what only moves, sums or scales them
    DENSE = 3  # currents and transformer-operation outputs: signed, graded values


def _is_weight_layer(gm: fx.GraphModule, node: fx.Node) -> bool:
    return isinstance(module_of(gm, node), _WEIGHT_MODULES) or (node.op == "call_function" and node.target in _WEIGHT_FUNCTIONS)


def _combined(kinds: list[_Carries]) -> _Carries:
    present = set(kinds) - {_Carries.CONSTANT}
    if not present:
        return _Carries.CONSTANT
    return present.pop() if len(present) == 1 else _Carries.DENSE


def _pair(gm: fx.GraphModule, source: fx.Node, layer: fx.Node) -> fx.Node:
    """``relu(source) − relu(−source)`` inserted just before ``layer``; returns the difference node."""
    with gm.graph.inserting_before(layer):
        positive = gm.graph.call_module(add_submodule(gm, f"{layer.name}_in_pos", nn.ReLU()), (source,))
        negated = gm.graph.call_function(operator.neg, (source,))
        negative = gm.graph.call_module(add_submodule(gm, f"{layer.name}_in_neg", nn.ReLU()), (negated,))
        return gm.graph.call_function(operator.sub, (positive, negative))


def insert_spike_sites_(gm: fx.GraphModule) -> int:
    """Insert a signed pair of activation sites in front of every affine layer fed by graded values (in place).

    Returns the number of pairs inserted (0 for a graph without transformer operations).
    """
    if not any(operator_kind(module_of(gm, node)) for node in gm.graph.nodes):
        return 0
    carries: dict[fx.Node, _Carries] = {}
    pairs: dict[fx.Node, fx.Node] = {}
    for node in list(gm.graph.nodes):
        inputs = [carries.get(n, _Carries.CONSTANT) for n in node.all_input_nodes]
        if node.op == "placeholder":
            carries[node] = _Carries.INPUT
        elif node.op == "get_attr":
            carries[node] = _Carries.CONSTANT
        elif is_activation_site(gm, node):
            carries[node] = _Carries.SPIKES
        elif operator_kind(module_of(gm, node)) is not None:
            carries[node] = _Carries.DENSE
        elif _is_weight_layer(gm, node):
            source = node.args[0]
            if carries.get(source) is _Carries.DENSE:
                if source not in pairs:
                    pairs[source] = _pair(gm, source, node)
                node.replace_input_with(source, pairs[source])
                inputs[0] = _Carries.SPIKES
            carries[node] = _Carries.INPUT if _combined(inputs) in (_Carries.INPUT, _Carries.CONSTANT) else _Carries.DENSE
        else:
            carries[node] = _combined(inputs)
    gm.recompile()
    return len(pairs)
