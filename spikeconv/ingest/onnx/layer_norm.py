"""A LayerNorm written out in elementary ONNX ops, fused back into one ``LayerNormalization`` node.

ONNX has ``LayerNormalization`` only from opset 17; below it (``torch.onnx.export(..., opset_version=14)``, older
exporters, other frameworks) ``nn.LayerNorm`` arrives as ``ReduceMean → Sub → Pow(2) → ReduceMean → Add(eps) → Sqrt →
Div``, then ``Mul(γ)`` and ``Add(β)``. Node by node that is a square, a square root and a division of activations, which
have no spiking form, so every such ViT was refused. Each match is replaced by the one node it computes (the model is
raised to opset 17 first where it is older), and the LayerNorm takes the path a newer export takes. A pattern that
differs in any detail (other axes, a reused intermediate, a non-constant ε) is left as it is for the support scan to name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference, version_converter

from spikeconv.ingest.onnx.tidy import default_opset, node_attribute

LAYER_NORM_OPSET = 17


@dataclass(frozen=True)
class _Match:
    nodes: list[onnx.NodeProto]  # every node replaced, in graph order of the pattern
    source: str
    output: str
    axis: int
    epsilon: float
    scale: np.ndarray | None
    bias: np.ndarray | None


class _Graph:
    """Producers, consumers and constants of a graph, for pattern matching."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.constants = {t.name: t for t in graph.initializer}
        self.outputs = {v.name for v in graph.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    def only_user(self, name: str, op_type: str) -> onnx.NodeProto | None:
        users = self.consumers.get(name, [])
        if name in self.outputs or len(users) != 1 or users[0].op_type != op_type or users[0].domain:
            return None
        return users[0]

    def constant(self, name: str) -> np.ndarray | None:
        return numpy_helper.to_array(self.constants[name]) if name in self.constants else None

    def other(self, node: onnx.NodeProto, name: str) -> str | None:
        """The input of binary ``node`` that is not ``name``."""
        rest = [i for i in node.input if i != name]
        return rest[0] if len(node.input) == 2 and len(rest) == 1 else None


def _axes(node: onnx.NodeProto, graph: _Graph) -> tuple[int, ...] | None:
    if int(node_attribute(node, "keepdims", 1)) != 1:
        return None
    axes = node_attribute(node, "axes", None)
    if axes is None and len(node.input) > 1:  # opset 18: axes as an input
        axes = graph.constant(node.input[1])
    return None if axes is None else tuple(int(a) for a in np.asarray(axes).reshape(-1))


def _trailing(axes: tuple[int, ...], rank: int | None) -> int | None:
    """How many trailing dimensions ``axes`` name (ReduceMean over the last k), or None."""
    if rank is not None:
        axes = tuple(a % rank for a in axes)
        return len(axes) if sorted(axes) == list(range(rank - len(axes), rank)) else None
    return len(axes) if sorted(axes) == list(range(-len(axes), 0)) else None


def _square_of(graph: _Graph, difference: str) -> onnx.NodeProto | None:
    for node in graph.consumers.get(difference, []):
        if node.op_type == "Mul" and list(node.input) == [difference, difference]:
            return node
        exponent = graph.constant(node.input[1]) if node.op_type == "Pow" and node.input[0] == difference else None
        if exponent is not None and exponent.size == 1 and float(exponent.reshape(-1)[0]) == 2.0:
            return node
    return None


def _match(first: onnx.NodeProto, graph: _Graph, shapes: dict[str, tuple]) -> _Match | None:
    """The LayerNorm that starts at ReduceMean ``first``, or None."""
    source, axes = first.input[0], _axes(first, graph)
    shape = shapes.get(source)
    count = None if axes is None else _trailing(axes, None if shape is None else len(shape))
    centre = graph.only_user(first.output[0], "Sub")
    if count is None or centre is None or list(centre.input) != [source, first.output[0]]:
        return None
    difference = centre.output[0]
    square = _square_of(graph, difference)
    users = list({n.output[0]: n for n in graph.consumers.get(difference, [])}.values())  # Mul(d, d) reads it twice
    divide = next((n for n in users if n.op_type == "Div" and n.input[0] == difference), None)
    if square is None or divide is None or len(users) != 2 or difference in graph.outputs:
        return None
    variance = graph.only_user(square.output[0], "ReduceMean")
    shifted = variance and graph.only_user(variance.output[0], "Add")
    epsilon = shifted and graph.constant(graph.other(shifted, variance.output[0]) or "")
    root = shifted and graph.only_user(shifted.output[0], "Sqrt")
    if variance is None or _axes(variance, graph) != axes or epsilon is None or epsilon.size != 1 or root is None \
            or list(divide.input) != [difference, root.output[0]] or len(graph.consumers.get(root.output[0], [])) != 1:
        return None  # fmt: skip
    nodes, output, scale, bias = [first, centre, square, variance, shifted, root, divide], divide.output[0], None, None
    scaled = graph.only_user(output, "Mul")
    scale = scaled and graph.constant(graph.other(scaled, output) or "")
    if scale is not None:
        nodes, output = [*nodes, scaled], scaled.output[0]
        shifted_out = graph.only_user(output, "Add")
        bias = shifted_out and graph.constant(graph.other(shifted_out, output) or "")
        if bias is not None:
            nodes, output = [*nodes, shifted_out], shifted_out.output[0]
    return _Match(nodes, source, output, -count, float(epsilon.reshape(-1)[0]), scale, bias)


def _parameter(value: np.ndarray | None, normalized: tuple[int, ...], fill: float) -> np.ndarray | None:
    """γ or β in the normalized shape (a broadcast one expanded), or None where it does not fit that shape."""
    if value is None:
        return np.full(normalized, fill, dtype=np.float32)
    try:
        if np.broadcast_shapes(value.shape, normalized) != normalized:
            return None
    except ValueError:
        return None
    return np.broadcast_to(value.astype(np.float32), normalized).copy()


def _shapes(model: onnx.ModelProto) -> dict[str, tuple]:
    try:
        inferred = shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 (inference is a convenience: without it only static trailing sizes are missing)
        return {}
    found = {}
    for value in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        dims = value.type.tensor_type.shape.dim
        found[value.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
    return found


def _matches(model: onnx.ModelProto, shapes: dict[str, tuple]) -> list[_Match]:
    graph = _Graph(model.graph)
    found = []
    for node in model.graph.node:
        if node.op_type == "ReduceMean" and not node.domain:
            match = _match(node, graph, shapes)
            if match is not None:
                found.append(match)
    return found


def fuse_layer_norms(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with each written-out LayerNorm as one ``LayerNormalization`` (raised to opset 17 where older; ``model``
    itself is returned where nothing matches or the raise fails, and the support scan names the nodes)."""
    if not any(node.op_type == "ReduceMean" and not node.domain for node in model.graph.node):
        return model  # no shape inference for models without a mean (every CNN)
    shapes = _shapes(model)
    matches = _matches(model, shapes)
    if not matches:
        return model
    if default_opset(model) < LAYER_NORM_OPSET:
        try:
            model = version_converter.convert_version(model, LAYER_NORM_OPSET)
        except Exception:  # noqa: BLE001 (the C++ converter raises RuntimeError/ValueError/IndexError)
            return model
        shapes = _shapes(model)
        matches = _matches(model, shapes)  # the converted copy's own nodes
    replaced = {}
    for match in matches:
        shape = shapes.get(match.source)
        normalized = None if shape is None else tuple(shape[match.axis:])
        if normalized is None or None in normalized or 0 in normalized:
            continue
        scale, bias = _parameter(match.scale, normalized, 1.0), _parameter(match.bias, normalized, 0.0)
        if scale is None or bias is None:
            continue
        base = match.nodes[0].name or match.output
        model.graph.initializer.extend([numpy_helper.from_array(scale, f"{base}/layer_norm_scale"),
                                        numpy_helper.from_array(bias, f"{base}/layer_norm_bias")])  # fmt: skip
        fused = helper.make_node("LayerNormalization", [match.source, f"{base}/layer_norm_scale", f"{base}/layer_norm_bias"],
                                 [match.output], name=f"{base}/LayerNormalization", axis=match.axis, epsilon=match.epsilon)  # fmt: skip
        replaced[match.nodes[0].output[0]] = fused
        replaced.update({node.output[0]: None for node in match.nodes[1:]})
    if replaced:
        kept = [replaced.get(node.output[0], node) if node.output else node for node in model.graph.node]
        del model.graph.node[:]
        model.graph.node.extend(node for node in kept if node is not None)
    return model
