"""The support table: every op spikeconv converts, where it comes from, and what conversion does.

``docs/supported_layers.md`` is generated from :func:`supported_ops_markdown` (a test keeps the
two identical), so the table cannot drift from the code that decides support.
"""

from __future__ import annotations

from typing import NamedTuple

from spikeconv.ingest.onnx import available_onnx_ops, onnx_op
from spikeconv.ingest.support import SUPPORTED_FUNCTIONS, SUPPORTED_METHODS, SUPPORTED_MODULES

_SITE_NOTE = "activation site: an IF neuron with a calibrated threshold"
_CAPPED_NOTE = "capped activation site nn.Hardtanh(0, c): an IF neuron whose threshold is at most c"
_ACTIVATION_FUNCTIONS = (
    ("F.relu / torch.relu (in place too)", _SITE_NOTE),
    ("torch.clamp / torch.clip (min=0, no max)", _SITE_NOTE),
    ("F.relu6", "capped activation site nn.Hardtanh(0, 6): an IF neuron whose threshold is at most 6"),
    ("F.hardtanh (min_val=0, max_val=c)", _CAPPED_NOTE),
    ("torch.clamp / torch.clip (min=0, max=c)", _CAPPED_NOTE),
)
_ACTIVATION_METHODS = (
    (".relu() / .relu_()", _SITE_NOTE),
    (".clamp(0, c) / .clip(0, c)", _CAPPED_NOTE),
)
_PREFIXES = {"torch.nn.functional": "F", "torch._C._nn": "F", "_operator": "operator", "builtins": "", "torch": "torch"}


class SupportedOp(NamedTuple):
    """One row of the support table."""

    op: str
    kind: str
    conversion: str


def _function_name(fn: object) -> str:
    module = getattr(fn, "__module__", "") or ""
    prefix = _PREFIXES.get(module, module)
    return f"{prefix}.{fn.__name__}" if prefix else fn.__name__


def supported_ops_table() -> list[SupportedOp]:
    """Every supported torch module, function, tensor method and ONNX op type, with what conversion does.

    Rows are ``(op, kind, conversion)``; ``kind`` is ``"torch module"``, ``"torch function"``,
    ``"tensor method"`` or ``"ONNX op"``. Anything not listed is reported by
    :func:`~spikeconv.ingest.check_supported` (torch) or the ONNX scan, with a hint.
    """
    rows = [SupportedOp(f"nn.{t.__name__}", "torch module", note) for t, note in SUPPORTED_MODULES.items()]
    rows += [SupportedOp(name, "torch function", note) for name, note in _ACTIVATION_FUNCTIONS]
    functions: dict[str, str] = {}
    for fn, note in SUPPORTED_FUNCTIONS.items():
        functions.setdefault(_function_name(fn), note)
    rows += [SupportedOp(name, "torch function", note) for name, note in functions.items()]
    rows += [SupportedOp(name, "tensor method", note) for name, note in _ACTIVATION_METHODS]
    rows += [SupportedOp(f".{name}()", "tensor method", note) for name, note in SUPPORTED_METHODS.items()]
    rows += [SupportedOp(op, "ONNX op", onnx_op(op).note) for op in available_onnx_ops()]
    return rows


def supported_ops_markdown() -> str:
    """The support table as a Markdown table (the body of docs/supported_layers.md)."""
    lines = ["| op | kind | what the converter does |", "|---|---|---|"]
    lines += [f"| `{row.op}` | {row.kind} | {row.conversion} |" for row in supported_ops_table()]
    return "\n".join(lines) + "\n"
