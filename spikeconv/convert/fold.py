"""Fold every neuron's threshold into the weights around it, so that every threshold is 1 and a spike is 1.

Consumer libraries (snnTorch, SpikingJelly: one threshold per layer) emit spikes of size 1 and map
no ``Scale`` node, so the network a target runs must carry θ in its weights. A ReLU site's output
is ``θ·S``; dividing the current that reaches the neuron by θ (the rows of the layers that
produce it, and its bias) and multiplying the layers that read its spikes by θ (their input
channels) leaves every value of the network the same in exact arithmetic, with θ = 1::

    conv_a -> IF(θ) -> avgpool -> conv_b          conv_a/θ -> IF(1) -> avgpool -> conv_b·θ

Per-layer and per-channel thresholds fold alike (θ broadcast over the channel dimension). Where
a value reaches a residual join without a layer of its own (an identity shortcut), the factor
becomes a per-channel scale on that edge (``mul`` by a constant buffer); the pass refuses that
when the target's executor cannot run a layer on a shortcut. A neuron's bias correction moves
into the bias of a layer that produces its current, and ``x / c`` becomes ``x · (1/c)`` (the
form an exported diagonal layer computes), so the target and spikeconv do the same arithmetic.
The pass is deterministic in the plan's thresholds: loading an SNN file replays it before its
tensors are restored.

Two passes go with it. :func:`shift_start_` puts the initial membrane of a target whose membranes
start at 0 into the bias of the layer before each neuron (``V[0] = v·θ`` becomes ``v·θ/T`` per step,
the same charge by step T; ``ConvertConfig.start_shift``), before the fold. :func:`unfold_thresholds_`
undoes the fold on a converted body, so that the layer-by-layer corrections
(:mod:`spikeconv.convert.corrections`) measure rates and install biases in the ANN's units, as they do
on a network converted without a target.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import torch
from torch import Tensor, fx, nn

from spikeconv.convert.target_rules import TargetRules
from spikeconv.errors import ConversionError
from spikeconv.neurons import IFNeuron
from spikeconv.neurons.time import repeat_over_time

__all__ = ["ChannelScale", "fold_thresholds_", "producers_of", "shift_start_", "spike_values_", "unfold_thresholds_"]


class ChannelScale(nn.Module):
    """``x · s`` with one factor per channel (dimension 1 of ``[N, C, ...]``), or one for all.

    What the fold puts on a shortcut edge, and what ``x / c`` becomes; an exporter writes it as a
    diagonal layer. Shapes: input and output ``[N, C, ...]``; ``scale`` is ``[C]`` or ``[1]``.
    """

    def __init__(self, scale: Tensor, *, role: str = "shortcut") -> None:
        super().__init__()
        self.role = role  # "shortcut" (the fold's, on a residual edge) or "divide" (x / c of the input normalisation)
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32).reshape(-1).clone())

    def forward(self, x: Tensor) -> Tensor:
        return x * (self.scale.reshape(1, -1, *([1] * (x.dim() - 2))) if self.scale.numel() > 1 else self.scale[0])


_ADD = (operator.add, operator.iadd, torch.add)
_TRANSPARENT_MODULES = (nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d)
_FLATTENS = (torch.flatten, torch.reshape)
_FLATTEN_METHODS = ("flatten", "view", "reshape", "contiguous")


def _module(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    return gm.get_submodule(str(node.target)) if node.op == "call_module" else None


def _is_flatten(gm: fx.GraphModule, node: fx.Node) -> bool:
    return isinstance(_module(gm, node), nn.Flatten) or (node.op == "call_function" and node.target in _FLATTENS) or (
        node.op == "call_method" and node.target in _FLATTEN_METHODS)  # fmt: skip


def _is_transparent(gm: fx.GraphModule, node: fx.Node) -> bool:
    """Per-channel scaling commutes with this node (pools, identities, the time layout, flattens)."""
    return isinstance(_module(gm, node), _TRANSPARENT_MODULES) or _is_flatten(gm, node) or (
        node.op == "call_function" and node.target is repeat_over_time)  # fmt: skip


class _Folder:
    def __init__(self, gm: fx.GraphModule, rules: TargetRules) -> None:
        self.gm, self.rules = gm, rules
        self.edges = 0

    def refuse(self, node: fx.Node, why: str) -> ConversionError:
        return ConversionError(f"node {node.name}: {why}; --target {self.rules.name} cannot fold the thresholds into the weights here")

    # -- the current into a neuron -------------------------------------------------------------------------------------------

    def scale_value(self, src: fx.Node, dst: fx.Node, factor: Tensor) -> None:
        """Make the value ``src`` hands to ``dst`` ``factor`` times larger (per channel)."""
        module = _module(self.gm, src)
        if isinstance(module, (nn.Conv2d, nn.Linear)) and len(src.users) == 1:
            _scale_rows(module, factor)
        elif src.op == "call_function" and src.target in _ADD and len(src.users) == 1:
            for arg in src.args[:2]:
                if not isinstance(arg, fx.Node):
                    raise self.refuse(src, "adds a constant to a neuron's current")
                self.scale_value(arg, src, factor)
        elif isinstance(module, ChannelScale) and len(src.users) == 1:
            module.scale = (module.scale * factor.reshape(-1)).clone()
        else:
            self.scale_edge(src, dst, factor)

    def scale_edge(self, src: fx.Node, dst: fx.Node, factor: Tensor) -> None:
        """A per-channel ``mul`` on the edge ``src -> dst`` (a layer on a shortcut; one that comes out as 1 is dropped)."""
        self.edges += 1
        name = f"{src.name}_to_{dst.name}_scale"
        self.gm.add_submodule(name, ChannelScale(factor))
        with self.gm.graph.inserting_before(dst):
            scaled = self.gm.graph.call_module(name, (src,))
        dst.replace_input_with(src, scaled)

    # -- the spikes out of a neuron ------------------------------------------------------------------------------------------

    def scale_use(self, src: fx.Node, dst: fx.Node, factor: Tensor) -> None:
        """``dst`` reads ``src``, whose values became ``1/factor`` times what they were: make up for it."""
        module = _module(self.gm, dst)
        if isinstance(module, nn.Conv2d):
            module.weight.data.mul_(factor.reshape(1, -1, 1, 1) if factor.numel() > 1 else factor)
        elif isinstance(module, nn.Linear):
            if factor.numel() > 1:  # per channel before a flatten: one factor per feature of each channel's block
                factor = factor.repeat_interleave(module.in_features // factor.numel()).reshape(1, -1)
            module.weight.data.mul_(factor)
        elif isinstance(module, ChannelScale) and module.role == "shortcut":
            module.scale = (module.scale * factor.reshape(-1)).clone()
        elif _is_transparent(self.gm, dst):
            for user in list(dst.users):
                self.scale_use(dst, user, factor)
        elif dst.op == "call_function" and dst.target in _ADD:
            self.scale_edge(src, dst, factor)
        else:
            raise self.refuse(dst, f"it reads the spikes of {src.name} in a way the fold cannot scale ({dst.op} {dst.target})")


def _scale_rows(module: nn.Module, factor: Tensor) -> None:
    view = factor.reshape(-1, *([1] * (module.weight.dim() - 1))) if factor.numel() > 1 else factor
    module.weight.data.mul_(view)
    if module.bias is not None:
        module.bias.data.mul_(factor.reshape(-1) if factor.numel() > 1 else factor)


def producers_of(gm: fx.GraphModule, node: fx.Node) -> list[fx.Node]:
    """The layers (conv, linear, shortcut scales) whose outputs sum to ``node``'s input current, through additions."""
    found, pending = [], [node.args[0]]
    while pending:
        src = pending.pop(0)
        if not isinstance(src, fx.Node):
            continue
        if isinstance(_module(gm, src), (nn.Conv2d, nn.Linear, ChannelScale)):
            found.append(src)
        elif src.op == "call_function" and src.target in _ADD:
            pending.extend(src.args[:2])
    return found


