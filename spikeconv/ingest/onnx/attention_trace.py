"""Walking the ONNX graph around an attention block: constant factors, layout chains and the projections q, k, v read.

The pieces :mod:`spikeconv.ingest.onnx.attention` traces a block with: lookups over the graph and the
values its tensors took on a probe (:class:`Graph`), the chain of layout ops between two tensors
(:func:`back`, :func:`forward`) and running such a chain on index tensors (:func:`run`), and the
``MatMul + Add`` projection a tensor comes from (:func:`projection_at`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

__all__ = [
    "Graph",
    "LAYOUT",
    "Link",
    "Projection",
    "back",
    "data_inputs",
    "forward",
    "index",
    "projection_at",
    "readers",
    "run",
    "scale_of",
]

LAYOUT = {"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Gather", "Slice", "Split", "Expand"}


@dataclass
class Graph:
    """Lookups over one ONNX graph and the values every tensor took on the probe."""

    model: onnx.ModelProto
    values: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        graph = self.model.graph
        self.constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.producer = {out: node for node in graph.node for out in node.output if out}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        data = {v.name for v in graph.input if v.name not in self.constants}
        for node in graph.node:  # data: what depends on the input other than through Shape
            if node.op_type not in ("Shape", "Size") and any(name in data for name in node.input):
                data.update(o for o in node.output if o)
        self.data = data

    def scalar(self, name: str) -> float | None:
        """The value of a one-element tensor that does not vary with the data (a scale), else None."""
        value = self.constants.get(name, self.values.get(name)) if name not in self.data else None
        return float(np.asarray(value).reshape(-1)[0]) if value is not None and np.asarray(value).size == 1 else None


def data_inputs(g: Graph, node: onnx.NodeProto) -> list[int]:
    return [i for i, name in enumerate(node.input) if name in g.data]


def scale_of(g: Graph, node: onnx.NodeProto) -> tuple[float, int] | None:
    """``(factor, data input index)`` of a Mul or Div of data by a scalar, else None."""
    if node.op_type not in ("Mul", "Div") or len(data_inputs(g, node)) != 1:
        return None
    index = data_inputs(g, node)[0]
    other = g.scalar(node.input[1 - index])
    if other is None or (node.op_type == "Div" and index != 0):
        return None
    return (other if node.op_type == "Mul" else 1.0 / other), index


@dataclass
class Link:
    """One layout op of a chain: the node, which of its inputs carries the data, which output the chain follows."""

    node: onnx.NodeProto
    index: int
    output: str


def run(g: Graph, chain: list[Link], value: np.ndarray) -> np.ndarray:
    """The chain applied to ``value`` in place of its input; other inputs keep their probe values (same shapes)."""
    for link in chain:
        feeds = {name: g.constants.get(name, g.values.get(name)) for name in link.node.input if name}
        feeds[link.node.input[link.index]] = value
        outputs = ReferenceEvaluator(link.node).run(None, feeds)
        value = outputs[list(link.node.output).index(link.output)]
    return value


@dataclass(frozen=True)
class Projection:
    """``y = x·Wᵀ + b`` on the last dimension: the node(s), the data input name, W ``[out, in]`` and b."""

    output: str
    data: str
    weight: np.ndarray
    bias: np.ndarray | None


def projection_at(g: Graph, name: str) -> Projection | None:
    node = g.producer.get(name)
    bias = None
    if node is not None and node.op_type == "Add" and len(data_inputs(g, node)) == 1:
        index = data_inputs(g, node)[0]
        bias = g.constants.get(node.input[1 - index])
        node = g.producer.get(node.input[index]) if bias is not None else None
    if node is None:
        return None
    if node.op_type == "MatMul" and node.input[1] in g.constants and g.constants[node.input[1]].ndim == 2 and node.input[0] in g.data:
        return Projection(name, node.input[0], g.constants[node.input[1]].T, bias)
    if node.op_type == "Gemm" and bias is None and node.input[0] in g.data and node.input[1] in g.constants:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("transA", 0):
            return None
        b = g.constants[node.input[1]]
        weight = attrs.get("alpha", 1.0) * (b if attrs.get("transB", 0) else b.T)
        c = g.constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        return Projection(name, node.input[0], weight, None if c is None else attrs.get("beta", 1.0) * np.broadcast_to(c, weight.shape[:1]))
    return None


def back(g: Graph, name: str, stop) -> tuple[str, list[Link], float]:
    """Walk up from ``name`` through layout ops and scalar factors until ``stop(name)``; the chain (top first) and the factor."""
    chain, factor = [], 1.0
    while not stop(name):
        node = g.producer.get(name)
        scale = scale_of(g, node) if node is not None else None
        if scale is not None:
            factor *= scale[0]
            name = node.input[scale[1]]
            continue
        if node is None or node.op_type not in LAYOUT or data_inputs(g, node) != [0]:
            return name, chain[::-1], factor
        chain.append(Link(node, 0, name))
        name = node.input[0]
    return name, chain[::-1], factor


def readers(g: Graph, name: str) -> list[onnx.NodeProto]:
    """The nodes that read ``name``'s values (a ``Shape`` of it reads only its size)."""
    return [node for node in g.consumers.get(name, []) if node.op_type not in ("Shape", "Size")]


def forward(g: Graph, name: str) -> list[Link]:
    chain = []
    while len(readers(g, name)) == 1 and readers(g, name)[0].op_type in LAYOUT:
        node = readers(g, name)[0]
        if data_inputs(g, node) != [0] or len([o for o in node.output if o]) != 1:
            break
        chain.append(Link(node, 0, node.output[0]))
        name = node.output[0]
    return chain


def index(shape: tuple[int, ...], axis: int) -> np.ndarray:
    view = [1] * len(shape)
    view[axis] = shape[axis]
    return np.broadcast_to(np.arange(shape[axis], dtype=np.float64).reshape(view), shape).copy()
