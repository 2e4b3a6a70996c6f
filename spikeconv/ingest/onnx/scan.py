"""Scan a whole ONNX graph for nodes spikeconv cannot convert, before converting anything.

Every value is a constant (initializers and what derives only from them), a shape (what derives
from ``Shape``/``Size`` of the data: the exporter's way of writing ``x.view(x.size(0), -1)``) or
data. Constant and shape computations are evaluated away later, so any op may compute them. A
node on data must be a registered op (:mod:`spikeconv.ingest.onnx.registry`) and affine in its one
time-varying input, its first, unless it is a join (Add, Sub, Concat); a few ops have extra
conditions (Clip must clamp at 0, MatMul needs a constant weight, Flatten must keep the batch,
MaxPool must be 2-D).
"""

from __future__ import annotations

from enum import Enum

import numpy as np
import onnx
from onnx import numpy_helper

from spikeconv.ingest.onnx.registry import onnx_op
from spikeconv.ingest.onnx.tidy import node_attribute
from spikeconv.ingest.support import UnsupportedNode, hint_for, raise_unsupported


class _Kind(Enum):
    CONSTANT = 0
    SHAPE = 1
    DATA = 2


_SHAPE_OPS = {"Shape", "Size"}


def _clip_bounds(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> tuple[float | None, float | None] | None:
    """(min, max) of a Clip, ``None`` for an absent bound; ``None`` overall if a bound is computed."""
    if any(a.name in ("min", "max") for a in node.attribute):  # opset < 11: attributes
        return node_attribute(node, "min", None), node_attribute(node, "max", None)
    bounds = []
    for index in (1, 2):
        name = node.input[index] if len(node.input) > index else ""
        if name and name not in constants:
            return None
        bounds.append(float(constants[name]) if name else None)
    return bounds[0], bounds[1]


def _clip_problem(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> str | None:
    bounds = _clip_bounds(node, constants)
    if bounds is not None and bounds[0] == 0.0 and (bounds[1] is None or bounds[1] > 0.0):
        return None
    return "a clamp is an activation site only as clamp(0, c) with constant bounds; use ReLU, ReLU6 or clamp(0, c)"


def _problem(node: onnx.NodeProto, kinds: list[_Kind], constants: dict[str, np.ndarray]) -> str | None:
    """Why a node on data cannot be converted, or ``None``."""
    op = onnx_op(node.op_type) if node.domain in ("", "ai.onnx") else None
    if op is None:
        return hint_for(node.op_type)
    varying = [index for index, kind in enumerate(kinds) if kind is _Kind.DATA]
    if not op.joins and varying != [0]:
        return hint_for(node.op_type) if node.op_type in ("Mul", "Div", "MatMul") else "needs constant weights/parameters"
    if node.op_type == "Clip":
        return _clip_problem(node, constants)
    if node.op_type == "MatMul" and kinds[1] is not _Kind.DATA and (node.input[1] not in constants or constants[node.input[1]].ndim != 2):
        return "needs a constant 2-D weight as its second input (or an activation: a product)"
    if op.check is not None:
        return op.check(node, constants)
    if node.op_type == "Gemm" and node_attribute(node, "transA", 0):
        return "transA=1 transposes the batch; re-export without it"
    if node.op_type == "MaxPool" and len(node_attribute(node, "kernel_shape", [])) != 2:
        return "only 2-D max pooling is converted; use AveragePool"
    if node.op_type == "Flatten" and node_attribute(node, "axis", 1) == 0:
        return "axis 0 flattens the batch into the features; use axis >= 1"
    return None


def find_unsupported_onnx(model: onnx.ModelProto) -> list[UnsupportedNode]:
    """Every node of ``model`` that spikeconv cannot convert, in graph order (op type, node name, hint)."""
    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    kinds = {name: _Kind.CONSTANT for name in constants}
    kinds.update({value.name: _Kind.DATA for value in graph.input if value.name not in constants})
    found = []
    for node in graph.node:
        inputs = [kinds.get(name, _Kind.CONSTANT) if name else _Kind.CONSTANT for name in node.input]
        kind = max(inputs, key=lambda k: k.value, default=_Kind.CONSTANT)
        if kind is _Kind.DATA and node.op_type in _SHAPE_OPS:
            kind = _Kind.SHAPE
        elif kind is _Kind.DATA:
            problem = _problem(node, inputs, constants)
            if problem is not None:
                found.append(UnsupportedNode(node.name, node.op_type, problem))
        kinds.update({name: kind for name in node.output})
    return found


def check_onnx_supported(model: onnx.ModelProto, label: str) -> None:
    """Raise one :class:`UnsupportedLayerError` listing every unsupported node of ``model``, or return."""
    raise_unsupported(find_unsupported_onnx(model), label)
