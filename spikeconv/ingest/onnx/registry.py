"""The ONNX op registry: which op types ingest accepts, and how each becomes standard torch.

onnx2torch turns every ONNX node into a torch module, often one of its own types
(``OnnxBinaryMathOperation``, ``OnnxConcat``, ``OnnxClip``, ...). One small named function per
ONNX op type rewrites that node into the standard torch form the rest of spikeconv knows
(``operator.add``, ``torch.cat``, ``nn.Hardtanh(0, c)``, ...), as onnx2torch's own
``node_converters/registry.py`` does one step earlier. The key is the op type alone: opset
differences are absorbed by onnx2torch (and by lowering newer models to opset 17), and the
torch modules it returns do not depend on the opset.

An op type is supported exactly when it is registered here, so the pre-conversion scan, the docs
table and the per-op contract tests all read this one dict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
from torch import fx, nn

from spikeconv.errors import ConfigError


@dataclass(frozen=True)
class OnnxNodeSite:
    """What a canonicaliser sees: the graph, the node onnx2torch made, its module, the ONNX op type."""

    gm: fx.GraphModule
    node: fx.Node
    module: nn.Module | None
    op_type: str


Canonicalizer = Callable[[OnnxNodeSite], None]
Checker = Callable[[onnx.NodeProto, dict[str, np.ndarray]], str | None]
"""``(node, constant initializers) -> why it cannot be converted, or None``: an op's extra condition for the scan."""


@dataclass(frozen=True)
class OnnxOp:
    """A registered ONNX op type.

    Attributes:
        op_type: ONNX op type (``"Conv"``).
        canonicalize: Rewrites the onnx2torch node in place into standard torch.
        note: What the converter makes of it (one line, used in docs/supported_layers.md).
        joins: True for ops that may combine several time-varying inputs (Add, Sub, Concat, and the products Mul
            and MatMul); every other op must be affine in its one time-varying input, its first.
        check: Extra condition the scan applies (e.g. a transpose must keep the batch first), or None.
    """

    op_type: str
    canonicalize: Canonicalizer
    note: str
    joins: bool = False
    check: Checker | None = None


_ONNX_OPS: dict[str, OnnxOp] = {}


def register_onnx_op(op_type: str, *, note: str, joins: bool = False,
                     check: Checker | None = None) -> Callable[[Canonicalizer], Canonicalizer]:  # fmt: skip
    """Decorator: register ``fn`` as the canonicaliser of ``op_type``.

    Raises:
        ConfigError: if ``op_type`` is already registered.
    """

    def decorate(fn: Canonicalizer) -> Canonicalizer:
        if op_type in _ONNX_OPS:
            raise ConfigError(f"ONNX op {op_type!r} is already registered (by {_ONNX_OPS[op_type].canonicalize.__name__})")
        _ONNX_OPS[op_type] = OnnxOp(op_type, fn, note, joins, check)
        return fn

    return decorate


def onnx_op(op_type: str) -> OnnxOp | None:
    """The registration of ``op_type``, or ``None`` if it is not supported."""
    return _ONNX_OPS.get(op_type)


def available_onnx_ops() -> tuple[str, ...]:
    """Every supported ONNX op type, sorted."""
    return tuple(sorted(_ONNX_OPS))
