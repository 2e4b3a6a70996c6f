"""docs/supported_layers.md shows exactly the support table the code uses."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from spikeconv.ingest import SUPPORTED_MODULES, available_onnx_ops, supported_ops_markdown, supported_ops_table

DOC = Path(__file__).resolve().parents[2] / "docs" / "supported_layers.md"


def test_doc_table_is_generated_from_the_code():
    text = DOC.read_text()
    begin, end = "<!-- supported-ops-table:begin -->\n", "<!-- supported-ops-table:end -->"
    table = text[text.index(begin) + len(begin) : text.index(end)]
    assert table == supported_ops_markdown(), "regenerate docs/supported_layers.md (see its header)"


def test_table_covers_modules_functions_methods_and_onnx_ops():
    rows = supported_ops_table()
    kinds = {row.kind for row in rows}
    assert kinds == {"torch module", "torch function", "tensor method", "ONNX op"}
    assert {row.op for row in rows if row.kind == "ONNX op"} == set(available_onnx_ops())
    assert {row.op for row in rows if row.kind == "torch module"} == {f"nn.{t.__name__}" for t in SUPPORTED_MODULES}
    ops = {row.op: row.conversion for row in rows}
    assert "spiking max-pool" in ops["nn.MaxPool2d"] and "spiking max-pool" in ops["MaxPool"]
    assert ops["Clip"].startswith("min 0") and "torch.cat" in ops["Concat"]
    assert nn.MaxPool1d not in SUPPORTED_MODULES
    assert all(row.conversion and "|" not in row.conversion for row in rows)
