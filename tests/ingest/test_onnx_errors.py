"""ingest_onnx refuses bad input with one-line errors that name the file, node and fix."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from spikeconv.errors import CheckpointError, ConversionError, UnsupportedLayerError
from spikeconv.ingest import CHECK_KEY, find_unsupported_onnx, ingest_onnx
from spikeconv.ingest.onnx import verify

_RNG = np.random.default_rng(0)


def _const(name: str, values) -> TensorProto:
    array = np.asarray(values)
    return numpy_helper.from_array(array.astype(np.float32) if array.dtype.kind == "f" else array, name)


def _graph_model(nodes, *, inputs=None, output="y", initializers=(), extra_opsets=()) -> onnx.ModelProto:
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])]
    graph = helper.make_graph(nodes, "g", inputs, [], list(initializers))
    opsets = [helper.make_opsetid("", 17), *(helper.make_opsetid(domain, 1) for domain in extra_opsets)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=8)
    inferred = onnx.shape_inference.infer_shapes(model)
    found = [v for v in inferred.graph.value_info if v.name == output]
    model.graph.output.extend(found or [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["N", 4])])
    return model


def _linear(name: str, source: str, target: str) -> tuple[onnx.NodeProto, list[TensorProto]]:
    weights = [_const(f"{name}_w", _RNG.standard_normal((4, 4))), _const(f"{name}_b", _RNG.standard_normal(4))]
    return helper.make_node("Gemm", [source, f"{name}_w", f"{name}_b"], [target], name=name, transB=1), weights


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "absent.onnx"
    with pytest.raises(CheckpointError, match=rf"^ONNX file {path} does not exist; check the path$"):
        ingest_onnx(path)


@pytest.mark.parametrize("content", [b"\x00\xff garbage \x13\x37" * 20, b"", b"not an onnx model at all"])
def test_garbage_file_is_named(tmp_path, content):
    path = tmp_path / "garbage.onnx"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=str(path)) as info:
        ingest_onnx(path)
    assert "\n" not in str(info.value)


def test_invalid_graph_fails_the_checker():
    node = helper.make_node("Relu", ["undefined"], ["y"], name="dangling")
    model = _graph_model([node])
    with pytest.raises(CheckpointError, match="fails the ONNX checker"):
        ingest_onnx(model)


def test_wrong_source_type():
    with pytest.raises(CheckpointError, match="expected an ONNX file path or onnx.ModelProto, got int"):
        ingest_onnx(3)


def _many_unsupported() -> onnx.ModelProto:
    gemm, weights = _linear("fc", "x", "h")
    nodes = [
        gemm,
        helper.make_node("Sigmoid", ["h"], ["s"], name="gate"),
        helper.make_node("Tanh", ["h"], ["t"], name="squash"),
        helper.make_node("Mul", ["s", "t"], ["st"], name="product"),
        helper.make_node("Erf", ["st"], ["e"], name="gelu_part"),
        helper.make_node("LayerNormalization", ["e", "ln_s", "ln_b"], ["ln"], name="norm"),
        helper.make_node("Transpose", ["ln"], ["lt"], name="flip", perm=[1, 0]),
        helper.make_node("MatMul", ["ln", "lt"], ["att"], name="scores"),
        helper.make_node("Softmax", ["att"], ["p"], name="probs"),
        helper.make_node("Clip", ["p", "lo", "hi"], ["c"], name="hardtanh"),
        helper.make_node("Foo", ["c"], ["y"], name="custom", domain="com.example"),
    ]
    extra = [_const("ln_s", np.ones(4)), _const("ln_b", np.zeros(4)), _const("lo", -1.0), _const("hi", 1.0)]
    return _graph_model(nodes, initializers=weights + extra, extra_opsets=["com.example"])


def test_every_unsupported_onnx_node_is_listed_before_conversion():
    """onnx2torch cannot convert the custom-domain op at all: only a scan that runs first lists everything."""
    with pytest.raises(UnsupportedLayerError) as info:
        ingest_onnx(_many_unsupported())
    message = str(info.value)
    # products of activations, LayerNorm, softmax and erf (the scan accepts it; a lone one is refused after import) convert
    expected = [("gate", "Sigmoid"), ("squash", "Tanh"), ("flip", "Transpose"), ("hardtanh", "Clip"), ("custom", "Foo")]  # fmt: skip
    assert message.startswith(f"cannot convert {len(expected)} node(s) of ModelProto g: ")
    for name, op in expected:
        assert f"{name} ({op}: " in message
    assert "flip (Transpose: moves the batch dimension" in message
    assert "\n" not in message
    assert [(item.name, item.op) for item in find_unsupported_onnx(_many_unsupported())] == expected


@pytest.mark.parametrize(
    ("op_type", "inputs", "attributes", "hint"),
    [
        ("Sigmoid", ["h"], {}, "retrain the ANN with ReLU"),
        ("Tanh", ["h"], {}, "retrain the ANN with ReLU"),
        ("LeakyRelu", ["h"], {"alpha": 0.1}, "negative slope"),
        ("Softmax", ["h"], {"axis": 0}, "over the batch dimension 0"),
        ("HardSwish", ["h"], {}, "retrain the ANN with ReLU"),
        ("Transpose", ["h"], {"perm": [1, 0]}, "moves the batch dimension"),
        ("Div", ["k", "h"], {}, "dividing by an activation"),
        ("Clip", ["h", "", "k"], {}, "clamp(0, c)"),
        ("Exp", ["h"], {}, "no spiking equivalent"),
    ],
)
def test_unsupported_onnx_op_is_named_with_its_hint(op_type, inputs, attributes, hint):
    gemm, weights = _linear("fc", "x", "h")
    node = helper.make_node(op_type, inputs, ["y"], name="offender", **attributes)
    model = _graph_model([gemm, node], initializers=weights + [_const("k", 2.0)])
    with pytest.raises(UnsupportedLayerError, match=rf"of ModelProto g: offender \({op_type}: .*{re.escape(hint)}"):
        ingest_onnx(model)


def test_shape_arithmetic_and_constants_are_not_flagged():
    """``x.view(x.size(0), -1)`` as the TorchScript exporter writes it: Shape -> Gather -> Concat -> Reshape."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"], name="shape"),
        helper.make_node("Gather", ["shape", "zero"], ["batch"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["batch", "axes"], ["batch1"], name="unsqueeze"),
        helper.make_node("Concat", ["batch1", "minus_one"], ["target"], name="concat", axis=0),
        helper.make_node("Reshape", ["x", "target"], ["flat"], name="reshape"),
        helper.make_node("Relu", ["flat"], ["y"], name="relu"),
    ]
    constants = [_const("zero", np.array(0, dtype=np.int64)), _const("axes", np.array([0], dtype=np.int64)),
                 _const("minus_one", np.array([-1], dtype=np.int64))]  # fmt: skip
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3])]
    model = _graph_model(nodes, inputs=inputs, initializers=constants)
    assert find_unsupported_onnx(model) == []
    gm = ingest_onnx(model)
    assert [n.op for n in gm.graph.nodes] == ["placeholder", "call_function", "call_module", "output"]
    x = torch.randn(5, 2, 3)
    torch.testing.assert_close(gm(x), torch.relu(x.reshape(5, 6)))


