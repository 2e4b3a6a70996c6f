"""Transformer operations in the canonical graph: one module per call site, whatever the spelling.

A Vision Transformer is made of affine layers (patch embedding, projections, MLP layers, residual
sums) and four non-linear operations that no rate code commutes with: LayerNorm, GELU, softmax and
the product of two activations (``Q·Kᵀ`` and ``attention·V``). Ingest gives each call of those its
own module, named after the node, as it does for ReLU sites, so that conversion can replace each by
its spike-equivalent operator (``spikeconv.convert.operators``) and the counters can price it:

- ``nn.LayerNorm`` (also ``F.layer_norm`` with constant weights),
- ``nn.GELU`` (also ``F.gelu``; the ``tanh`` approximation is kept),
- ``nn.Softmax(dim)`` (also ``F.softmax``, ``torch.softmax``, ``x.softmax(dim)``),
- :class:`ActivationProduct` for ``torch.matmul``, ``@``, ``torch.bmm`` and ``x * y`` of two
  time-varying tensors.

Before and after, for ``attn = (q @ k.transpose(-2, -1)).softmax(-1)``::

    matmul = operator.matmul(q, transpose); softmax = matmul.softmax(-1)
    matmul = self.matmul(q, transpose); softmax = self.softmax(matmul)      # ActivationProduct, nn.Softmax(-1)

The module types carry a ``spikeconv_operator`` name (standard torch ones by :func:`operator_kind`),
so conversion and the counters find them without importing ingest.
"""

from __future__ import annotations

import copy
import math
import operator

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from spikeconv._fx import add_submodule, module_of
from spikeconv.errors import UnsupportedLayerError

__all__ = ["ActivationProduct", "OPERATOR_MODULES", "canonicalize_transformer_ops_", "is_product", "operator_kind"]

OPERATOR_MODULES: dict[type[nn.Module], str] = {nn.LayerNorm: "layer_norm", nn.GELU: "gelu", nn.Softmax: "softmax"}
"""Standard torch modules that are transformer operations, by operator name."""

_PRODUCT_FUNCTIONS = {torch.matmul: "matmul", operator.matmul: "matmul", torch.bmm: "matmul", operator.mul: "mul", torch.mul: "mul"}
_PRODUCT_METHODS = {"matmul": "matmul", "bmm": "matmul", "mul": "mul", "__matmul__": "matmul"}
_SOFTMAX_FUNCTIONS = (F.softmax, torch.softmax)
_GELU_FUNCTIONS = (F.gelu,)
_LAYER_NORM_FUNCTIONS = (F.layer_norm,)


class ActivationProduct(nn.Module):
    """The product of two time-varying tensors: ``a @ b`` (``mode="matmul"``) or ``a * b`` (``"mul"``), times a constant.

    In the ANN it is that product; conversion makes it spike-equivalent (the product of the two
    running means, :mod:`spikeconv.neurons.expectation`), which costs multiplications at every step.
    ``scale`` multiplies the product (attention's ``1/sqrt(d)``); ``scale_by_depth`` makes it
    ``1/sqrt(a.shape[-1])``, read at run time (``F.scaled_dot_product_attention``'s default).
    Shapes: as ``torch.matmul`` / ``torch.mul`` of the two inputs.
    """

    spikeconv_operator = "product"

    def __init__(self, mode: str = "matmul", *, scale: float = 1.0, scale_by_depth: bool = False) -> None:
        super().__init__()
        if mode not in ("matmul", "mul"):
            raise ValueError(f"ActivationProduct mode must be 'matmul' or 'mul', got {mode!r}")
        self.mode = mode
        self.scale = float(scale)
        self.scale_by_depth = bool(scale_by_depth)

    def extra_repr(self) -> str:
        scale = ", scale=1/sqrt(depth)" if self.scale_by_depth else (f", scale={self.scale:g}" if self.scale != 1.0 else "")
        return f"mode={self.mode}{scale}"

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        out = torch.matmul(a, b) if self.mode == "matmul" else a * b
        scale = self.scale / math.sqrt(a.shape[-1]) if self.scale_by_depth else self.scale
        return out if scale == 1.0 else out * scale


def operator_kind(module: nn.Module | None) -> str | None:
    """The transformer-operation name of ``module`` (``layer_norm``, ``gelu``, ``softmax``, ``product``), else ``None``."""
    if module is None:
        return None
    return OPERATOR_MODULES.get(type(module)) or getattr(type(module), "spikeconv_operator", None)


