"""Graph passes that bring a traced ANN into spikeconv's canonical form (in place on a copy).

Canonical form: inference-only (no dropout), BatchNorm folded into the conv/linear before it, and
every activation call site its own ``call_module`` to a fresh module named after the node:
``nn.ReLU`` for a plain ReLU, ``nn.Hardtanh(0, c)`` for a ReLU capped at ``c`` (ReLU6, clamp(0, c);
see :mod:`spikeconv.ingest.activations`). Before and after, for
``x -> conv -> bn -> relu (F.relu) -> dropout -> fc``::

    conv1 = self.conv1(x); bn = self.bn(conv1); relu = F.relu(bn); drop = self.drop(relu)
    conv1 = self.conv1(x); relu = self.relu(conv1); fc = self.fc(relu)
"""

from __future__ import annotations

import copy

import torch
from torch import fx, nn

from spikeconv._fx import add_submodule, module_of
from spikeconv.ingest.activations import is_activation_site, is_declared_activation, is_inplace, site_cap, site_module
from spikeconv.ingest.support import SUPPORTED_MODULES

_DROPOUT_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Identity)
_DROPOUT_FUNCTIONS = (torch.nn.functional.dropout, torch.nn.functional.dropout1d,
                      torch.nn.functional.dropout2d)  # fmt: skip
_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d)
_FOLDABLE = (nn.Conv1d, nn.Conv2d, nn.Linear)


def _bypass(gm: fx.GraphModule, node: fx.Node) -> None:
    node.replace_all_uses_with(node.args[0])
    gm.graph.erase_node(node)


def remove_dropout_(gm: fx.GraphModule) -> None:
    """Drop dropout and identity nodes: they are the identity at inference."""
    for node in list(gm.graph.nodes):
        module = module_of(gm, node)
        if isinstance(module, _DROPOUT_MODULES) or (
            node.op == "call_function" and node.target in _DROPOUT_FUNCTIONS
        ):
            _bypass(gm, node)


def _read_inplace_result_(node: fx.Node, order: dict[fx.Node, int]) -> None:
    """Later readers of an in-place activation's input saw the activated tensor: make them read it."""
    source = node.args[0]
    for user in list(source.users):
        if user is not node and order[user] > order[node]:
            user.replace_input_with(source, node)


def canonicalize_relus_(gm: fx.GraphModule) -> dict[str, float]:
    """Give every activation call site its own module named after the node.

    torchvision's BasicBlock calls one ``nn.ReLU(inplace=True)`` twice; each call becomes its own
    site (and later its own neuron). ``F.relu``, ``x.relu()``, ``torch.clamp(x, 0)`` and in-place
    variants become ``nn.ReLU``; capped ReLUs (``nn.ReLU6``, ``F.hardtanh(x, 0, c)``,
    ``clamp(x, 0, c)``) become ``nn.Hardtanh(0, c)``, whose ``max_val`` records the cap.

    Returns:
        Site (module) name -> cap (``math.inf`` for a plain ReLU), in graph order.
    """
    sites = [(node, site_cap(gm, node)) for node in gm.graph.nodes if is_activation_site(gm, node)]
    order = {node: index for index, node in enumerate(gm.graph.nodes)}
    for index, (node, cap) in enumerate(sites):
        if is_inplace(gm, node):
            _read_inplace_result_(node, order)
        original = module_of(gm, node)
        canonical = copy.deepcopy(original) if is_declared_activation(original) else site_module(cap)
        temporary = add_submodule(gm, f"_spikeconv_relu_{index}", canonical)
        node.op, node.target = "call_module", temporary
        node.args, node.kwargs = (node.args[0],), {}
    gm.delete_all_unused_submodules()  # the original, possibly shared, activation modules
    caps = {}
    for node, cap in sites:
        module = gm.get_submodule(node.target)
        delattr(gm, node.target)
        node.target = add_submodule(gm, node.name, module)
        caps[node.target] = cap
    gm.recompile()
    return caps


def _fold_into(layer: nn.Module, bn: nn.Module) -> nn.Module:
    """A copy of ``layer`` computing ``bn(layer(x))`` (BN in eval mode).

    ``W' = W·γ/σ``, ``b' = γ·(b − μ)/σ + β`` with ``σ = sqrt(var + ε)``.
    """
    folded = copy.deepcopy(layer)
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps) if bn.affine else (
        1.0 / torch.sqrt(bn.running_var + bn.eps)
    )
    shift = bn.bias.detach() if bn.affine else torch.zeros_like(bn.running_mean)
    bias = layer.bias.detach() if layer.bias is not None else torch.zeros_like(bn.running_mean)
    shape = (-1,) + (1,) * (layer.weight.dim() - 1)
    folded.weight = nn.Parameter(layer.weight.detach() * scale.reshape(shape))
    folded.bias = nn.Parameter((bias - bn.running_mean) * scale + shift)
    return folded


def fold_batchnorm_(gm: fx.GraphModule) -> int:
    """Fold every BatchNorm whose only input is a conv/linear used nowhere else. Returns the count.

    BatchNorms elsewhere stay as per-channel affine maps, which convert unchanged.
    """
    folded = 0
    for node in list(gm.graph.nodes):
        bn = module_of(gm, node)
        if not isinstance(bn, _BN_TYPES) or bn.running_var is None:
            continue
        producer = node.args[0]
        layer = module_of(gm, producer) if isinstance(producer, fx.Node) else None
        if not isinstance(layer, _FOLDABLE) or len(producer.users) != 1:
            continue
        name = add_submodule(gm, f"{producer.name}_bn", _fold_into(layer, bn))
        producer.target = name
        _bypass(gm, node)
        folded += 1
    gm.delete_all_unused_submodules()
    return folded


def assert_canonical(gm: fx.GraphModule) -> None:
    """Internal check: only supported module types remain and every site is a call_module."""
    for node in gm.graph.nodes:
        module = module_of(gm, node)
        if module is not None:
            assert type(module) in SUPPORTED_MODULES, node.name
        assert not is_activation_site(gm, node) or node.op == "call_module", node.name
