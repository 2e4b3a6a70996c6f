"""spikify(): a ReLU network -> a trainable SpikingNetwork of the same architecture.

The model is deep-copied and traced with torch.fx; every ReLU *call site* (module, function or
method, in-place or not) becomes its own trainable neuron named after the node it replaces,
and the graph gains a ``num_steps`` input. Before and after, for ``conv -> bn -> relu -> fc``::

    conv = self.conv(x); bn = self.bn(conv); relu = self.relu(bn); fc = self.fc(relu)
    conv = self.conv(x); bn = self.bn(conv); relu = self.relu(bn, num_steps, static=True)
    fc = self.fc(relu)

Everything before the first neuron sees the direct-encoded image, which is the same at every
step, so it runs once on ``[N, ...]`` and the neuron repeats it over time (``static=True``);
later layers run on time-flattened ``[T·N, ...]`` tensors (SpikingJelly's ``seq_to_ann_forward``),
so BatchNorm statistics cover the whole spatio-temporal slab as tdBN prescribes. The last layer
has no neuron after it: the network returns the readout current at each step.
"""

from __future__ import annotations

import copy

import torch
from torch import fx, nn
from torch.nn import functional as F

from spikeconv._fx import add_submodule, is_relu_call
from spikeconv.errors import ConfigError, UnsupportedLayerError, first_line
from spikeconv.neurons import NeuronConfig, SpikingNetwork, check_timesteps, repeat_over_time
from spikeconv.neurons.pooling import accelerate_avg_pools_
from spikeconv.neurons.time_layout import is_shape_query, lay_out_time_

__all__ = ["spikify"]

_OTHER_ACTIVATION_MODULES = (
    nn.Sigmoid, nn.Tanh, nn.GELU, nn.SiLU, nn.ELU, nn.SELU, nn.CELU, nn.LeakyReLU, nn.PReLU, nn.ReLU6,
    nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.Mish, nn.Softsign,
)  # fmt: skip
_OTHER_ACTIVATION_FUNCTIONS = (
    torch.sigmoid, torch.tanh, F.sigmoid, F.tanh, F.gelu, F.silu, F.elu, F.selu, F.celu, F.leaky_relu,
    F.relu6, F.hardtanh, F.hardswish, F.hardsigmoid, F.softplus, F.mish,
)  # fmt: skip


