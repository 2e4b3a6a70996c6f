"""Ingest: trained ANNs (torch modules; ONNX files) -> one canonical fx graph form."""

from spikeconv.ingest.canonical import CAPS_KEY, SITES_KEY, STAGE_KEY, activation_sites
from spikeconv.ingest.onnx import CHECK_KEY, available_onnx_ops, find_unsupported_onnx, ingest_onnx, register_onnx_op
from spikeconv.ingest.support import (
    SUPPORTED_FUNCTIONS,
    SUPPORTED_METHODS,
    SUPPORTED_MODULES,
    UnsupportedNode,
    check_supported,
    find_unsupported,
)
from spikeconv.ingest.support_table import SupportedOp, supported_ops_markdown, supported_ops_table
from spikeconv.ingest.torch_ingest import ingest_module

__all__ = [
    "CAPS_KEY",
    "CHECK_KEY",
    "SITES_KEY",
    "STAGE_KEY",
    "SUPPORTED_FUNCTIONS",
    "SUPPORTED_METHODS",
    "SUPPORTED_MODULES",
    "SupportedOp",
    "UnsupportedNode",
    "activation_sites",
    "available_onnx_ops",
    "check_supported",
    "find_unsupported",
    "find_unsupported_onnx",
    "ingest_module",
    "ingest_onnx",
    "register_onnx_op",
    "supported_ops_markdown",
    "supported_ops_table",
]
