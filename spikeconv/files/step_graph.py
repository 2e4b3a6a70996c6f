"""One timestep of a SpikingNetwork as a pure module whose neuron state is explicit.

A SpikingNetwork keeps each neuron's membrane inside the neuron module and runs ``T`` steps per
call, which no runtime outside spikeconv can reproduce. Exporters (ONNX, and anything that wants a
stateless step) need instead ``step(x, *state) -> (readout, *next_state)``, looped by the caller.
:func:`build_step_graph` derives that form from the network's fx body: ``num_steps`` becomes 1,
``repeat_over_time`` the identity (the time-invariant first layer is simply recomputed each step),
and every neuron call a call of its registered *step form*, which reuses the neuron's own pure step
function (:mod:`spikeconv.neurons.dynamics` and friends) so that the dynamics are defined once.

Before/after, for ``conv -> neuron -> fc``::

    relu = self.relu(conv, num_steps, static=True); fc = self.fc(relu)
    step = self._step_relu(conv, relu_v); relu = step[0]; relu_v_next = step[1]; fc = self.fc(relu)
    return (fc, relu_v_next)

State tensors have a batch dimension of 1 at the start (the initial state broadcasts against any
batch); after the first step they have the batch of the input.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from spikeconv._fx import add_submodule
from spikeconv.errors import ConfigError, ConversionError, UnsupportedLayerError
from spikeconv.neurons import (
    BinarySpikingNeuron,
    BistableIFNeuron,
    IFNeuron,
    MultiThresholdLIF,
    Reset,
    SinCorrection,
    SpikingMaxPool2d,
    SpikingNetwork,
    SpikingNeuron,
    SynchronousDelay,
    binary_neuron_step,
    bistable_phase,
    if_step,
    isi_if_step,
    max_pool_gate_step,
    multi_spike_if_step,
    multi_threshold_step,
    repeat_over_time,
    signed_if_step,
)
from spikeconv.neurons.sin_correction import IsiState

__all__ = ["NeuronStep", "StateSpec", "StepGraph", "build_step_graph", "register_step_form", "step_form_of"]

StepFunction = Callable[..., tuple[Tensor, ...]]
"""``(x, *state) -> (output, *next_state)`` for one neuron and one step."""


@dataclass(frozen=True)
class NeuronStep:
    """One neuron's explicit-state step: state names, initial state (batch 1) and the pure step.

    ``unbatched`` names the states without a batch dimension (a step counter).
    """

    names: tuple[str, ...]
    initial: tuple[Tensor, ...]
    step: StepFunction
    unbatched: tuple[str, ...] = ()


StepForm = Callable[[nn.Module, tuple[int, ...]], NeuronStep]
"""``(neuron module, its one-step input shape with batch 1) -> NeuronStep``; raises to refuse a variant.

A form registered with ``all_inputs=True`` gets the shapes of all its tensor inputs (a tuple of shapes) and its step
takes them all: ``(x_1, ..., x_n, *state)`` (the spike-equivalent operators of transformers)."""

_STEP_FORMS: dict[type, StepForm] = {}
_ALL_INPUTS: set[type] = set()


def register_step_form(cls: type, form: StepForm, *, all_inputs: bool = False) -> None:
    """Let :func:`build_step_graph` export neurons of exactly type ``cls`` (subclasses need their own form,
    since they may change the dynamics).

    Raises:
        ConfigError: ``cls`` already has a form.
    """
    if cls in _STEP_FORMS:
        raise ConfigError(f"a step form is already registered for {cls.__name__}")
    _STEP_FORMS[cls] = form
    if all_inputs:
        _ALL_INPUTS.add(cls)


def step_form_of(module: nn.Module) -> StepForm | None:
    """The registered form of ``module``'s exact type, or None."""
    return _STEP_FORMS.get(type(module))


@dataclass(frozen=True)
class StateSpec:
    """One state tensor of the step graph: where it comes from and where it starts."""

    node: str
    kind: str
    name: str
    initial: Tensor
    batched: bool = True
    """Whether dimension 0 is the batch (1 at the start); False for a step counter of shape [1]."""


@dataclass(frozen=True)
class StepGraph:
    """``module(x, *states) -> (readout, *next_states)``, the states in the order of ``states``."""

    module: fx.GraphModule
    states: tuple[StateSpec, ...]
    neurons: dict[str, str]


class _StepCall(nn.Module):
    """Holds the neuron (so its buffers stay with the graph) and calls its pure step."""

    def __init__(self, neuron: nn.Module, step: StepFunction) -> None:
        super().__init__()
        self.neuron = neuron
        self._step = step

    def forward(self, *inputs_and_state: Tensor) -> tuple[Tensor, ...]:
        return self._step(*inputs_and_state)


