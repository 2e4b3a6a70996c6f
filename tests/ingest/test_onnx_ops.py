"""Contract test for the ONNX op registry: every registered op, as a one-node model, imports into
standard torch modules and matches onnxruntime (onnx2torch ``tests/node_converters`` style)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from spikeconv.errors import ConfigError
from spikeconv.ingest import CHECK_KEY, available_onnx_ops, ingest_onnx, register_onnx_op
from spikeconv.ingest.passes import assert_canonical

_RNG = np.random.default_rng(0)


def _init(name: str, values) -> TensorProto:
    array = np.asarray(values)
    return numpy_helper.from_array(array.astype(np.float32) if array.dtype.kind == "f" else array, name)


def _weights(name: str, *shape: int) -> TensorProto:
    return _init(name, _RNG.standard_normal(shape))


def _model(op_type: str, inputs: list[str], shape: list, initializers=(), **attributes) -> onnx.ModelProto:
    """A one-node model ``y = op(x, ...)``; the output type comes from ONNX shape inference."""
    node = helper.make_node(op_type, inputs, ["y"], name=f"the_{op_type.lower()}", **attributes)
    graph = helper.make_graph([node], f"one_{op_type}", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)], [],
                              list(initializers))  # fmt: skip
    model = onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8))
    model.graph.output.extend(v for v in model.graph.value_info if v.name == "y")
    return model


IMAGE = ["N", 4, 6, 6]
ONE_NODE = {
    "Add": lambda: _model("Add", ["x", "x"], IMAGE),
    "Sub": lambda: _model("Sub", ["x", "m"], IMAGE, [_weights("m", 1, 4, 1, 1)]),
    "Mul": lambda: _model("Mul", ["x", "g"], IMAGE, [_weights("g", 1, 4, 1, 1)]),
    "Div": lambda: _model("Div", ["x", "s"], IMAGE, [_init("s", [[[[0.5]], [[2.0]], [[4.0]], [[1.5]]]])]),
    "Concat": lambda: _model("Concat", ["x", "x"], IMAGE, axis=1),
    "Conv": lambda: _model("Conv", ["x", "w", "b"], IMAGE, [_weights("w", 6, 2, 3, 3), _weights("b", 6)],
                           strides=[2, 2], pads=[1, 1, 1, 1], group=2),  # fmt: skip
    "Gemm": lambda: _model("Gemm", ["x", "w", "b"], ["N", 6], [_weights("w", 3, 6), _weights("b", 3)], transB=1, alpha=0.5),
    "MatMul": lambda: _model("MatMul", ["x", "w"], ["N", 6], [_weights("w", 6, 3)]),
    "Relu": lambda: _model("Relu", ["x"], IMAGE),
    "Clip": lambda: _model("Clip", ["x", "lo", "hi"], IMAGE, [_init("lo", 0.0), _init("hi", 0.75)]),
    "BatchNormalization": lambda: _model(
        "BatchNormalization", ["x", "s", "b", "m", "v"], IMAGE,
        [_weights("s", 4), _weights("b", 4), _weights("m", 4), _init("v", [0.5, 1, 1.5, 2])],
    ),  # fmt: skip
    "AveragePool": lambda: _model("AveragePool", ["x"], IMAGE, kernel_shape=[2, 2], strides=[2, 2]),
    "MaxPool": lambda: _model("MaxPool", ["x"], IMAGE, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    "GlobalAveragePool": lambda: _model("GlobalAveragePool", ["x"], IMAGE),
    "ReduceMean": lambda: _model("ReduceMean", ["x"], IMAGE, axes=[2, 3], keepdims=1),
    "Flatten": lambda: _model("Flatten", ["x"], IMAGE, axis=1),
    "Reshape": lambda: _model("Reshape", ["x", "shape"], IMAGE, [_init("shape", np.array([-1, 8, 18], dtype=np.int64))]),
    "Identity": lambda: _model("Identity", ["x"], IMAGE),
    "Dropout": lambda: _model("Dropout", ["x"], IMAGE),
    "LayerNormalization": lambda: _model("LayerNormalization", ["x", "s", "b"], ["N", 5, 6], [_weights("s", 6), _weights("b", 6)],
                                         axis=-1),  # fmt: skip
    "Softmax": lambda: _model("Softmax", ["x"], IMAGE, axis=-1),
    "Transpose": lambda: _model("Transpose", ["x"], IMAGE, perm=[0, 2, 3, 1]),
    "Gather": lambda: _model("Gather", ["x", "i"], IMAGE, [_init("i", np.array(2, dtype=np.int64))], axis=1),
    "Erf": lambda: _gelu_model(),
    "Expand": lambda: _class_token_model(),
}


def _graph(nodes, shape, initializers) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)], [], list(initializers))
    model = onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8))
    model.graph.output.extend(v for v in model.graph.value_info if v.name == "y")
    return model


def _gelu_model() -> onnx.ModelProto:
    """``Erf`` as the TorchScript exporter writes GELU below opset 20: ``0.5·x·(1 + erf(x/√2))`` (one nn.GELU)."""
    nodes = [helper.make_node("Div", ["x", "c"], ["d"], name="div"), helper.make_node("Erf", ["d"], ["e"], name="the_erf"),
             helper.make_node("Add", ["e", "one"], ["a"], name="add"), helper.make_node("Mul", ["x", "a"], ["m"], name="mul"),
             helper.make_node("Mul", ["m", "half"], ["y"], name="half_of")]  # fmt: skip
    return _graph(nodes, IMAGE, [_init("c", np.float32(np.sqrt(2.0))), _init("one", np.float32(1.0)), _init("half", np.float32(0.5))])


def _class_token_model() -> onnx.ModelProto:
    """``Expand`` of a class token [1, 1, C] to the batch read from the input's shape, then joined with the tokens."""
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape"),
             helper.make_node("Slice", ["s", "zero", "one"], ["n"], name="batch"),
             helper.make_node("Concat", ["n", "rest"], ["size"], name="size", axis=0),
             helper.make_node("Expand", ["token", "size"], ["t"], name="the_expand"),
             helper.make_node("Concat", ["t", "x"], ["y"], name="join", axis=1)]  # fmt: skip
    constants = [_weights("token", 1, 1, 6), _init("zero", np.array([0], dtype=np.int64)), _init("one", np.array([1], dtype=np.int64)),
                 _init("rest", np.array([1, 6], dtype=np.int64))]  # fmt: skip
    return _graph(nodes, ["N", 4, 6], constants)


