"""Which transformer operations ingest accepts from a torch model, and why it refuses the others.

The support check (:mod:`spikeconv.ingest.support`) asks :func:`transformer_problem` first: it
answers for LayerNorm, GELU, softmax, products of two activations, ``nn.MultiheadAttention``,
``F.scaled_dot_product_attention`` and the few tensor methods a ViT's forward uses (``expand`` of
the class token, ``unflatten`` of heads), and leaves every other node to the ReLU-network rules.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import fx, nn

from spikeconv._fx import module_of
from spikeconv.ingest.attention import mha_problem, sdpa_problem
from spikeconv.ingest.gelu_pattern import ERF_FUNCTIONS, gelu_pattern
from spikeconv.ingest.transformer_ops import ActivationProduct, is_product

__all__ = ["TRANSFORMER_FUNCTIONS", "TRANSFORMER_METHODS", "TRANSFORMER_MODULES", "transformer_problem"]

_OPERATOR = "spike-equivalent operator on the running mean of its input (MACs at every step)"
TRANSFORMER_MODULES: dict[type[nn.Module], str] = {
    nn.LayerNorm: f"LayerNorm: {_OPERATOR}",
    nn.GELU: f"GELU: {_OPERATOR}",
    nn.Softmax: f"softmax (not over the batch): {_OPERATOR}",
    nn.MultiheadAttention: "batch_first, no masks: projections on spikes, Q·Kᵀ, softmax and ·V as spike-equivalent operators",
}
"""Modules that convert as transformer operations, and what conversion does with them."""

_PRODUCT = f"product of two activations: {_OPERATOR}; by a constant: scaling"
TRANSFORMER_FUNCTIONS: dict[object, str] = {
    F.layer_norm: f"LayerNorm (constant weight and bias): {_OPERATOR}",
    F.gelu: f"GELU: {_OPERATOR}",
    F.softmax: f"softmax: {_OPERATOR}",
    torch.softmax: f"softmax: {_OPERATOR}",
    torch.matmul: _PRODUCT,
    operator.matmul: _PRODUCT,
    torch.bmm: _PRODUCT,
    operator.mul: "scaling by a constant; of two activations: a product (spike-equivalent operator, MACs at every step)",
    torch.mul: "scaling by a constant; of two activations: a product (spike-equivalent operator, MACs at every step)",
    F.scaled_dot_product_attention: "no mask: Q·Kᵀ, softmax and ·V as spike-equivalent operators",
    torch._assert: "removed (a check on input sizes)",
    torch.erf: "inside 0.5·x·(1 + erf(x/√2)): the pattern is a GELU (one nn.GELU)",
}
"""Functions that convert as transformer operations, and what conversion does with them."""

TRANSFORMER_METHODS: dict[str, str] = {
    "softmax": f"softmax: {_OPERATOR}",
    "matmul": _PRODUCT,
    "mul": "scaling by a constant; of two activations: a product (spike-equivalent operator, MACs at every step)",
    "expand": "broadcast (a constant such as the class token, to the batch)",
    "unflatten": "reshape",
    "unbind": "split along a feature dimension (q, k, v)",
    "chunk": "split along a feature dimension",
}
"""Tensor methods that convert as transformer operations or reshapes, and what conversion does with them."""


def _dims(node: fx.Node, index: int, name: str) -> object:
    return node.args[index] if len(node.args) > index else node.kwargs.get(name)


def _softmax_problem(dim: object) -> str | None:
    if not isinstance(dim, int):
        return "softmax needs an explicit integer dim"
    return "a softmax over the batch dimension cannot be converted" if dim == 0 else None


def _varying_count(node: fx.Node, dependent: set[fx.Node]) -> int:
    used: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), used.append)
    return sum(n in dependent for n in used)


def _module_problem(gm: fx.GraphModule, node: fx.Node) -> str | None | bool:
    module = module_of(gm, node)
    if isinstance(module, nn.MultiheadAttention):
        return mha_problem(node, module)
    if type(module) is nn.Softmax:
        return _softmax_problem(module.dim)
    if type(module) in (nn.LayerNorm, nn.GELU, ActivationProduct):  # ActivationProduct: canonical graphs (ingest made it)
        return None
    return False


def _function_problem(gm: fx.GraphModule, node: fx.Node, dependent: set[fx.Node]) -> str | None | bool:
    target = node.target
    if node.op == "call_method":
        if target == "softmax":
            return _softmax_problem(_dims(node, 1, "dim"))
        if target in ("expand", "unflatten", "unbind", "chunk"):
            return None if _varying_count(node, dependent) <= 1 or target == "expand" else False
        return None if is_product(node, dependent) else False
    if target in (F.softmax, torch.softmax):
        return _softmax_problem(_dims(node, 1, "dim"))
    if target is F.gelu:
        return None
    if target in ERF_FUNCTIONS:
        return None if gelu_pattern(gm, node) is not None else "erf outside an exact GELU, 0.5·x·(1 + erf(x/√2)), has no spiking form"
    if target is F.layer_norm:
        constants = [_dims(node, i, n) for i, n in ((2, "weight"), (3, "bias"))]
        varies = any(isinstance(c, fx.Node) and c.op != "get_attr" for c in constants)
        return "LayerNorm needs constant weight and bias" if varies else None
    if target is F.scaled_dot_product_attention:
        return sdpa_problem(node)
    if target in (torch.matmul, operator.matmul, torch.bmm):
        return None if _varying_count(node, dependent) in (1, 2) else False
    return None if is_product(node, dependent) else False


def transformer_problem(gm: fx.GraphModule, node: fx.Node, dependent: set[fx.Node]) -> str | None | bool:
    """For a transformer node: ``None`` (converts) or why not; ``False`` for every other node (not ours to judge).

    A matmul of an activation and a constant is a product too: it converts as a scaling by a
    constant would, exactly, inside the spike-equivalent operator.
    """
    if node.op == "call_module":
        return _module_problem(gm, node)
    if node.op == "call_method" and node.target in (*TRANSFORMER_METHODS, "bmm", "__matmul__"):
        return _function_problem(gm, node, dependent)
    if node.op == "call_function" and (node.target in TRANSFORMER_FUNCTIONS or node.target in ERF_FUNCTIONS):
        return _function_problem(gm, node, dependent)
    return False