def _batch_like(state: Tensor, x: Tensor) -> Tensor:
    """A batch-1 initial state expanded to ``x``'s batch, for ops that do not broadcast (gather, cat)."""
    return state.expand(x.shape[0], *state.shape[1:])


def _if_threshold(neuron: IFNeuron, shape: tuple[int, ...]) -> Tensor:
    return neuron.broadcast_threshold(torch.zeros(shape)).detach().clone()


def _if_start(neuron: IFNeuron, shape: tuple[int, ...], th: Tensor) -> Tensor:
    return (neuron.v_init.float() * th + neuron.v_offset.float()).expand(shape).contiguous().detach().clone()


def _if_bias(neuron: IFNeuron) -> Tensor | None:
    """The bias current as IFNeuron adds it (only when set), or None."""
    return neuron.bias.detach().float().clone() if neuron.bias.dim() or neuron.bias.item() != 0.0 else None


def _if_form(neuron: nn.Module, shape: tuple[int, ...]) -> NeuronStep:
    """IFNeuron: soft/hard reset, burst Γ, bias/v_offset corrections, signed and ISI SIN correction."""
    assert isinstance(neuron, IFNeuron)
    th = _if_threshold(neuron, shape)
    start = _if_start(neuron, shape, th)
    bias = _if_bias(neuron)

    def charged(x: Tensor) -> Tensor:
        return x if bias is None else x + bias

    if neuron.sin_correction is SinCorrection.SIGNED:
        low = (2.0 * neuron.v_init.float() - 1.0) * th

        def signed(x: Tensor, v: Tensor, count: Tensor) -> tuple[Tensor, ...]:
            return signed_if_step(charged(x), v, count, th, low)

        return NeuronStep(("v", "count"), (start, torch.zeros(shape)), signed)
    if neuron.sin_correction is SinCorrection.ISI:
        allowance = neuron.isi_allowance

        def isi(x: Tensor, v: Tensor, count: Tensor, fired: Tensor, first: Tensor, last: Tensor, event: Tensor) -> tuple[Tensor, ...]:
            # Spike times are kept relative to the current step (the step is always t = 0), so no step
            # counter is needed: isi_if_step only uses differences of times, and every stored time moves
            # one step into the past afterwards.
            out, v, state = isi_if_step(charged(x), v, IsiState(count, fired, first, last, event), th, 0, allowance)
            return out, v, state.count, state.fired, state.first - 1.0, state.last - 1.0, state.last_event - 1.0

        zeros = torch.zeros(shape)
        return NeuronStep(("v", "count", "fired", "first", "last", "last_event"), (start, *(zeros.clone() for _ in range(5))), isi)
    if neuron.max_spikes > 1:
        gamma = neuron.max_spikes

        def burst(x: Tensor, v: Tensor) -> tuple[Tensor, ...]:
            return multi_spike_if_step(charged(x), v, th, gamma)

        return NeuronStep(("v",), (start,), burst)
    reset: Reset = neuron.reset

    def plain(x: Tensor, v: Tensor) -> tuple[Tensor, ...]:
        return if_step(charged(x), v, th, reset)

    return NeuronStep(("v",), (start,), plain)


def _bistable_form(neuron: nn.Module, shape: tuple[int, ...]) -> NeuronStep:
    """BistableIFNeuron: the phase depends on the step index, carried as a one-element counter."""
    assert isinstance(neuron, BistableIFNeuron)
    th = _if_threshold(neuron, shape)
    start = _if_start(neuron, shape, th)
    bias = neuron.bias.detach().float().clone()
    depth, half, gamma = neuron.depth, neuron.half_period, neuron.max_spikes

    def bistable(x: Tensor, v: Tensor, step: Tensor) -> tuple[Tensor, ...]:
        step = step + 1.0
        fire = bistable_phase(depth, step, half) > 0.5  # type: ignore[arg-type]  # tensor arithmetic, same formula
        integrated = v + x  # the module charges (v + x) + bias; multi_spike_if_step adds its x last
        fired_out, fired_v = multi_spike_if_step(bias.expand_as(integrated), integrated, th, gamma)
        out = torch.where(fire, fired_out, torch.zeros_like(fired_out))
        return out, torch.where(fire, fired_v, integrated + bias), step

    return NeuronStep(("v", "step"), (start, torch.zeros(1)), bistable, unbatched=("step",))


