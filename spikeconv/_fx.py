"""Small torch.fx helpers shared by ingest, calibration and convert.

They hide the three spellings of "call this operation" in an FX graph (``call_module``,
``call_function``, ``call_method``) behind names that say what a pass is looking for.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import fx, nn

_RELU_FUNCTIONS = (F.relu, torch.relu, torch.relu_, F.relu_)
_RELU_METHODS = ("relu", "relu_")


def module_of(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    """Return the submodule a ``call_module`` node calls, else ``None``."""
    if node.op != "call_module":
        return None
    return gm.get_submodule(str(node.target))


def is_relu_call(gm: fx.GraphModule, node: fx.Node) -> bool:
    """True for every spelling of a plain ReLU: module, function, method, in-place or not."""
    if node.op == "call_module":
        return type(module_of(gm, node)) is nn.ReLU
    if node.op == "call_function":
        return node.target in _RELU_FUNCTIONS
    if node.op == "call_method":
        return node.target in _RELU_METHODS
    return False


def call_sites(gm: fx.GraphModule, module_type: type[nn.Module]) -> Iterator[fx.Node]:
    """Yield the ``call_module`` nodes whose module is exactly ``module_type``, in graph order."""
    for node in gm.graph.nodes:
        if node.op == "call_module" and type(module_of(gm, node)) is module_type:
            yield node


def safe_name(text: str) -> str:
    """Turn a node or module path into a valid, readable attribute name (``layer1.0`` -> ``layer1_0``)."""
    name = re.sub(r"\W", "_", text).strip("_") or "node"
    return f"_{name}" if name[0].isdigit() else name


def add_submodule(gm: fx.GraphModule, preferred: str, module: nn.Module) -> str:
    """Attach ``module`` at a top-level name not yet taken (``preferred``, ``preferred_1``, ...)."""
    base = safe_name(preferred)
    name, suffix = base, 1
    while hasattr(gm, name):
        name = f"{base}_{suffix}"
        suffix += 1
    gm.add_submodule(name, module)
    return name


def tensor_inputs(node: fx.Node) -> list[fx.Node]:
    """The nodes feeding ``node`` (positional and keyword arguments, nested containers too)."""
    return list(node.all_input_nodes)
