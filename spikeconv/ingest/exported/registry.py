"""The ATen op registry: which ops of a ``torch.export`` graph ingest accepts, and how each becomes standard torch.

An exported program's module is already an fx graph, but of ATen operators
(``torch.ops.aten.conv2d.default``) with weights as ``get_attr`` nodes. One small named function
per ATen op rewrites its node in place into the standard torch form that torch and ONNX models
also end in (``nn.Conv2d``, ``nn.BatchNorm2d``, ``torch.relu``, ``operator.add``, ...), as
:mod:`spikeconv.ingest.onnx.registry` does for ONNX ops. The key is the op's name without the
``aten.`` namespace and overload (``conv2d`` for ``aten.conv2d.default``).

An op is supported exactly when it is registered here, so the pre-conversion scan, the docs and the
per-op contract tests all read this one dict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from torch import fx

from spikeconv.errors import ConfigError


class Varying(Enum):
    """Which arguments of an op may carry data (the time-varying values of the SNN)."""

    FIRST = "first"  # affine in its first argument; every other argument must be a constant
    ONE = "one"  # exactly one argument, in any position (products with a constant)
    ANY = "any"  # joins: sums, differences, concatenation


@dataclass(frozen=True)
class AtenSite:
    """What a rewriter sees: the graph module and the node of one ATen call."""

    gm: fx.GraphModule
    node: fx.Node


Rewriter = Callable[[AtenSite], None]
Checker = Callable[[fx.Node], str | None]


@dataclass(frozen=True)
class AtenOp:
    """A registered ATen op.

    Attributes:
        name: ATen op name without namespace and overload (``"conv2d"``).
        rewrite: Rewrites the node in place into standard torch.
        note: What the converter makes of it (one line, used in docs/own_model.md).
        varying: Which arguments may carry data.
        check: Extra condition; returns why the node cannot be converted, or ``None``.
    """

    name: str
    rewrite: Rewriter
    note: str
    varying: Varying = Varying.FIRST
    check: Checker | None = None


_ATEN_OPS: dict[str, AtenOp] = {}


def register_aten_op(*names: str, note: str, varying: Varying = Varying.FIRST,
                     check: Checker | None = None) -> Callable[[Rewriter], Rewriter]:  # fmt: skip
    """Decorator: register ``fn`` as the rewriter of each ATen op in ``names``.

    Raises:
        ConfigError: if a name is already registered.
    """

    def decorate(fn: Rewriter) -> Rewriter:
        for name in names:
            if name in _ATEN_OPS:
                raise ConfigError(f"ATen op {name!r} is already registered (by {_ATEN_OPS[name].rewrite.__name__})")
            _ATEN_OPS[name] = AtenOp(name, fn, note, varying, check)
        return fn

    return decorate


def aten_op(name: str) -> AtenOp | None:
    """The registration of ``name``, or ``None`` if it is not supported."""
    return _ATEN_OPS.get(name)


def available_aten_ops() -> tuple[str, ...]:
    """Every supported ATen op name, sorted."""
    return tuple(sorted(_ATEN_OPS))


def aten_name(target: object) -> str | None:
    """``"conv2d"`` for ``torch.ops.aten.conv2d.default``; ``None`` for anything not in the ``aten`` namespace."""
    packet = getattr(target, "overloadpacket", None)
    if packet is None or getattr(target, "namespace", None) != "aten":
        return None
    return packet.__name__
