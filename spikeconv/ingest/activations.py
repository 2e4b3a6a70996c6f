"""Recognise activation call sites: plain ReLUs and ReLUs with an upper cap (ReLU6, clamp(0, c)).

A capped ReLU ``min(max(x, 0), c)`` is still a rate-codable activation: an IF neuron's firing
rate times its threshold is already bounded by the threshold, so the cap only has to bound the
threshold (``θ ≤ c``) for the SNN to reproduce the clipped activation (QCFS, Bu et al. ICLR 2022,
clips at the threshold λ in the same way). Every spelling below is one site:

- plain: ``nn.ReLU``, ``F.relu``, ``torch.relu``, ``x.relu()``, in-place variants (``_fx.is_relu_call``),
  ``torch.clamp(x, min=0)``, ``nn.Hardtanh(0, inf)``;
- capped at ``c > 0``: ``nn.ReLU6`` / ``F.relu6`` (c = 6), ``nn.Hardtanh(0, c)`` /
  ``F.hardtanh(x, 0, c)``, ``torch.clamp(x, 0, c)`` / ``torch.clip`` / ``x.clamp(0, c)``.

A lower bound other than 0 (e.g. ``nn.Hardtanh()`` = clamp(-1, 1)) is not a site and not supported.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from spikeconv._fx import is_relu_call, module_of

_CLAMP_FUNCTIONS = (torch.clamp, torch.clip, torch.clamp_, torch.clip_)
_CLAMP_METHODS = ("clamp", "clip", "clamp_", "clip_")
_HARDTANH_FUNCTIONS = (F.hardtanh, F.hardtanh_)
_RELU6_FUNCTIONS = (F.relu6,)
_INPLACE_POSITION = {F.relu: 1, F.relu6: 1, F.hardtanh: 3}  # index of the positional ``inplace`` argument


def _argument(node: fx.Node, index: int, name: str, default: Any) -> Any:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _cap_from_bounds(low: Any, high: Any) -> float | None:
    """``inf`` for clamp(0, None/inf), ``c`` for clamp(0, c > 0), else ``None`` (not a site)."""
    if isinstance(low, (fx.Node, torch.Tensor)) or isinstance(high, (fx.Node, torch.Tensor)):
        return None  # bounds computed in the graph: not a fixed activation
    if low is None or float(low) != 0.0:
        return None
    if high is None or float(high) == math.inf:
        return math.inf
    return float(high) if float(high) > 0.0 else None


def is_declared_activation(module: nn.Module | None) -> bool:
    """A module that declares itself a convertible activation (``spikeconv_activation`` class
    attribute and a ``learned_threshold()`` method), e.g. :class:`spikeconv.neurons.QCFS`. It stays
    in the ANN graph unchanged (its quantized output is the ANN's), and its learned clipping level
    is the site's cap and, with the ``learned`` threshold rule, the neuron's threshold."""
    return module is not None and bool(getattr(type(module), "spikeconv_activation", None)) and hasattr(module, "learned_threshold")


def _module_cap(module: nn.Module | None) -> float | None:
    if is_declared_activation(module):
        return float(module.learned_threshold())
    if type(module) is nn.ReLU:
        return math.inf
    if isinstance(module, nn.Hardtanh):  # nn.ReLU6 is a Hardtanh(0, 6)
        return _cap_from_bounds(module.min_val, module.max_val)
    return None


def site_cap(gm: fx.GraphModule, node: fx.Node) -> float | None:
    """The cap of the activation site ``node``: ``math.inf`` for a plain ReLU, ``c`` for a ReLU
    capped at ``c``, ``None`` when ``node`` is not an activation site."""
    if node.op == "call_module":
        return _module_cap(module_of(gm, node))
    if is_relu_call(gm, node):
        return math.inf
    if node.op == "call_function" and node.target in _RELU6_FUNCTIONS:
        return 6.0
    if node.op == "call_function" and node.target in _HARDTANH_FUNCTIONS:
        return _cap_from_bounds(_argument(node, 1, "min_val", -1.0), _argument(node, 2, "max_val", 1.0))
    if (node.op == "call_function" and node.target in _CLAMP_FUNCTIONS) or (
        node.op == "call_method" and node.target in _CLAMP_METHODS
    ):
        return _cap_from_bounds(_argument(node, 1, "min", None), _argument(node, 2, "max", None))
    return None


def is_activation_site(gm: fx.GraphModule, node: fx.Node) -> bool:
    """True for every spelling of a plain or capped ReLU (see the module docstring)."""
    return site_cap(gm, node) is not None


def is_inplace(gm: fx.GraphModule, node: fx.Node) -> bool:
    """Whether the activation ``node`` overwrites its input (``inplace=True``, ``relu_``, ``clamp_``)."""
    if node.op == "call_module":
        return bool(getattr(module_of(gm, node), "inplace", False))
    name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
    if str(name).endswith("_"):
        return True
    position = _INPLACE_POSITION.get(node.target) if node.op == "call_function" else None
    return bool(_argument(node, position, "inplace", False) if position else node.kwargs.get("inplace", False))


def site_module(cap: float) -> nn.Module:
    """The canonical module of a site: ``nn.ReLU()``, or ``nn.Hardtanh(0, cap)`` for a finite cap."""
    return nn.ReLU() if cap == math.inf else nn.Hardtanh(0.0, cap)