def _onnxruntime(model: onnx.ModelProto, x: torch.Tensor) -> np.ndarray:
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x.numpy()})[0]


@pytest.mark.parametrize("op_type", available_onnx_ops())
def test_registered_op_imports_as_standard_torch_and_matches_onnxruntime(op_type):
    assert op_type in ONE_NODE, f"add a one-node model for the newly registered ONNX op {op_type} to ONE_NODE"
    model = ONE_NODE[op_type]()
    shape = [3 if d == "N" else d for d in (d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim)]
    gm = ingest_onnx(model, probe_input=torch.randn(*[2, *shape[1:]], generator=torch.Generator().manual_seed(1)))
    assert_canonical(gm)
    assert not [m for m in gm.modules() if type(m).__module__.startswith("onnx2torch")]
    assert gm.meta[CHECK_KEY]["max_abs_diff"] <= 1e-5 * max(gm.meta[CHECK_KEY]["max_abs_reference"], 1.0)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(2))  # another batch size than the probe
    np.testing.assert_allclose(gm(x).detach().numpy(), _onnxruntime(model, x), rtol=1e-5, atol=1e-5)


def test_activation_ops_become_sites():
    relu = ingest_onnx(ONE_NODE["Relu"]())
    clip = ingest_onnx(ONE_NODE["Clip"]())
    assert relu.meta["spikeconv_sites"] == ("the_relu",)
    assert clip.meta["spikeconv_sites"] == ("the_clip",) and clip.meta["spikeconv_site_caps"] == {"the_clip": 0.75}
    assert isinstance(clip.get_submodule("the_clip"), torch.nn.Hardtanh)


def test_registering_an_op_twice_raises():
    before = available_onnx_ops()
    with pytest.raises(ConfigError, match="'Relu' is already registered"):
        register_onnx_op("Relu", note="again")(lambda site: None)
    assert available_onnx_ops() == before


def _two_node_model(nodes, shape, initializers) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "constant_subgraph", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)], [],
                              list(initializers))  # fmt: skip
    model = onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8))
    model.graph.output.extend(v for v in model.graph.value_info if v.name == "y")
    return model


@pytest.mark.parametrize(
    ("case", "module_type"),
    [("gemm-weight-from-transpose", torch.nn.Linear), ("batchnorm-mean-from-add", torch.nn.BatchNorm2d)],
)
def test_weights_computed_from_constants_are_folded_then_canonicalised(case, module_type):
    """onnx2torch keeps OnnxGemm/OnnxBatchNorm when a weight is computed; folding makes it a constant again."""
    if case.startswith("gemm"):
        nodes = [helper.make_node("Transpose", ["w"], ["wt"], name="transpose", perm=[1, 0]),
                 helper.make_node("Gemm", ["x", "wt", "b"], ["y"], name="gemm", beta=2.0)]  # fmt: skip
        model = _two_node_model(nodes, ["N", 6], [_weights("w", 3, 6), _weights("b", 3)])
        x = torch.randn(4, 6)
    else:
        nodes = [helper.make_node("Add", ["m0", "m1"], ["m"], name="mean"),
                 helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="bn")]  # fmt: skip
        constants = [_weights("m0", 4), _weights("m1", 4), _weights("s", 4), _weights("b", 4), _init("v", [0.5, 1, 1.5, 2])]
        model = _two_node_model(nodes, IMAGE, constants)
        x = torch.randn(3, 4, 6, 6)
    gm = ingest_onnx(model)
    assert_canonical(gm)
    assert [type(m) for m in gm.children()] == [module_type]
    np.testing.assert_allclose(gm(x).detach().numpy(), _onnxruntime(model, x), rtol=1e-5, atol=1e-5)
