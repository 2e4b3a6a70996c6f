"""Ingest: trained ANNs (torch modules; ONNX files) -> one canonical fx graph form."""

from spikeconv.ingest.support import (
    SUPPORTED_MODULES,
    UnsupportedNode,
    check_supported,
    find_unsupported,
)
from spikeconv.ingest.torch_ingest import STAGE_KEY, activation_sites, ingest_module

__all__ = [
    "STAGE_KEY",
    "SUPPORTED_MODULES",
    "UnsupportedNode",
    "activation_sites",
    "check_supported",
    "find_unsupported",
    "ingest_module",
]