def spikify(model: nn.Module, neuron: NeuronConfig, *, timesteps: int) -> SpikingNetwork:
    """Replace every ReLU call site of a copy of ``model`` by a fresh ``neuron.build()``.

    Works on any fx-traceable module of Conv/Linear/BatchNorm/pooling/flatten/dropout/ReLU
    (and plain arithmetic such as residual adds); ``model`` itself is never modified. The
    result keeps ``model``'s parameter names, plus one neuron buffer set per call site.

    Args:
        model: A ReLU network mapping ``[N, ...]`` to ``[N, K]`` class scores.
        neuron: The neuron configuration (e.g. ``trainable_neuron_config("srif", mpr=True)``).
        timesteps: The network's default number of steps.

    Returns:
        A SpikingNetwork with direct encoding; ``snn(x, T)`` returns ``[T, N, K]``.

    Raises:
        UnsupportedLayerError: fx cannot trace the model, or it has other activations (all
            listed) that would silently stay analog.
        ConfigError: The model has no ReLU, or ``neuron``/``timesteps`` is invalid.
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"spikify needs an nn.Module, got {type(model).__name__}")
    if not hasattr(neuron, "build"):
        raise ConfigError(f"neuron must be a neuron configuration (see trainable_neuron_config), got {neuron!r}")
    check_timesteps(timesteps)
    gm = _trace(copy.deepcopy(model))
    _check_activations(gm)
    output = next(n for n in gm.graph.nodes if n.op == "output")
    if not isinstance(output.args[0], fx.Node):
        raise UnsupportedLayerError(f"{type(model).__name__} must return a single tensor of class scores to be spikified")
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise UnsupportedLayerError(f"{type(model).__name__} must take exactly one input, it takes {len(placeholders)}")
    with gm.graph.inserting_after(placeholders[0]):
        steps = gm.graph.placeholder("num_steps")
    neurons = _replace_relus_(gm, neuron, steps)
    if not neurons:
        raise ConfigError(f"{type(model).__name__} has no ReLU to turn into a spiking neuron")
    _lay_out_time_(gm, placeholders[0], neurons, steps)
    gm.delete_all_unused_submodules()
    gm.graph.lint()
    gm.recompile()
    accelerate_avg_pools_(gm)  # C++ pooling forward and backward, bit-identical to aten's NCHW kernels (neurons/pooling.py)
    return SpikingNetwork(gm, timesteps=timesteps, metadata={"origin": "spikify", "neuron": neuron.to_dict()})


def _trace(model: nn.Module) -> fx.GraphModule:
    try:
        return fx.symbolic_trace(model)
    except Exception as error:  # fx raises TraceError, TypeError, NotImplementedError, ...
        first = first_line(error, empty="")
        raise UnsupportedLayerError(
            f"torch.fx cannot trace {type(model).__name__} ({type(error).__name__}: {first}); "
            "spikify needs a model without data-dependent control flow"
        ) from None


def _check_activations(gm: fx.GraphModule) -> None:
    offending = []
    for node in gm.graph.nodes:
        if node.op == "call_module" and isinstance(gm.get_submodule(str(node.target)), _OTHER_ACTIVATION_MODULES):
            offending.append(f"module {node.target!r} ({type(gm.get_submodule(str(node.target))).__name__})")
        elif (node.op == "call_function" and node.target in _OTHER_ACTIVATION_FUNCTIONS) or (
            node.op == "call_method" and node.target in ("sigmoid", "tanh")
        ):
            offending.append(f"{node.name} ({getattr(node.target, '__name__', node.target)})")
    if offending:
        raise UnsupportedLayerError(
            f"only ReLU activations can become spiking neurons; found {', '.join(offending)}: replace them with nn.ReLU"
        )


def _replace_relus_(gm: fx.GraphModule, neuron: NeuronConfig, steps: fx.Node) -> set[fx.Node]:
    """Point every ReLU call site at its own new neuron (in place); returns the neuron nodes.

    A ReLU module called once keeps its path (``relu1`` stays ``relu1``); a shared module's
    later call sites and functional ReLUs get a new top-level name after their node.
    """
    seen: set[str] = set()
    nodes = set()
    for node in [n for n in gm.graph.nodes if is_relu_call(gm, n)]:  # collected first: replacing changes module types
        if node.op == "call_module" and str(node.target) not in seen:
            target = str(node.target)
            parent, _, leaf = target.rpartition(".")
            setattr(gm.get_submodule(parent), leaf, neuron.build())
        else:
            target = add_submodule(gm, node.name, neuron.build())
        seen.add(target)
        with gm.graph.inserting_after(node):
            replacement = gm.graph.call_module(target, (node.args[0], steps))
        node.replace_all_uses_with(replacement)
        gm.graph.erase_node(node)
        nodes.add(replacement)
    return nodes


def _lay_out_time_(gm: fx.GraphModule, x: fx.Node, neurons: set[fx.Node], steps: fx.Node) -> None:
    """Run the time-invariant prefix once and repeat static values where they meet time.

    A value is *static* (``[N, ...]``) if it depends on the input but on no neuron, *dynamic*
    (``[T·N, ...]``) otherwise. Where a static value feeds a dynamic op (or the output) it is
    repeated with :func:`repeat_over_time`; a neuron fed a static value gets ``static=True``.
    A graph that reads a shape (``x.size(0)``) would see N where it expects T·N, so there the
    input itself is repeated and everything runs time-flattened. Otherwise the layout is
    conversion's (:func:`spikeconv.neurons.time_layout.lay_out_time_`).
    """
    graph = gm.graph
    if any(is_shape_query(node) for node in graph.nodes):
        with graph.inserting_after(steps):
            repeated = graph.call_function(repeat_over_time, (x, steps))
        x.replace_all_uses_with(repeated, delete_user_cb=lambda user: user is not repeated)
        return
    lay_out_time_(gm, neurons, steps, input_static=True)