def _delay_form(neuron: nn.Module, shape: tuple[int, ...]) -> NeuronStep:
    """SynchronousDelay: a FIFO of the last ``delay`` inputs, stored batch-first ``[N, delay, ...]``."""
    assert isinstance(neuron, SynchronousDelay)

    def delay(x: Tensor, pending: Tensor) -> tuple[Tensor, ...]:
        queue = _batch_like(pending, x)
        return queue[:, 0], torch.cat([queue[:, 1:], x.unsqueeze(1)], dim=1)

    return NeuronStep(("pending",), (torch.zeros(shape[0], neuron.delay, *shape[1:]),), delay)


def _binary_form(neuron: nn.Module, shape: tuple[int, ...]) -> NeuronStep:
    """BinarySpikingNeuron (IF/LIF charge, soft/hard reset, MPR): membrane starts at 0."""
    assert isinstance(neuron, BinarySpikingNeuron)
    th, leak, config = neuron.threshold.detach().float().clone(), neuron.leak.detach().float().clone(), neuron.config

    def binary(x: Tensor, v: Tensor) -> tuple[Tensor, ...]:
        return binary_neuron_step(x, v, th, leak, config)

    return NeuronStep(("v",), (torch.zeros(shape),), binary)


def _multi_threshold_form(neuron: nn.Module, shape: tuple[int, ...]) -> NeuronStep:
    """MultiThresholdLIF: membrane starts at 0."""
    assert isinstance(neuron, MultiThresholdLIF)
    th, decay, config = neuron.threshold.detach().float().clone(), neuron.decay.detach().float().clone(), neuron.config

    def multi(x: Tensor, v: Tensor) -> tuple[Tensor, ...]:
        return multi_threshold_step(x, v, th, decay, config)

    return NeuronStep(("v",), (torch.zeros(shape),), multi)


def _max_pool_form(neuron: nn.Module, shape: tuple[int, ...]) -> NeuronStep:
    """SpikingMaxPool2d: cumulative input and output; the gate gathers, so state is expanded to the batch."""
    assert isinstance(neuron, SpikingMaxPool2d)
    if len(shape) != 4:
        raise ConversionError(f"spiking max-pool expects [N, C, H, W] per step, got {shape}")
    pool = dict(neuron.pool)
    cumulative = torch.zeros(shape)

    def gate(x: Tensor, total: Tensor, emitted: Tensor) -> tuple[Tensor, ...]:
        return max_pool_gate_step(x, _batch_like(total, x), emitted.expand(x.shape[0], *emitted.shape[1:]), pool)

    return NeuronStep(("cumulative", "emitted"), (cumulative, F.max_pool2d(cumulative, **pool)), gate)


register_step_form(IFNeuron, _if_form)
register_step_form(BistableIFNeuron, _bistable_form)
register_step_form(SynchronousDelay, _delay_form)
register_step_form(BinarySpikingNeuron, _binary_form)
register_step_form(MultiThresholdLIF, _multi_threshold_form)
register_step_form(SpikingMaxPool2d, _max_pool_form)


class _InputShapes(fx.Interpreter):
    """Runs the body once and records the input shape of every neuron call."""

    def __init__(self, gm: fx.GraphModule, nodes: set[fx.Node]) -> None:
        super().__init__(gm)
        self.nodes = nodes
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.all_shapes: dict[str, tuple[tuple[int, ...], ...]] = {}

    def run_node(self, n: fx.Node):  # noqa: ANN201 - fx's signature
        if n in self.nodes:
            args, _ = self.fetch_args_kwargs_from_env(n)
            self.shapes[n.name] = tuple(args[0].shape)
            self.all_shapes[n.name] = tuple(tuple(a.shape) for a in args if isinstance(a, Tensor))
        return super().run_node(n)


def _neuron_input_shapes(
    snn: SpikingNetwork, body: fx.GraphModule, nodes: set[fx.Node], input_shape: Sequence[int]
) -> dict[str, tuple[int, ...]]:
    x = snn.encoding.encode(torch.zeros(1, *input_shape), 1, 0)
    recorder = _InputShapes(body, nodes)
    try:
        with torch.no_grad():
            recorder.run(x, 1)
    except Exception as error:  # any failure here is a network/input-shape mismatch the user must fix
        raise ConversionError(f"cannot run the SNN on one step of input shape {tuple(input_shape)}: {error}".splitlines()[0]) from None
    finally:
        for module in body.modules():
            if isinstance(module, SpikingNeuron):
                module.reset_state()
    return {name: recorder.all_shapes[name] if type(body.get_submodule(str(node.target))) in _ALL_INPUTS else shape
            for node in nodes for name, shape in [(node.name, recorder.shapes[node.name])]}  # fmt: skip