def _first_layer(gm: fx.GraphModule, node: fx.Node, what: str) -> nn.Module:
    """The first convolution or linear layer producing ``node``'s input current (where its biases go)."""
    layers = [p for p in producers_of(gm, node) if isinstance(_module(gm, p), (nn.Conv2d, nn.Linear))]
    if not layers:
        raise ConversionError(f"node {node.name}: its {what} has no layer to go into; convert without a target")
    return _module(gm, layers[0])


def _add_bias_(layer: nn.Module, node: fx.Node, bias: Tensor, what: str) -> None:
    channels = layer.weight.shape[0]
    bias = bias.reshape(-1)
    if bias.numel() not in (1, channels):
        raise ConversionError(f"node {node.name}: its {what} varies within a channel; convert without a target")
    if layer.bias is None:
        layer.bias = nn.Parameter(torch.zeros(channels, dtype=layer.weight.dtype), requires_grad=False)
    layer.bias.data.add_(bias.to(layer.bias.dtype).expand(channels))


def _move_bias_(gm: fx.GraphModule, node: fx.Node, neuron: IFNeuron) -> None:
    """The neuron's bias correction (per channel) into the bias of the first layer producing its current."""
    if not (neuron.bias.dim() or float(neuron.bias) != 0.0):
        return
    _add_bias_(_first_layer(gm, node, "bias correction"), node, neuron.bias, "bias correction")
    neuron.bias = torch.zeros(())


