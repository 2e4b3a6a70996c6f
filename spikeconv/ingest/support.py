"""Which graph nodes spikeconv can convert, and one error that lists all the others.

A converted network is correct when every operation between neurons is affine in its
time-varying input (convolution, linear, average pooling, BatchNorm in eval mode, reshapes,
sums, concatenation, scaling by constants): averaging over time commutes with such operations,
so spike rates propagate exactly as ANN activations do. Anything else (other nonlinearities,
products of two activations, normalisation by data statistics) has no rate equivalent.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from spikeconv._fx import is_relu_call, module_of
from spikeconv.errors import UnsupportedLayerError

SUPPORTED_MODULES: dict[type[nn.Module], str] = {
    nn.Conv1d: "affine: runs on spike inputs",
    nn.Conv2d: "affine: runs on spike inputs; BatchNorm after it is folded in",
    nn.Linear: "affine: runs on spike inputs; BatchNorm after it is folded in",
    nn.BatchNorm1d: "folded into the preceding conv/linear, else kept as a per-channel affine map",
    nn.BatchNorm2d: "folded into the preceding conv/linear, else kept as a per-channel affine map",
    nn.ReLU: "replaced by an IF neuron with a calibrated threshold",
    nn.AvgPool1d: "linear: averages spikes",
    nn.AvgPool2d: "linear: averages spikes",
    nn.AdaptiveAvgPool1d: "linear: averages spikes",
    nn.AdaptiveAvgPool2d: "linear: averages spikes",
    nn.Flatten: "reshape",
    nn.Unflatten: "reshape",
    nn.Identity: "removed",
    nn.Dropout: "removed (inference)",
    nn.Dropout1d: "removed (inference)",
    nn.Dropout2d: "removed (inference)",
}

_RESHAPES = {
    torch.flatten,
    torch.reshape,
    torch.squeeze,
    torch.unsqueeze,
    torch.permute,
    torch.transpose,
    torch.cat,
    torch.concat,
    torch.mean,
    torch.sum,
    F.avg_pool1d,
    F.avg_pool2d,
    F.adaptive_avg_pool1d,
    F.adaptive_avg_pool2d,
    F.dropout,
    F.dropout1d,
    F.dropout2d,
    getattr,
    operator.getitem,
}
_SUMS = {operator.add, operator.sub, torch.add, torch.sub, operator.neg, torch.neg}
_SCALINGS = {operator.mul, torch.mul, operator.truediv, torch.div}
_METHODS = {
    "view", "reshape", "flatten", "size", "contiguous", "squeeze", "unsqueeze", "permute",
    "transpose", "mean", "sum", "add", "sub", "neg", "mul", "div", "relu", "relu_", "dim",
}  # fmt: skip
_SCALING_METHODS = {"mul", "div"}

_HINTS: dict[str, str] = {
    "MaxPool": "max pooling has no rate equivalent yet; use nn.AvgPool2d in the ANN",
    "Sigmoid": "non-ReLU activation; retrain the ANN with ReLU",
    "Tanh": "non-ReLU activation; retrain the ANN with ReLU",
    "GELU": "non-ReLU activation; retrain the ANN with ReLU",
    "SiLU": "non-ReLU activation; retrain the ANN with ReLU",
    "LeakyReLU": "negative slope cannot be emitted by IF neurons; retrain with ReLU",
    "Softmax": "remove the softmax: the SNN classifies by the argmax of its readout",
    "LayerNorm": "normalises by per-sample statistics, which spikes cannot compute",
    "Attention": "products of activations have no rate equivalent",
}


@dataclass(frozen=True)
class UnsupportedNode:
    """One node that cannot be converted, with a hint saying what to do."""

    name: str
    op: str
    hint: str

    def describe(self) -> str:
        return f"{self.name} ({self.op}: {self.hint})"


def _data_dependent(gm: fx.GraphModule) -> set[fx.Node]:
    """Nodes whose value depends on the model input (as opposed to constants and attributes)."""
    dependent: set[fx.Node] = set()
    for node in gm.graph.nodes:
        if node.op == "placeholder" or any(n in dependent for n in node.all_input_nodes):
            dependent.add(node)
    return dependent


def _op_label(gm: fx.GraphModule, node: fx.Node) -> str:
    if node.op == "call_module":
        module = module_of(gm, node)
        return f"{type(module).__module__}.{type(module).__name__}"
    if node.op == "call_function":
        return getattr(node.target, "__name__", str(node.target))
    return f".{node.target}()"


def _hint_for(label: str) -> str:
    for key, hint in _HINTS.items():
        if key.lower() in label.lower():
            return hint
    return "no spiking equivalent; see docs/supported_layers.md"


def _is_supported(gm: fx.GraphModule, node: fx.Node, dependent: set[fx.Node]) -> bool:
    if node.op in ("placeholder", "output", "get_attr") or is_relu_call(gm, node):
        return True
    if node.op == "call_module":
        return type(module_of(gm, node)) in SUPPORTED_MODULES
    varying = [n for n in node.all_input_nodes if n in dependent]
    if node.op == "call_function":
        if node.target in _RESHAPES or node.target in _SUMS:
            return True
        if node.target in _SCALINGS:
            divisor_ok = node.target not in (operator.truediv, torch.div) or (
                not isinstance(node.args[1], fx.Node) or node.args[1] not in dependent
            )
            return len(varying) <= 1 and divisor_ok
        return False
    if node.op == "call_method":
        if node.target in _SCALING_METHODS:
            return len(varying) <= 1 and node.args[0] in dependent
        return node.target in _METHODS
    return False


def find_unsupported(gm: fx.GraphModule) -> list[UnsupportedNode]:
    """Every node of ``gm`` that conversion cannot handle, in graph order."""
    dependent = _data_dependent(gm)
    found = []
    for node in gm.graph.nodes:
        if node in dependent and not _is_supported(gm, node, dependent):
            label = _op_label(gm, node)
            found.append(UnsupportedNode(node.name, label, _hint_for(label)))
    return found


def check_supported(gm: fx.GraphModule) -> None:
    """Raise one :class:`UnsupportedLayerError` listing every unsupported node, or return."""
    found = find_unsupported(gm)
    if found:
        listed = "; ".join(item.describe() for item in found)
        raise UnsupportedLayerError(
            f"cannot convert {len(found)} node(s): {listed}"
        )