def _replace_steps(value: object, steps: fx.Node) -> object:
    return fx.node.map_arg(value, lambda a: 1 if a is steps else a)  # type: ignore[return-value]


def build_step_graph(snn: SpikingNetwork, input_shape: Sequence[int]) -> StepGraph:
    """The one-step, explicit-state form of ``snn`` for inputs ``[N, *input_shape]``.

    Raises:
        UnsupportedLayerError: A neuron (or a module holding neurons) has no step form; the message names the node.
        ConversionError: The body is not a spikeconv fx graph ``body(x, num_steps)``.
    """
    if not isinstance(snn, SpikingNetwork) or not isinstance(snn.body, fx.GraphModule):
        raise ConversionError("a step graph needs a SpikingNetwork whose body is a torch.fx graph (made by convert or spikify)")
    gm = copy.deepcopy(snn.body).cpu().float()  # the copy is transformed; the exported graph is float32 on the CPU
    for module in gm.modules():
        if isinstance(module, SpikingNeuron):
            module.reset_state()
    graph = gm.graph
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 2:
        raise ConversionError(f"the SNN body must take (x, num_steps), it takes {len(placeholders)} inputs")
    steps = placeholders[1]
    neuron_nodes: dict[fx.Node, nn.Module] = {}
    for node in graph.nodes:
        if node.op != "call_module":
            continue
        module = gm.get_submodule(str(node.target))
        if isinstance(module, SpikingNeuron):
            neuron_nodes[node] = module
        elif any(isinstance(m, SpikingNeuron) for m in module.modules()):
            raise UnsupportedLayerError(f"cannot export node {node.name}: module {type(module).__name__} holds spiking neurons inside; "
                                        "only neurons called directly by the graph can become explicit state")  # fmt: skip
    for node, module in neuron_nodes.items():
        if step_form_of(module) is None:
            known = ", ".join(sorted(cls.__name__ for cls in _STEP_FORMS))
            raise UnsupportedLayerError(
                f"cannot export neuron {node.name} ({type(module).__name__}) as one step: no step form; supported: {known}"
            )
    shapes = _neuron_input_shapes(snn, gm, set(neuron_nodes), input_shape)
    states: list[StateSpec] = []
    next_states: list[fx.Node] = []
    last_input = steps
    kinds: dict[str, str] = {}
    for node, module in neuron_nodes.items():
        form = step_form_of(module)
        assert form is not None
        try:
            neuron_step = form(module, shapes[node.name])
        except (ConversionError, ConfigError) as error:
            raise UnsupportedLayerError(f"cannot export neuron {node.name} ({type(module).__name__}): {error}") from None
        kinds[node.name] = type(module).__name__
        placeholders_here = []
        for state_name, initial in zip(neuron_step.names, neuron_step.initial, strict=True):
            with graph.inserting_after(last_input):
                last_input = graph.placeholder(f"{node.name}__{state_name}")
            placeholders_here.append(last_input)
            states.append(StateSpec(node=node.name, kind=state_name, name=f"{node.name}.{state_name}", initial=initial,
                                    batched=state_name not in neuron_step.unbatched))  # fmt: skip
        wrapper = add_submodule(gm, f"_step_{node.name}", _StepCall(module, neuron_step.step))
        data = tuple(a for a in node.args if a is not steps) if type(module) in _ALL_INPUTS else (node.args[0],)
        with graph.inserting_after(node):
            call = graph.call_module(wrapper, (*data, *placeholders_here))
        with graph.inserting_after(call):
            outputs = [graph.call_function(operator.getitem, (call, i)) for i in range(len(placeholders_here) + 1)]
        node.replace_all_uses_with(outputs[0])
        graph.erase_node(node)
        next_states.extend(outputs[1:])
    for node in list(graph.nodes):
        if node.op == "call_function" and node.target is repeat_over_time:
            node.replace_all_uses_with(node.args[0])  # type: ignore[arg-type]
            graph.erase_node(node)
    for node in graph.nodes:
        if node is not steps:
            node.args = _replace_steps(node.args, steps)  # type: ignore[assignment]
            node.kwargs = _replace_steps(node.kwargs, steps)  # type: ignore[assignment]
    graph.erase_node(steps)
    output = next(n for n in graph.nodes if n.op == "output")
    readout = output.args[0]
    output.args = ((readout, *next_states),)
    gm.delete_all_unused_submodules()
    graph.lint()
    gm.recompile()
    gm.eval()
    return StepGraph(module=gm, states=tuple(states), neurons=kinds)

from spikeconv.files import step_operators as _step_operators  # noqa: E402, F401  (registers the transformer operators' form)
