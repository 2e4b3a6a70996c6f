"""BatchNorm for training a user's graph directly, when its exporter folded the BatchNorm away.

Exported ANNs usually arrive with BatchNorm folded into the convolutions. Such a graph trains badly as
an SNN: nothing rescales the currents to the firing threshold, so layers fall silent (a development
run on a small digits ResNet, SRIF+MPR, T = 4, three epochs: 12 % from scratch and 39 % from the ANN's
weights without it, 51 % and 92 % with a first version of it). Direct training therefore puts a
BatchNorm after every convolution or linear layer
that feeds a neuron — where a ResNet or VGG has one — and only when the graph has no normalisation of
its own. At inference the layers are ordinary BatchNorm (foldable, exported as diagonal convolutions).

Starting from the ANN's weights, :func:`match_ann_` sets each new layer of the spikified network so that,
on the statistics of the input it receives, it computes ``k·y`` with ``k = θ / p99.9(relu(y))``: the ANN's
pattern, scaled so that its large values reach the firing threshold θ (the per-layer normalisation of
conversion, Diehl et al. 2015), instead of normalising the learned features away.
"""

from __future__ import annotations

import torch
from torch import Tensor, fx, nn

from spikeconv._fx import add_submodule, is_relu_call, module_of
from spikeconv.neurons import SpikingNetwork

__all__ = ["add_batchnorm", "match_ann_"]

_SYNAPTIC = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
_QUANTILE = 0.999


def _batchnorm_for(layer: nn.Module) -> nn.Module:
    if isinstance(layer, nn.Linear):
        return nn.BatchNorm1d(layer.out_features)
    return {nn.Conv1d: nn.BatchNorm1d, nn.Conv2d: nn.BatchNorm2d, nn.Conv3d: nn.BatchNorm3d}[type(layer)](layer.out_channels)


def _feeds_a_relu(node: fx.Node, gm: fx.GraphModule) -> bool:
    """True if a ReLU is reachable from ``node`` (the readout layer's output reaches none)."""
    seen, stack = set(), list(node.users)
    while stack:
        user = stack.pop()
        if user in seen:
            continue
        seen.add(user)
        if is_relu_call(gm, user):
            return True
        stack.extend(user.users)
    return False


def add_batchnorm(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """``model`` with a new BatchNorm after every conv/linear layer that feeds a ReLU, if it has no normalisation.

    Returns the model (a new GraphModule when layers were added, else ``model`` itself) and the names of
    the added layers, in graph order. The same model always gets the same names, so a checkpoint's
    reader, adding them again, finds its parameters.
    """
    if any(isinstance(m, _NORMS) for m in model.modules()):
        return model, []
    gm = model if isinstance(model, fx.GraphModule) else fx.symbolic_trace(model)
    sites = [n for n in gm.graph.nodes if isinstance(module_of(gm, n), _SYNAPTIC) and _feeds_a_relu(n, gm)]
    if not sites:
        return model, []
    gm = fx.GraphModule(gm, gm.graph)  # a copy of the graph: the caller's model keeps its own
    added = []
    for node in [n for n in gm.graph.nodes if n.name in {s.name for s in sites}]:
        name = add_submodule(gm, f"{node.name}_bn", _batchnorm_for(module_of(gm, node)))
        with gm.graph.inserting_after(node):
            norm = gm.graph.call_module(name, (node,))
        node.replace_all_uses_with(norm, delete_user_cb=lambda user, norm=norm: user is not norm)
        added.append(name)
    gm.graph.lint()
    gm.recompile()
    return gm, added


@torch.no_grad()
def match_ann_(snn: SpikingNetwork, added: list[str], samples: Tensor) -> dict[str, float]:
    """Set each added BatchNorm of the spikified ``snn`` to ``k·y`` (see the module docstring), in place.

    One forward pass at the network's T, in graph order: each layer is set from the input it actually
    receives — the spikes of the layers before it, already matched — so the scales do not compound.
    Returns each layer's scale ``k``.
    """
    layers = {name: snn.body.get_submodule(name) for name in added}
    threshold = _threshold(snn)
    scales: dict[str, float] = {}

    def set_from_input(layer: nn.Module, args: tuple[Tensor, ...], name: str) -> None:
        if name in scales:
            return
        y = args[0].detach().transpose(0, 1).reshape(layer.num_features, -1)  # [C, everything else]
        mean, var = y.mean(dim=1), y.var(dim=1, unbiased=False)
        top = float(torch.quantile(y.clamp(min=0).flatten()[: 1 << 24], _QUANTILE))
        k = threshold / top if top > 0 else 1.0
        layer.running_mean.copy_(mean)
        layer.running_var.copy_(var)
        layer.weight.copy_(k * torch.sqrt(var + layer.eps))
        layer.bias.copy_(k * mean)
        scales[name] = k

    hooks = [layer.register_forward_pre_hook(lambda m, args, name=name: set_from_input(m, args, name))
             for name, layer in layers.items()]  # fmt: skip
    was_training = snn.training
    try:
        snn.eval()(samples)
    finally:
        for hook in hooks:
            hook.remove()
        snn.train(was_training)
    return scales


def _threshold(snn: SpikingNetwork) -> float:
    """The firing threshold of the network's neurons (one configuration serves every site)."""
    neurons = [m for m in snn.body.modules() if hasattr(m, "config") and hasattr(m.config, "threshold")]
    return float(neurons[0].config.threshold) if neurons else 1.0