def _argument(node: fx.Node, index: int, name: str, default: object) -> object:
    return node.args[index] if len(node.args) > index else node.kwargs.get(name, default)


def _varying(node: fx.Node, dependent: set[fx.Node]) -> list[fx.Node]:
    used: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), used.append)
    return [n for n in used if n in dependent]


def is_product(node: fx.Node, dependent: set[fx.Node]) -> bool:
    """A product (matmul, ``*``) whose two operands both vary with the input."""
    if node.op == "call_function" and node.target in _PRODUCT_FUNCTIONS:
        return len(_varying(node, dependent)) == 2 and len(node.args) >= 2
    if node.op == "call_method" and node.target in _PRODUCT_METHODS:
        return len(_varying(node, dependent)) == 2 and len(node.args) >= 2
    return False


def _product_mode(node: fx.Node) -> str:
    table = _PRODUCT_FUNCTIONS if node.op == "call_function" else _PRODUCT_METHODS
    return table[node.target]


def _constant(gm: fx.GraphModule, arg: object) -> Tensor | None:
    if arg is None:
        return None
    if not (isinstance(arg, fx.Node) and arg.op == "get_attr"):
        raise UnsupportedLayerError(f"layer_norm node {arg} needs constant weight and bias")
    value = gm
    for part in str(arg.target).split("."):
        value = getattr(value, part)
    return value.detach().clone()


def _layer_norm_module(gm: fx.GraphModule, node: fx.Node) -> nn.LayerNorm:
    shape = _argument(node, 1, "normalized_shape", None)
    weight = _constant(gm, _argument(node, 2, "weight", None))
    bias = _constant(gm, _argument(node, 3, "bias", None))
    module = nn.LayerNorm(tuple(int(s) for s in shape), eps=float(_argument(node, 4, "eps", 1e-5)),
                          elementwise_affine=weight is not None, bias=bias is not None)  # fmt: skip
    with torch.no_grad():
        if weight is not None:
            module.weight.copy_(weight)
        if bias is not None:
            module.bias.copy_(bias)
    return module


def _softmax_dim(node: fx.Node) -> int:
    dim = _argument(node, 1, "dim", None)
    if not isinstance(dim, int):
        raise UnsupportedLayerError(f"softmax node {node.name} needs an explicit integer dim")
    return dim


def _module_for(gm: fx.GraphModule, node: fx.Node, dependent: set[fx.Node]) -> tuple[nn.Module, tuple] | None:
    """The canonical module of a functional spelling and the arguments it takes, or ``None``."""
    if is_product(node, dependent):
        return ActivationProduct(_product_mode(node)), (node.args[0], node.args[1])
    if (node.op == "call_function" and node.target in _SOFTMAX_FUNCTIONS) or (node.op == "call_method" and node.target == "softmax"):
        return nn.Softmax(_softmax_dim(node)), (node.args[0],)
    if node.op == "call_function" and node.target in _GELU_FUNCTIONS:
        return nn.GELU(approximate=str(_argument(node, 1, "approximate", "none"))), (node.args[0],)
    if node.op == "call_function" and node.target in _LAYER_NORM_FUNCTIONS:
        return _layer_norm_module(gm, node), (node.args[0],)
    return None


def canonicalize_transformer_ops_(gm: fx.GraphModule, dependent: set[fx.Node]) -> int:
    """Give every transformer operation on data its own module named after its node (in place). Returns how many.

    Args:
        gm: The traced graph (already checked by :func:`~spikeconv.ingest.support.check_supported`).
        dependent: Its nodes that depend on the input.
    """
    count = 0
    for node in list(gm.graph.nodes):
        if node not in dependent:
            continue
        module = module_of(gm, node)
        made = _module_for(gm, node, dependent) if module is None else None
        if made is not None:
            module, args = made
            node.op, node.target = "call_module", add_submodule(gm, node.name, module)
            node.args, node.kwargs = args, {}
        elif operator_kind(module) is not None and str(node.target) != node.name:  # each call its own module (own state)
            node.target = add_submodule(gm, node.name, copy.deepcopy(module))
        if operator_kind(module) is not None:
            count += 1
    if count:  # a ReLU network's graph is left exactly as it was
        gm.graph.eliminate_dead_code()
        gm.delete_all_unused_submodules()
        gm.recompile()
    return count
