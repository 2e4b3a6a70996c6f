"""ONNX-level clean-ups on a copy of the model, before the support scan and onnx2torch.

None of them changes what the model computes; each removes a spelling onnx2torch cannot read:

- every node gets a unique, non-empty name (errors and module names refer to it);
- ``Constant`` nodes become initializers, so onnx2torch sees constant weights and bounds;
- layout and arithmetic nodes whose inputs are all constants are computed once into initializers (what the
  exporters' constant folding does; ``do_constant_folding=False`` leaves a weight's ``Transpose`` in the graph,
  and the attention pass needs the projection weight itself);
- ``Identity`` and single-output ``Dropout`` nodes are bypassed (the TorchScript exporter writes
  ``Identity`` for de-duplicated weights, which onnx2torch cannot feed to ``Conv``);
- ``Reshape(allowzero=1)`` with a constant shape free of zeros is ``allowzero=0``;
- a model with an op that onnx2torch has no converter for at the model's opset (e.g. ``Identity``
  or ``ReduceMean`` at opset 18+) is lowered to opset 17 (:func:`lower_opset`), the newest that
  onnx2torch covers for every op spikeconv supports. Lowering copies every weight, so it is
  skipped when onnx2torch reads the model as it is.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper, version_converter

from spikeconv.errors import UnsupportedLayerError, first_line

TARGET_OPSET = 17
_CONSTANT_ATTRIBUTES = {"value", "value_float", "value_floats", "value_int", "value_ints"}
_FOLDED = {"Transpose", "Slice", "Gather", "Reshape", "Squeeze", "Unsqueeze", "Concat", "Cast", "Split", "Flatten", "Neg",
           "Sqrt", "Reciprocal", "Add", "Sub", "Mul", "Div"}  # fmt: skip
_BROADCASTING = {"Add", "Sub", "Mul", "Div"}
FOLD_LIMIT = 1 << 26  # elements: a constant node whose output could exceed this is left alone (a hostile file's bomb)


def _name_nodes_(graph: onnx.GraphProto) -> None:
    taken: set[str] = set()
    for index, node in enumerate(graph.node):
        base = node.name or f"{node.op_type}_{index}"
        name, suffix = base, 1
        while name in taken:
            name, suffix = f"{base}_{suffix}", suffix + 1
        node.name = name
        taken.add(name)


def _constants_to_initializers_(graph: onnx.GraphProto) -> None:
    keep = []
    for node in graph.node:
        attributes = {a.name: a for a in node.attribute}
        if node.op_type == "Constant" and not node.domain and len(attributes) == 1 and set(attributes) <= _CONSTANT_ATTRIBUTES:
            value = helper.get_attribute_value(next(iter(attributes.values())))
            tensor = value if isinstance(value, onnx.TensorProto) else numpy_helper.from_array(_as_array(value))
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)


def _bounded(node: onnx.NodeProto, arrays: list[np.ndarray]) -> bool:
    """Whether ``node``'s output on ``arrays`` has at most :data:`FOLD_LIMIT` elements, judged before computing it."""
    if node.op_type in _BROADCASTING:
        try:
            return int(np.prod(np.broadcast_shapes(*(a.shape for a in arrays)))) <= FOLD_LIMIT
        except ValueError:
            return False
    if node.op_type == "Gather" and len(arrays) == 2:
        return arrays[1].size * arrays[0].size <= FOLD_LIMIT * max(arrays[0].shape[int(node_attribute(node, "axis", 0))], 1)
    return sum(a.size for a in arrays) <= FOLD_LIMIT


def node_attribute(node: onnx.NodeProto, name: str, default: object) -> object:
    """The value of ``node``'s attribute ``name`` (strings decoded), or ``default``."""
    found = next((a for a in node.attribute if a.name == name), None)
    value = default if found is None else helper.get_attribute_value(found)
    return value.decode() if isinstance(value, bytes) else value


