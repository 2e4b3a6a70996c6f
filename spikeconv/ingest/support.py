"""Which graph nodes spikeconv can convert, and one error that lists all the others.

A converted network is correct when every operation between neurons is affine in its
time-varying input (convolution, linear, average pooling, BatchNorm in eval mode, reshapes,
sums, concatenation, scaling by constants): averaging over time commutes with such operations,
so spike rates propagate exactly as ANN activations do. Max pooling is the one nonlinearity
besides the activations that conversion handles itself (a spiking max-pool or an explicit
average-pool replacement, see ``spikeconv.convert``). Anything else (other nonlinearities,
products of two activations, normalisation by data statistics) has no rate equivalent.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from spikeconv._fx import module_of
from spikeconv.errors import UnsupportedLayerError
from spikeconv.ingest.activations import is_activation_site
from spikeconv.ingest.shape_values import shape_values
from spikeconv.ingest.transformer_support import (
    TRANSFORMER_FUNCTIONS,
    TRANSFORMER_METHODS,
    TRANSFORMER_MODULES,
    transformer_problem,
)

_MAXPOOL_NOTE = "max pooling: convert makes it a spiking max-pool, or an explicit average pool"
SUPPORTED_MODULES: dict[type[nn.Module], str] = {
    nn.Conv1d: "affine: runs on spike inputs (any stride, padding, dilation, groups)",
    nn.Conv2d: "affine: runs on spike inputs (any stride, padding, dilation, groups); BatchNorm after it is folded in",
    nn.Linear: "affine: runs on spike inputs; BatchNorm after it is folded in",
    nn.BatchNorm1d: "folded into the preceding conv/linear, else kept as a per-channel affine map",
    nn.BatchNorm2d: "folded into the preceding conv/linear, else kept as a per-channel affine map",
    nn.ReLU: "activation site: replaced by an IF neuron with a calibrated threshold",
    nn.ReLU6: "capped activation site: nn.Hardtanh(0, 6), an IF neuron whose threshold is at most 6",
    nn.Hardtanh: "capped activation site when min_val == 0 (clamp(0, c)): an IF neuron whose threshold is at most c",
    nn.AvgPool1d: "linear: averages spikes",
    nn.AvgPool2d: "linear: averages spikes",
    nn.AdaptiveAvgPool1d: "linear: averages spikes",
    nn.AdaptiveAvgPool2d: "linear: averages spikes",
    nn.MaxPool2d: _MAXPOOL_NOTE,
    nn.Flatten: "reshape",
    nn.Unflatten: "reshape",
    nn.Identity: "removed",
    nn.Dropout: "removed (inference)",
    nn.Dropout1d: "removed (inference)",
    nn.Dropout2d: "removed (inference)",
    **TRANSFORMER_MODULES,  # LayerNorm, GELU, softmax, attention (ingest/transformer_support.py)
}

_RESHAPES = {
    torch.flatten: "reshape",
    torch.reshape: "reshape",
    torch.squeeze: "reshape",
    torch.unsqueeze: "reshape",
    torch.permute: "reshape",
    torch.transpose: "reshape",
    torch.cat: "concatenation",
    torch.concat: "concatenation",
    torch.mean: "linear: average",
    torch.sum: "linear: sum",
    F.avg_pool1d: "linear: averages spikes",
    F.avg_pool2d: "linear: averages spikes",
    F.adaptive_avg_pool1d: "linear: averages spikes",
    F.adaptive_avg_pool2d: "linear: averages spikes",
    F.max_pool2d: _MAXPOOL_NOTE,
    torch.max_pool2d: _MAXPOOL_NOTE,
    F.dropout: "removed (inference)",
    F.dropout1d: "removed (inference)",
    F.dropout2d: "removed (inference)",
    getattr: "attribute/shape access",
    operator.getitem: "indexing",
}
_SUMS = {
    operator.add: "residual sum", operator.sub: "difference", torch.add: "residual sum",
    torch.sub: "difference", operator.neg: "negation", torch.neg: "negation",
}  # fmt: skip
# Affine in exactly one time-varying input (the others must be constants, e.g. weights).
_SCALINGS = {
    operator.mul: "scaling by a constant", torch.mul: "scaling by a constant",
    operator.truediv: "division by a constant", torch.div: "division by a constant",
    F.linear: "affine with constant weights", F.conv1d: "affine with constant weights",
    F.conv2d: "affine with constant weights",
}  # fmt: skip
_DIVISIONS = {operator.truediv, torch.div}
_METHODS = {
    "view": "reshape", "reshape": "reshape", "flatten": "reshape", "size": "shape access",
    "dim": "shape access", "contiguous": "no-op", "squeeze": "reshape", "unsqueeze": "reshape",
    "permute": "reshape", "transpose": "reshape", "mean": "linear: average", "sum": "linear: sum",
    "add": "residual sum", "sub": "difference", "neg": "negation",
    "mul": "scaling by a constant (one varying input)", "div": "division by a constant",
}  # fmt: skip
_SCALING_METHODS = {"mul", "div"}
SUPPORTED_FUNCTIONS: dict[object, str] = {**_RESHAPES, **_SUMS, **_SCALINGS, **TRANSFORMER_FUNCTIONS}
"""Functions (``call_function`` targets) that convert, and what conversion does with them."""
SUPPORTED_METHODS: dict[str, str] = {**_METHODS, **TRANSFORMER_METHODS}
"""Tensor methods (``call_method`` targets) that convert, and what conversion does with them."""

_HINTS: dict[str, str] = {  # first match wins: specific keys before keys they contain
    "MaxPool1d": "only 2-D max pooling is converted; use nn.MaxPool2d or nn.AvgPool1d",
    "Attention": "products of activations have no rate equivalent",
    "Hardtanh": "a clamp needs lower bound 0 to be a ReLU site; use nn.ReLU6 or nn.Hardtanh(0, c)",
    "Sigmoid": "non-ReLU activation; retrain the ANN with ReLU",
    "Tanh": "non-ReLU activation; retrain the ANN with ReLU",
    "GELU": "non-ReLU activation; retrain the ANN with ReLU",
    "Erf": "part of a GELU, a non-ReLU activation; retrain the ANN with ReLU",
    "SiLU": "non-ReLU activation; retrain the ANN with ReLU",
    "Swish": "non-ReLU activation; retrain the ANN with ReLU",
    "LeakyRelu": "negative slope cannot be emitted by IF neurons; retrain with ReLU",
    "Clip": "a clamp needs lower bound 0 to be a ReLU site; use clamp(0, c)",
    "clamp": "a clamp needs lower bound 0 to be a ReLU site; use clamp(0, c)",
    "Softmax": "remove the softmax: the SNN classifies by the argmax of its readout",
    "LayerNorm": "normalises by per-sample statistics, which spikes cannot compute",
    "BatchNorm": "without running statistics it normalises by batch statistics; use track_running_stats=True",
    "MatMul": "a product of two activations has no rate equivalent; use constant weights",
    "mul": "a product of two activations has no rate equivalent; multiply by constants only",
    "div": "dividing by an activation has no rate equivalent; divide by constants only",
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


def _varying_arguments(node: fx.Node, dependent: set[fx.Node]) -> list[fx.Node]:
    """The time-varying arguments of ``node``, counted per use (``x * x`` has two)."""
    used: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), used.append)
    return [n for n in used if n in dependent]


def _op_label(gm: fx.GraphModule, node: fx.Node) -> str:
    if node.op == "call_module":
        module = module_of(gm, node)
        return f"{type(module).__module__}.{type(module).__name__}"
    if node.op == "call_function":
        return getattr(node.target, "__name__", str(node.target))
    return f".{node.target}()"


def hint_for(label: str) -> str:
    """What to do about an unsupported op, looked up by (part of) its name."""
    for key, hint in _HINTS.items():
        if key.lower() in label.lower():
            return hint
    return "no spiking equivalent; see docs/supported_layers.md"


def _is_supported(gm: fx.GraphModule, node: fx.Node, dependent: set[fx.Node]) -> bool:
    if node.op in ("placeholder", "output", "get_attr") or is_activation_site(gm, node):
        return True
    if node.op == "call_module":
        module = module_of(gm, node)
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_var is None:
            return False  # normalises by batch statistics
        return type(module) in SUPPORTED_MODULES and not isinstance(module, nn.Hardtanh)  # sites handled above
    varying = _varying_arguments(node, dependent)
    if node.op == "call_function":
        if node.target in _RESHAPES or node.target in _SUMS:
            return True
        if node.target in _SCALINGS:
            first_varies = isinstance(node.args[0], fx.Node) and node.args[0] in dependent
            divisor_ok = node.target not in _DIVISIONS or first_varies
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
    shapes = shape_values(gm)  # sizes and arithmetic on them are numbers, not activations
    found = []
    for node in gm.graph.nodes:
        if node not in dependent or node in shapes:
            continue
        problem = transformer_problem(gm, node, dependent)  # None: converts; False: not a transformer node
        if problem is False and _is_supported(gm, node, dependent):
            continue
        if problem is not None:
            label = _op_label(gm, node)
            found.append(UnsupportedNode(node.name, label, problem or hint_for(label)))
    return found


def raise_unsupported(found: list[UnsupportedNode], where: str) -> None:
    """Raise one :class:`UnsupportedLayerError` listing every node of ``found`` (if any)."""
    if found:
        listed = "; ".join(item.describe() for item in found)
        raise UnsupportedLayerError(f"cannot convert {len(found)} node(s) of {where}: {listed}")


def check_supported(gm: fx.GraphModule, *, where: str = "the model") -> None:
    """Raise one :class:`UnsupportedLayerError` listing every unsupported node, or return.

    Args:
        gm: A traced graph (before any canonicalisation: nothing has been changed yet).
        where: The model or file named in the message.
    """
    raise_unsupported(find_unsupported(gm), where)
