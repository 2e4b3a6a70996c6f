"""ONNX-level preparation of transformers, before the support scan: GELU spelled out, batch-1 constants broadcast, attention batch first.

- ``Gelu`` (opset 20; onnx2torch has no converter for it) is written as its definition in older ops,
  ``0.5·x·(1 + erf(x/√2))``, exactly as the TorchScript exporter writes it below opset 20; ingest
  gives that pattern back its ``nn.GELU`` module (:mod:`spikeconv.ingest.transformer_ops`). The ``tanh``
  approximation is left for the scan to name.
- A ``Concat`` of data with a constant whose batch is 1 (the class token, fixed at the dynamo
  exporter's batch of 1) gets the constant expanded to the data's batch, read from its shape.
- Attention blocks are rewritten batch first (:mod:`spikeconv.ingest.onnx.attention`).

A model without these is left as it is.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from spikeconv.ingest.onnx.attention import rewrite_attention_
from spikeconv.ingest.onnx.tidy import node_attribute

__all__ = ["prepare_transformer_"]


def _expand_gelu_(graph: onnx.GraphProto) -> int:
    """Every exact ``Gelu`` as ``Mul(Mul(x, Add(Erf(Div(x, √2)), 1)), 0.5)``. Returns how many."""
    nodes, count = [], 0
    for node in graph.node:
        if node.op_type != "Gelu" or node.domain not in ("", "ai.onnx") or node_attribute(node, "approximate", "none") != "none":
            nodes.append(node)
            continue
        x, y, base = node.input[0], node.output[0], node.name or f"gelu_{count}"
        constants = {"sqrt2": math.sqrt(2.0), "one": 1.0, "half": 0.5}
        for key, value in constants.items():
            graph.initializer.append(numpy_helper.from_array(np.array(value, dtype=np.float32), f"{base}/{key}"))
        nodes += [helper.make_node("Div", [x, f"{base}/sqrt2"], [f"{base}/div"], name=f"{base}/Div"),
                  helper.make_node("Erf", [f"{base}/div"], [f"{base}/erf"], name=f"{base}/Erf"),
                  helper.make_node("Add", [f"{base}/erf", f"{base}/one"], [f"{base}/add"], name=f"{base}/Add"),
                  helper.make_node("Mul", [x, f"{base}/add"], [f"{base}/mul"], name=f"{base}/Mul"),
                  helper.make_node("Mul", [f"{base}/mul", f"{base}/half"], [y], name=f"{base}/Mul_1")]  # fmt: skip
        count += 1
    if count:
        del graph.node[:]
        graph.node.extend(nodes)
    return count


def _batch_expand(graph: onnx.GraphProto, base: str, value: np.ndarray, source: str) -> tuple[list[onnx.NodeProto], str]:
    """Nodes computing ``value`` (a constant of batch 1) expanded to the batch of ``source``: ``Expand(value, [N, *rest])``."""
    for key, array in (("zero", [0]), ("one", [1]), ("rest", list(value.shape[1:]))):
        graph.initializer.append(numpy_helper.from_array(np.array(array, dtype=np.int64), f"{base}/{key}"))
    nodes = [helper.make_node("Shape", [source], [f"{base}/shape"], name=f"{base}/Shape"),
             helper.make_node("Slice", [f"{base}/shape", f"{base}/zero", f"{base}/one"], [f"{base}/batch"], name=f"{base}/Slice"),
             helper.make_node("Concat", [f"{base}/batch", f"{base}/rest"], [f"{base}/size"], name=f"{base}/Concat", axis=0)]  # fmt: skip
    return nodes, f"{base}/size"


def _rows_equal(value: np.ndarray, batch: int | None) -> bool:
    """Whether ``value`` is a constant of batch 1, or of the export's ``batch`` with every row equal (a class token expanded
    to a static export's batch of 32 and folded: kept so, the model would only run batches of 32)."""
    return value.shape[0] == 1 or (value.shape[0] == batch and bool((value == value[:1]).all()))


def _broadcast_batch_constants_(graph: onnx.GraphProto, values: dict[str, np.ndarray]) -> int:
    """Constants of batch 1 joined with data made to follow the data's batch. Returns how many.

    ``Concat(constant [1, ...], data)`` along a feature axis (the dynamo exporter's class token; ``[B, ...]`` with equal
    rows where it was exported for a batch of B) gets the constant's first row expanded; ``Expand(constant [1, ...],
    shape)`` to the probe's batch (the TorchScript exporter's ``class_token.expand(n, -1, -1)``, its shape computed or
    fixed at export) gets the shape ``[N, *rest]`` read from the input instead.
    """
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    source = next(v.name for v in graph.input if v.name not in constants)
    batch = values[source].shape[0] if source in values else None
    nodes, count = [], 0
    for node in graph.node:
        axis = int(node_attribute(node, "axis", 0))
        if node.op_type == "Concat" and axis != 0 and any(name not in constants for name in node.input):
            for index, name in enumerate(node.input):
                value = constants.get(name)
                if value is None or value.ndim < 2 or not _rows_equal(value, batch):
                    continue
                base = f"{node.name}/broadcast_{index}"
                if value.shape[0] != 1:  # fixed at a static export's batch: keep one row
                    graph.initializer.append(numpy_helper.from_array(value[:1], f"{base}/row"))
                    name = f"{base}/row"
                made, size = _batch_expand(graph, base, value, source)
                nodes += [*made, helper.make_node("Expand", [name, size], [f"{base}/expanded"], name=f"{base}/Expand")]
                node.input[index] = f"{base}/expanded"
                count += 1
        elif node.op_type == "Expand" and node.input[0] in constants and constants[node.input[0]].ndim >= 2:
            value, out = constants[node.input[0]], values.get(node.output[0])
            if value.shape[0] == 1 and out is not None and out.shape == (batch, *value.shape[1:]):
                made, size = _batch_expand(graph, f"{node.name}/broadcast", value, source)
                nodes += made
                node.input[1] = size
                count += 1
        nodes.append(node)
    if count:
        del graph.node[:]
        graph.node.extend(nodes)
    return count


def _needs_values(model: onnx.ModelProto) -> bool:
    """Whether the graph has an attention softmax or a constant joined with data (then every value on the probe is needed)."""
    constants = {t.name for t in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    for node in model.graph.node:
        if node.op_type == "Softmax":
            source = producers.get(node.input[0])
            while source is not None and source.op_type in ("Mul", "Div"):
                source = producers.get(source.input[0])
            if source is not None and source.op_type == "MatMul" and not set(source.input) & constants:
                return True
        if node.op_type in ("Concat", "Expand") and set(node.input) & constants and set(node.input) - constants:
            return True
    return False


def prepare_transformer_(model: onnx.ModelProto, probe: np.ndarray) -> int:
    """GELU spelled out, batch-1 constants broadcast, attention batch first (in place). Returns the attention blocks.

    Raises:
        UnsupportedLayerError: An attention block that cannot be made batch first, named.
    """
    _expand_gelu_(model.graph)
    if not _needs_values(model):
        return 0
    inputs = [v.name for v in model.graph.input if v.name not in {t.name for t in model.graph.initializer}]
    try:
        raw = ReferenceEvaluator(model).run(None, {inputs[0]: probe}, intermediate=True)
    except Exception:  # an op ONNX's reference cannot run (a custom domain, ...): the support scan names it next
        return 0
    values = {name: np.asarray(value) for name, value in raw.items() if value is not None}
    _broadcast_batch_constants_(model.graph, values)
    return rewrite_attention_(model, values)
