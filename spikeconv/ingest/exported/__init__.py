"""``torch.export`` ingest: a saved ``ExportedProgram`` (``.pt2``) -> the canonical ANN graph, via a per-op registry."""

from spikeconv.ingest.exported.ingest import EXPORT_CHECK_KEY, find_unsupported_exported, fold_constants_, ingest_exported
from spikeconv.ingest.exported.load import is_exported_program, load_exported
from spikeconv.ingest.exported.registry import AtenOp, AtenSite, Varying, aten_op, available_aten_ops, register_aten_op

__all__ = [
    "EXPORT_CHECK_KEY",
    "AtenOp",
    "AtenSite",
    "Varying",
    "available_aten_ops",
    "aten_op",
    "find_unsupported_exported",
    "fold_constants_",
    "ingest_exported",
    "is_exported_program",
    "load_exported",
    "register_aten_op",
]