def shift_start_(gm: fx.GraphModule, shift: float) -> None:
    """Every IF neuron's input current gains ``shift·θ`` per step, in the bias of the layer producing it (in place).

    ``ConvertConfig.start_shift``: where a target's membranes start at 0, ``V[0] = v·θ`` becomes ``v·θ/T``
    per step, the charge the initial membrane gives by step T (Li et al. 2021's shift). Runs before the fold,
    in the ANN's units, and is a layer bias, not the neuron's: the corrections install theirs in the neuron.
    """
    for node in gm.graph.nodes:
        neuron = _module(gm, node)
        if isinstance(neuron, IFNeuron) and shift:
            _add_bias_(_first_layer(gm, node, "initial membrane"), node, shift * neuron.threshold, "initial membrane")


def spike_values_(gm: fx.GraphModule, corrections: dict[str, dict], rules: TargetRules) -> None:
    """The layers reading a neuron's spikes take its fitted spike value ``a`` instead of θ (in place, before the fold).

    A hard-reset neuron's spike stands for more charge than θ (:mod:`spikeconv.convert.hard_reset_fit`), and the
    plan records what: the readers' input channels are multiplied by ``a/θ``, so that after the fold (which
    multiplies them by θ) a spike of size 1 is worth ``a`` downstream.
    """
    folder = _Folder(gm, rules)
    for node in list(gm.graph.nodes):
        neuron = _module(gm, node)
        record = corrections.get(str(node.target), {}) if isinstance(neuron, IFNeuron) else {}
        if "spike_value" not in record:
            continue
        value = torch.tensor(record["spike_value"], dtype=torch.float32, device=neuron.threshold.device).reshape(-1)
        factor = value / neuron.threshold
        if factor.numel() not in (1, neuron.threshold.numel()):
            raise folder.refuse(node, f"{factor.numel()} spike values for {neuron.threshold.numel()} thresholds")
        if torch.all(factor == 1.0):
            continue
        for user in list(node.users):
            folder.scale_use(node, user, factor)


def _reciprocal_divisions_(gm: fx.GraphModule) -> None:
    """``x / c`` (a stored per-channel constant) -> ``x · (1/c)``: what a diagonal layer computes once exported."""
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target not in (operator.truediv, torch.div) or len(node.args) != 2:
            continue
        divisor = node.args[1]
        if not (isinstance(divisor, fx.Node) and divisor.op == "get_attr"):
            continue
        value = gm.get_buffer(str(divisor.target)).detach().to(torch.float32)
        name = f"{node.name}_reciprocal"
        gm.add_submodule(name, ChannelScale(torch.reciprocal(value.reshape(-1)), role="divide"))
        with gm.graph.inserting_before(node):
            scaled = gm.graph.call_module(name, (node.args[0],))
        node.replace_all_uses_with(scaled)
        gm.graph.erase_node(node)