def test_nan_initializer_is_rejected():
    gemm, weights = _linear("fc", "x", "y")
    weights[0] = _const("fc_w", np.full((4, 4), np.nan))
    with pytest.raises(CheckpointError, match="initializer 'fc_w' of ModelProto g contains NaN or Inf"):
        ingest_onnx(_graph_model([gemm], initializers=weights))


def test_two_inputs_are_refused():
    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", 4]) for name in ("a", "b")]
    model = _graph_model([helper.make_node("Add", ["a", "b"], ["y"], name="sum")], inputs=inputs)
    with pytest.raises(UnsupportedLayerError, match=r"takes 2 inputs \['a', 'b'\]; spikeconv converts single-input models"):
        ingest_onnx(model)


def test_symbolic_feature_dimension_needs_a_probe():
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "C"])]
    model = _graph_model([helper.make_node("Relu", ["x"], ["y"], name="relu")], inputs=inputs)
    with pytest.raises(UnsupportedLayerError, match=r"dimension 1 of input 'x' of ModelProto g is symbolic \(C\); pass probe_input"):
        ingest_onnx(model)
    gm = ingest_onnx(model, probe_input=torch.randn(3, 7))
    assert gm.meta[CHECK_KEY]["probe_shape"] == [3, 7]


def test_integer_input_is_refused():
    inputs = [helper.make_tensor_value_info("x", TensorProto.INT64, ["N", 4])]
    model = _graph_model([helper.make_node("Relu", ["x"], ["y"], name="relu")], inputs=inputs)
    with pytest.raises(UnsupportedLayerError, match="is not float32"):
        ingest_onnx(model)


def test_mismatch_with_onnxruntime_is_refused_and_reported(monkeypatch, caplog):
    gemm, weights = _linear("fc", "x", "y")
    model = _graph_model([gemm], initializers=weights)
    with caplog.at_level("INFO", logger="spikeconv"):
        gm = ingest_onnx(model)
    assert "matches onnxruntime: max |diff|" in caplog.text
    assert 0.0 <= gm.meta[CHECK_KEY]["max_abs_diff"] <= 1e-4 * gm.meta[CHECK_KEY]["max_abs_reference"]
    real = verify._run_onnxruntime
    monkeypatch.setattr(verify, "_run_onnxruntime", lambda *args: [out + 0.01 for out in real(*args)])
    with pytest.raises(ConversionError, match=r"ModelProto g differs from onnxruntime by 0\.01 \(> rtol 0\.0001 x max\|output\| "):
        ingest_onnx(model)
    assert ingest_onnx(model, rtol=1.0).meta[CHECK_KEY]["max_abs_diff"] == pytest.approx(0.01, rel=1e-3)
