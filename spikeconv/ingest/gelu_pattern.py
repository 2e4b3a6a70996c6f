"""GELU written out, ``0.5·x·(1 + erf(x/√2))``, recognised and given back its ``nn.GELU`` module.

Exporters below ONNX opset 20 (and some hand-written models) spell GELU with ``erf``; spikeconv's
ONNX preparation spells opset 20's ``Gelu`` the same way, because onnx2torch cannot read it. One
module per GELU keeps conversion to one spike-equivalent operator (and one price) per activation,
as for a torch ``nn.GELU``. Accepted orders of the factors, with ``c = √2`` (or ``x·(1/√2)``)::

    mul(mul(x, add(erf(x / c), 1)), 0.5)      mul(mul(x, 0.5), add(erf(x / c), 1))      mul(mul(add(...), 0.5), x)

``erf`` anywhere else has no spiking form and is refused by the support check.
"""

from __future__ import annotations

import math
import operator

import torch
from torch import fx, nn

from spikeconv._fx import add_submodule

__all__ = ["collapse_gelu_", "gelu_pattern"]

ERF_FUNCTIONS = (torch.erf, torch.special.erf)
_MUL = (operator.mul, torch.mul)
_ADD = (operator.add, torch.add)
_DIV = (operator.truediv, torch.div)


def _value(gm: fx.GraphModule, arg: object) -> float | None:
    if isinstance(arg, (int, float)) and not isinstance(arg, bool):
        return float(arg)
    if isinstance(arg, fx.Node) and arg.op == "get_attr":
        value = gm
        for part in str(arg.target).split("."):
            value = getattr(value, part, None)
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            return float(value.reshape(-1)[0])
    return None


def _close(value: float | None, target: float) -> bool:
    return value is not None and abs(value - target) <= 1e-4 * abs(target)


def _other(node: fx.Node, known: object) -> object:
    """The operand of a binary ``node`` that is not ``known``."""
    a, b = node.args[:2]
    return b if a is known else a if b is known else None


def _only_user(node: fx.Node, targets: tuple) -> fx.Node | None:
    users = list(node.users)
    return users[0] if len(users) == 1 and users[0].op == "call_function" and users[0].target in targets else None


def gelu_pattern(gm: fx.GraphModule, erf: fx.Node) -> tuple[fx.Node, fx.Node] | None:
    """``(x, last node)`` when ``erf`` is the erf of an exact GELU of ``x`` (see the module docstring), else None."""
    scaled = erf.args[0] if erf.args else None
    if not isinstance(scaled, fx.Node) or scaled.op != "call_function":
        return None
    x = scaled.args[0]
    if not ((scaled.target in _DIV and _close(_value(gm, scaled.args[1]), math.sqrt(2.0)))
            or (scaled.target in _MUL and _close(_value(gm, scaled.args[1]), math.sqrt(0.5)))):  # fmt: skip
        return None
    plus = _only_user(erf, _ADD)
    if plus is None or not _close(_value(gm, _other(plus, erf)), 1.0):
        return None
    first = _only_user(plus, _MUL)
    if first is None:
        return None
    factor = _other(first, plus)
    if factor is x:
        last = _only_user(first, _MUL)
        return (x, last) if last is not None and _close(_value(gm, _other(last, first)), 0.5) else None
    if isinstance(factor, fx.Node) and factor.op == "call_function" and factor.target in _MUL and x in factor.args[:2]:
        return (x, first) if _close(_value(gm, _other(factor, x)), 0.5) and len(factor.users) == 1 else None
    if _close(_value(gm, factor), 0.5):
        last = _only_user(first, _MUL)
        return (x, last) if last is not None and _other(last, first) is x else None
    return None


def collapse_gelu_(gm: fx.GraphModule) -> int:
    """Replace every written-out exact GELU by a call of its own ``nn.GELU`` (in place). Returns how many."""
    count = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target not in ERF_FUNCTIONS or node._erased:
            continue
        found = gelu_pattern(gm, node)
        if found is None:
            continue
        x, last = found
        with gm.graph.inserting_before(last):
            gelu = gm.graph.call_module(add_submodule(gm, f"{last.name}_gelu", nn.GELU()), (x,))
        last.replace_all_uses_with(gelu)
        count += 1
    if count:
        gm.graph.eliminate_dead_code()
        gm.recompile()
    return count
