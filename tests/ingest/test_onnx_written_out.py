"""ONNX written out in elementary ops: a LayerNorm below opset 17 is fused back into one node, constant subgraphs are
computed once, and neither reaches what it must not (a near-miss pattern, an oversized constant)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from spikeconv.errors import UnsupportedLayerError
from spikeconv.ingest import ingest_onnx
from spikeconv.ingest.onnx.layer_norm import fuse_layer_norms
from spikeconv.ingest.onnx.tidy import FOLD_LIMIT, tidy_model
from spikeconv.ingest.transformer import OPERATORS_KEY

FEATURES = 6


def _written_out_layer_norm(opset: int = 13, *, leak_mean: bool = False, square: str = "Pow") -> onnx.ModelProto:
    """x [N, 4, F] -> Gemm-free MatMul -> LayerNorm written out (ReduceMean, Sub, Pow, ..., Mul γ, Add β) -> MatMul."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(FEATURES, FEATURES)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(size=(FEATURES, 3)).astype(np.float32), "w2"),
             numpy_helper.from_array(np.array(2.0, np.float32), "two"), numpy_helper.from_array(np.array(1e-5, np.float32), "eps"),
             numpy_helper.from_array(rng.normal(size=FEATURES).astype(np.float32), "gamma"),
             numpy_helper.from_array(rng.normal(size=FEATURES).astype(np.float32), "beta")]  # fmt: skip
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
             helper.make_node("ReduceMean", ["h"], ["mean"], name="ln/mean", axes=[-1]),
             helper.make_node("Sub", ["h", "mean"], ["d"], name="ln/sub"),
             helper.make_node(square, ["d", "two" if square == "Pow" else "d"], ["sq"], name="ln/pow"),
             helper.make_node("ReduceMean", ["sq"], ["var"], name="ln/var", axes=[-1]),
             helper.make_node("Add", ["var", "eps"], ["ve"], name="ln/add"),
             helper.make_node("Sqrt", ["ve"], ["sd"], name="ln/sqrt"),
             helper.make_node("Div", ["d", "sd"], ["n"], name="ln/div"),
             helper.make_node("Mul", ["n", "gamma"], ["g"], name="ln/mul"),
             helper.make_node("Add", ["g", "beta"], ["y"], name="ln/add_beta"),
             helper.make_node("MatMul", ["y", "w2"], ["out"], name="fc2")]  # fmt: skip
    outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", 4, 3])]
    if leak_mean:  # the mean is read elsewhere too: not a LayerNorm any more
        outputs.append(helper.make_tensor_value_info("mean", TensorProto.FLOAT, ["n", 4, 1]))
    graph = helper.make_graph(nodes, "ln", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, FEATURES])], outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("square", ["Pow", "Mul"])  # Pow(d, 2) from torch; Mul(d, d) from other writers
def test_a_written_out_layer_norm_is_one_layer_norm_that_computes_the_same(square):
    model = _written_out_layer_norm(square=square)
    fused = fuse_layer_norms(model)
    assert [n.op_type for n in fused.graph.node] == ["MatMul", "LayerNormalization", "MatMul"]
    assert fused.opset_import[0].version == 17
    gm = ingest_onnx(model)
    x = torch.randn(5, 4, FEATURES)
    w = {t.name: torch.tensor(numpy_helper.to_array(t)) for t in model.graph.initializer}
    expected = torch.nn.functional.layer_norm(x @ w["w1"], (FEATURES,), w["gamma"], w["beta"], 1e-5) @ w["w2"]
    with torch.no_grad():
        torch.testing.assert_close(gm(x), expected, rtol=1e-4, atol=1e-5)
    assert list(gm.meta[OPERATORS_KEY].values()) == ["layer_norm"]


def test_a_near_miss_is_left_alone_and_refused_naming_its_nodes():
    model = _written_out_layer_norm(leak_mean=True)
    assert fuse_layer_norms(model) is model
    with pytest.raises(UnsupportedLayerError, match=r"ln/pow \(Pow"):
        ingest_onnx(model)


def test_constant_nodes_are_computed_once_but_not_past_the_size_limit():
    side = int(np.sqrt(FOLD_LIMIT)) + 1
    inits = [numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "w"),
             numpy_helper.from_array(np.zeros((side, 1), np.float32), "column"),
             numpy_helper.from_array(np.zeros((1, side), np.float32), "row")]  # fmt: skip
    nodes = [helper.make_node("Transpose", ["w"], ["wt"], name="t", perm=[1, 0]),
             helper.make_node("MatMul", ["x", "wt"], ["y"], name="mm"),
             helper.make_node("Add", ["column", "row"], ["bomb"], name="bomb")]  # fmt: skip
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], inits)  # fmt: skip
    tidy = tidy_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert [n.name for n in tidy.graph.node] == ["mm", "bomb"]  # the transpose is an initializer now; the outer sum is not
    folded = next(t for t in tidy.graph.initializer if t.name == "wt")
    np.testing.assert_array_equal(numpy_helper.to_array(folded), np.arange(6, dtype=np.float32).reshape(2, 3).T)


def test_a_constant_node_the_reference_cannot_compute_is_kept_for_the_scan():
    inits = [numpy_helper.from_array(np.zeros((2, 3), np.float32), "w"), numpy_helper.from_array(np.array(7, np.int64), "i")]
    nodes = [helper.make_node("Gather", ["w", "i"], ["row"], name="out_of_range"),
             helper.make_node("Add", ["x", "row"], ["y"], name="add")]  # fmt: skip
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], inits)  # fmt: skip
    tidy = tidy_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert [n.name for n in tidy.graph.node] == ["out_of_range", "add"]
