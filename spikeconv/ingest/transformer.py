"""The canonical passes for transformer operations, as :func:`~spikeconv.ingest.canonical.make_canonical_` runs them.

1. :func:`canonicalize_transformer_` (before dropout removal and BatchNorm folding): drop shape
   assertions, split attention into its parts (:mod:`~spikeconv.ingest.attention`), and give every
   LayerNorm, GELU, softmax and activation product its own module (:mod:`~spikeconv.ingest.transformer_ops`);
2. :func:`~spikeconv.ingest.spike_sites.insert_spike_sites_` (before the ReLU sites are made): a
   signed pair of activation sites in front of every affine layer fed by graded values;
3. :func:`operator_sites`: the operation modules by name, recorded in ``gm.meta[OPERATORS_KEY]``
   for conversion, which makes each one spike-equivalent.

A ReLU network has none of these operations, and every pass leaves its graph as it was.
"""

from __future__ import annotations

from torch import fx

from spikeconv._fx import module_of
from spikeconv.ingest.attention import decompose_attention_
from spikeconv.ingest.gelu_pattern import collapse_gelu_
from spikeconv.ingest.shape_values import remove_shape_asserts_, shape_values
from spikeconv.ingest.spike_sites import insert_spike_sites_
from spikeconv.ingest.transformer_ops import canonicalize_transformer_ops_, operator_kind

__all__ = ["OPERATORS_KEY", "canonicalize_transformer_", "insert_spike_sites_", "operator_sites"]

OPERATORS_KEY = "spikeconv_operators"
"""``gm.meta`` key: transformer-operation module name -> operation (``layer_norm``, ``gelu``, ``softmax``, ``product``)."""


def _dependent(gm: fx.GraphModule) -> set[fx.Node]:
    found: set[fx.Node] = set()
    for node in gm.graph.nodes:
        if node.op == "placeholder" or any(n in found for n in node.all_input_nodes):
            found.add(node)
    return found


def canonicalize_transformer_(gm: fx.GraphModule) -> int:
    """Shape assertions removed, attention split, one module per transformer operation (in place). Returns the operations."""
    remove_shape_asserts_(gm)
    collapse_gelu_(gm)
    decompose_attention_(gm)
    return canonicalize_transformer_ops_(gm, _dependent(gm) - shape_values(gm))


def operator_sites(gm: fx.GraphModule) -> dict[str, str]:
    """Transformer-operation module name -> operation name, in graph order."""
    found = {}
    for node in gm.graph.nodes:
        kind = operator_kind(module_of(gm, node))
        if kind is not None:
            found[str(node.target)] = kind
    return found