def fold_thresholds_(gm: fx.GraphModule, rules: TargetRules) -> int:
    """Fold every IF neuron's θ into the weights of ``gm`` (in place; see the module docstring).

    Args:
        gm: A converted network's body, before its layers are routed through faster kernels.
        rules: The target (whether a shortcut may carry a scale layer).

    Returns:
        How many scale layers were put on shortcut edges.

    Raises:
        ConversionError: One line naming the node where the target cannot carry the fold.
    """
    folder = _Folder(gm, rules)
    _reciprocal_divisions_(gm)
    for node in list(gm.graph.nodes):
        neuron = _module(gm, node)
        if not isinstance(neuron, IFNeuron):
            continue
        _move_bias_(gm, node, neuron)
        theta = neuron.threshold.detach().clone()
        if torch.all(theta == 1.0):
            continue
        folder.scale_value(node.args[0], node, torch.reciprocal(theta))
        if neuron.v_offset.dim() or float(neuron.v_offset) != 0.0:
            view = theta.reshape(()) if theta.numel() == 1 else theta.reshape(-1, *([1] * (neuron.v_offset.dim() - 1)))
            neuron.v_offset = (neuron.v_offset / view).clone()
        neuron.threshold = torch.ones_like(neuron.threshold)
        for user in list(node.users):
            folder.scale_use(node, user, theta)
    _drop_unit_scales_(gm)
    left = [n for n in gm.graph.nodes if _is_shortcut_scale(gm, n)]
    if left and not rules.shortcut_layers:
        user = next(iter(left[0].users))
        raise folder.refuse(user, f"the spikes of {left[0].args[0].name} reach it without a layer, so the fold needs a scale "
                                  f"layer on that shortcut, and {rules.library}'s executor runs such a layer a step late")  # fmt: skip
    gm.graph.lint()
    gm.recompile()
    return len(left)


def _is_shortcut_scale(gm: fx.GraphModule, node: fx.Node) -> bool:
    module = _module(gm, node)
    return isinstance(module, ChannelScale) and module.role == "shortcut"


def _drop_unit_scales_(gm: fx.GraphModule) -> None:
    """Shortcut scales that came out as exactly 1 (equal thresholds on both ends) are no layer at all."""
    for node in list(gm.graph.nodes):
        if _is_shortcut_scale(gm, node) and torch.all(_module(gm, node).scale == 1.0):
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)


def unfold_thresholds_(gm: fx.GraphModule, thresholds: dict[str, Sequence[float]], corrections: dict[str, dict],
                       rules: TargetRules) -> None:  # fmt: skip
    """Undo :func:`fold_thresholds_` on a converted body (in place): every neuron's θ back, its spikes worth θ again.

    The same network in the ANN's units (up to float rounding; integer weights stay on their grid times θ),
    for the layer-by-layer corrections, which compare a site's rate with the ANN's activation and install
    their bias in the neuron: each neuron's plan bias (``corrections``) leaves the layer :func:`_move_bias_`
    put it in and returns to the neuron; :func:`shift_start_`'s shift stays in the layer.

    Args:
        gm: A body converted for ``rules`` (thresholds folded).
        thresholds: The plan's thresholds by site (``ThresholdPlan.thresholds``).
        corrections: The plan's corrections by site (``ThresholdPlan.corrections``).
        rules: The target it was converted for.
    """
    folder = _Folder(gm, rules)
    for node in list(gm.graph.nodes):
        neuron = _module(gm, node)
        if not isinstance(neuron, IFNeuron) or str(node.target) not in thresholds:
            continue
        device = neuron.threshold.device
        theta = torch.tensor(thresholds[str(node.target)], dtype=torch.float32, device=device).reshape(neuron.threshold.shape)
        if not torch.all(theta == 1.0):
            folder.scale_value(node.args[0], node, theta)
            if neuron.v_offset.dim() or float(neuron.v_offset) != 0.0:
                view = theta.reshape(()) if theta.numel() == 1 else theta.reshape(-1, *([1] * (neuron.v_offset.dim() - 1)))
                neuron.v_offset = (neuron.v_offset * view).clone()
            neuron.threshold = theta.clone()
            for user in list(node.users):
                folder.scale_use(node, user, torch.reciprocal(theta))
        record = corrections.get(str(node.target), {})
        if "bias" in record:
            bias = torch.tensor(record["bias"], dtype=torch.float32, device=device).reshape(record["bias_shape"])
            _add_bias_(_first_layer(gm, node, "bias correction"), node, -bias, "bias correction")
            neuron.bias = bias
    gm.graph.lint()
    gm.recompile()