def _fold_constant_nodes_(graph: onnx.GraphProto, opset: int) -> int:
    """Nodes of :data:`_FOLDED` computed from initializers alone become initializers (ONNX's reference evaluator computes
    them). Returns how many."""
    from onnx.reference import ReferenceEvaluator  # imported here: only models with such nodes need it

    values = {t.name: t for t in graph.initializer}
    arrays: dict[str, np.ndarray] = {}
    outputs = {v.name for v in graph.output}
    keep, folded = [], 0
    for node in graph.node:
        inputs = [name for name in node.input if name]
        if node.domain or node.op_type not in _FOLDED or not inputs or any(name not in values for name in inputs) \
                or any(name in outputs for name in node.output):
            keep.append(node)
            continue
        feed = [arrays.setdefault(name, numpy_helper.to_array(values[name])) for name in inputs]
        if not _bounded(node, feed):
            keep.append(node)
            continue
        try:
            results = ReferenceEvaluator(node, opsets={"": opset}).run(None, dict(zip(inputs, feed, strict=True)))
        except Exception:  # noqa: BLE001 (a dtype or attribute the reference cannot run: onnx2torch and the scan see the node)
            keep.append(node)
            continue
        for name, result in zip(node.output, results, strict=True):
            tensor = numpy_helper.from_array(np.asarray(result), name)
            graph.initializer.append(tensor)
            values[name] = tensor
        folded += 1
    del graph.node[:]
    graph.node.extend(keep)
    return folded


def _as_array(value: object) -> np.ndarray:
    if isinstance(value, float) or (isinstance(value, list) and value and isinstance(value[0], float)):
        return np.asarray(value, dtype=np.float32)
    return np.asarray(value, dtype=np.int64)


def _rename_input_(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name == old:
                node.input[index] = new


def _bypass_passthroughs_(graph: onnx.GraphProto) -> None:
    outputs = {value.name for value in graph.output}
    keep = []
    for node in graph.node:
        single = node.op_type == "Identity" or (node.op_type == "Dropout" and len([o for o in node.output if o]) == 1)
        if single and not node.domain and node.output[0] not in outputs:
            _rename_input_(graph, node.output[0], node.input[0])
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)


def _relax_reshape_allowzero_(graph: onnx.GraphProto) -> None:
    constants = {tensor.name: tensor for tensor in graph.initializer}
    for node in graph.node:
        for attribute in node.attribute:
            if node.op_type == "Reshape" and attribute.name == "allowzero" and attribute.i == 1:
                shape = constants.get(node.input[1])
                if shape is not None and 0 not in numpy_helper.to_array(shape).tolist():
                    attribute.i = 0


def tidy_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """A cleaned-up copy of ``model`` (see the module docstring); ``model`` is untouched."""
    tidy = onnx.ModelProto()
    tidy.CopyFrom(model)
    _name_nodes_(tidy.graph)
    _constants_to_initializers_(tidy.graph)
    _bypass_passthroughs_(tidy.graph)
    _fold_constant_nodes_(tidy.graph, default_opset(tidy))
    _relax_reshape_allowzero_(tidy.graph)
    return tidy


def default_opset(model: onnx.ModelProto) -> int:
    """The version of the default (``ai.onnx``) opset the model imports."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def _onnx2torch_reads(model: onnx.ModelProto) -> bool:
    """Whether onnx2torch has a converter for every node at the model's own opset."""
    from onnx2torch.node_converters import get_converter  # imported here: slow, and ONNX-only

    opsets = {o.domain or "": o.version for o in model.opset_import}
    for node in model.graph.node:
        try:
            get_converter(operation_type=node.op_type, version=opsets.get(node.domain or "", 1), domain=node.domain or "")
        except NotImplementedError:
            return False
    return True


def lower_opset(model: onnx.ModelProto, label: str) -> onnx.ModelProto:
    """``model`` lowered to :data:`TARGET_OPSET` if it is newer and onnx2torch cannot read it as it is.

    Raises:
        UnsupportedLayerError: if the version converter cannot lower it.
    """
    opset = default_opset(model)
    if opset <= TARGET_OPSET or _onnx2torch_reads(model):
        return model
    try:
        return version_converter.convert_version(model, TARGET_OPSET)
    except Exception as exc:  # the C++ converter raises RuntimeError/ValueError/IndexError
        reason = first_line(exc, limit=None)
        raise UnsupportedLayerError(
            f"cannot lower {label} from opset {opset} to {TARGET_OPSET} for onnx2torch ({reason}); "
            f"re-export with torch.onnx.export(..., opset_version={TARGET_OPSET})"
        ) from None
