"""ONNX ingest: an ONNX file -> the canonical ANN graph, via onnx2torch and a per-op registry."""

from spikeconv.ingest.onnx import canonicalizers as _canonicalizers  # noqa: F401  (fills the registry)
from spikeconv.ingest.onnx import canonicalizers_transformer as _canonicalizers_transformer  # noqa: F401  (fills the registry)
from spikeconv.ingest.onnx.ingest import ingest_onnx
from spikeconv.ingest.onnx.registry import OnnxNodeSite, OnnxOp, available_onnx_ops, onnx_op, register_onnx_op
from spikeconv.ingest.onnx.scan import find_unsupported_onnx
from spikeconv.ingest.onnx.verify import CHECK_KEY

__all__ = [
    "CHECK_KEY",
    "OnnxNodeSite",
    "OnnxOp",
    "available_onnx_ops",
    "find_unsupported_onnx",
    "ingest_onnx",
    "onnx_op",
    "register_onnx_op",
]
