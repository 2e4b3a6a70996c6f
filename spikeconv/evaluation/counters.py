"""Count spikes and synaptic operations per timestep while a network is being evaluated.

:func:`count_operations` attaches forward hooks for the duration of a ``with`` block, so the
counts come from the very simulation that measures accuracy (one run of T_max steps gives every
T: the counts up to step t are prefix sums). What is counted, per step and summed over samples:

* **spiking layers** (every :class:`~spikeconv.neurons.SpikeRecorder`: IF and its burst/bistable/SIN
  variants, trainable neurons): spikes (an IF output ``θ·k`` is ``|k|`` spikes, negative spikes included;
  a multi-threshold LIF output ``k`` is ``k`` spikes) and events (neurons that emitted anything
  at that step);
* **conv/linear layers**: if the layer receives spikes (it runs after a spiking neuron),
  accumulates ``AC = Σ_i [s_i ≠ 0]·fanout(i)`` — one synaptic event per non-zero input, whatever
  its value (a burst of k spikes or a graded spike is one event; average pooling in between
  makes fractional inputs, still one event each). If it receives the analog input (it runs
  before the first neuron, e.g. the first conv of a direct-encoded image), the dense
  ``MAC = Σ_i fanout(i)`` at every step;
* **average pooling**: additions, counted like the conv case (AC per event and covering window
  on spikes, dense on analog input).

An ordinary ANN (any module not a :class:`~spikeconv.neurons.SpikingNetwork`) gets one "step"
per forward: the dense MACs of its conv/linear layers and the additions of its average pools.
Max pooling, BatchNorm (folded into the preceding layer), biases, the neurons' own updates and
memory traffic are not counted.

Time layout (``neurons/network.py``): layers before the first neuron may run once on ``[N, ...]``
(static) while later ones run on ``[K·N, ...]`` with ``K`` the steps of the current body call;
time chunks call the body several times. The hooks read ``N`` from the network's input and ``K``
from each body call, and keep a step offset across chunks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from spikeconv.errors import DataError
from spikeconv.evaluation.fanout import OP_MODULES, SYNAPTIC_MODULES, fanout_map
from spikeconv.evaluation.memory import probing
from spikeconv.evaluation.op_counts import LayerOps, NeuronOps, OperationCounts
from spikeconv.evaluation.operator_costs import is_priced_operator, operator_kind_of, operator_ops
from spikeconv.neurons import SpikeRecorder, SpikingNetwork
from spikeconv.neurons.expectation import SpikeEquivalentOperator
from spikeconv.runtime.distributed import all_gather_objects

__all__ = ["OperationCounter", "count_operations", "counts_bytes_per_step"]

BYTES_PER_COUNT = 128
"""Host bytes one per-step count of one layer costs: the tally's float, the result's tuple and dict, its JSON
(measured at 74 at T = 10⁶; rounded up)."""

COUNTED_NEURONS = (SpikeRecorder,)
"""Neurons whose spikes are counted: those with ``spike_counts`` (max-pool gates and delays forward spikes, they
make none)."""


@dataclass
class _Tally:
    """Per-step totals of one layer, grown as steps appear.

    The rows are float64 tensors on the simulation's device, so counting adds no host round trip per step;
    they are read once, by :meth:`OperationCounter.result`. Every count is a whole number, so the float64 sums
    are exact (below 2**53) in any order.
    """

    values: dict[str, Tensor] = field(default_factory=dict)

    def add(self, key: str, first: int, per_step: Tensor) -> None:
        row = self.values.get(key)
        end = first + per_step.shape[0]
        if row is None:
            row = torch.zeros(end, dtype=torch.float64, device=per_step.device)
        elif row.shape[0] < end:
            row = torch.cat([row, row.new_zeros(end - row.shape[0])])
        row[first:end] += per_step.to(row.device)
        self.values[key] = row

    def plain(self) -> dict[str, list[float]]:
        return {key: row.tolist() for key, row in self.values.items()}


class OperationCounter:
    """Hook state of :func:`count_operations`; read the totals with :meth:`result`.

    Not thread-safe; one counter per model and ``with`` block.
    """

    def __init__(self, model: nn.Module, *, shard: bool = False) -> None:
        self.model = model
        self.shard = shard
        self.spiking = isinstance(model, SpikingNetwork)
        self.samples = 0
        self._batch = 0  # N of the current forward
        self._steps = 1  # K of the current body call
        self._offset = 0  # steps simulated so far in this forward (time chunks)
        self._neuron_seen = False
        self._fanouts: dict[tuple[str, tuple[int, ...], torch.device], Tensor] = {}
        self._kinds: dict[str, str] = {}
        self._static: dict[str, bool] = {}  # ran once per forward on a time-invariant input
        self._sizes: dict[str, int] = {}
        self._tallies: dict[str, _Tally] = {}
        self._order: list[str] = []

    # ------------------------------------------------------------------ hooks
    def _on_forward(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        if probing():
            return
        x = args[0] if args else kwargs.get("x", kwargs.get("input"))
        if not isinstance(x, Tensor) or x.dim() < 1:
            raise DataError("operation counting needs the model's first argument to be a batch tensor [N, ...]")
        self._batch = int(x.shape[0])
        self.samples += self._batch
        self._offset, self._steps, self._neuron_seen = 0, 1, False

    def _on_body(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        if probing():
            return
        steps = args[1] if len(args) > 1 else kwargs.get("num_steps")
        self._steps = int(steps)
        self._neuron_seen = False

    def _after_body(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        if not probing():
            self._offset += self._steps

    def _tally(self, name: str) -> _Tally:
        if name not in self._tallies:
            self._tallies[name] = _Tally()
            self._order.append(name)
        return self._tallies[name]

    def _fanout(self, name: str, module: nn.Module, sample_shape: tuple[int, ...], device: torch.device) -> Tensor:
        key = (name, sample_shape, device)
        if key not in self._fanouts:
            self._fanouts[key] = fanout_map(module, sample_shape).to(device)
        return self._fanouts[key]

    def _layout(self, x: Tensor) -> str:
        """``"static"`` ([N, ...], same at every step) or ``"steps"`` ([K·N, ...])."""
        n, k = self._batch, self._steps
        if x.shape[0] == n * k:  # with K = 1 both layouts agree; the neuron order decides
            return "steps"
        if x.shape[0] == n:
            return "static"
        raise DataError(f"a layer received a batch of {x.shape[0]} rows, neither N={n} nor K·N={k * n}; "
                        "operation counting needs the time-flattened layout of SpikingNetwork")  # fmt: skip

    def _on_layer(self, name: str, module: nn.Module, args: tuple, output: Any) -> None:
        if probing():
            return
        x = args[0]
        kind = "pool" if not isinstance(module, SYNAPTIC_MODULES) else ("linear" if isinstance(module, nn.Linear) else "conv")
        self._kinds[name] = kind
        tally = self._tally(name)
        fanout = self._fanout(name, module, tuple(x.shape[1:]), x.device)
        if not self.spiking:
            dense = fanout.sum() * x.shape[0]
            tally.add("ac" if kind == "pool" else "mac", 0, dense.reshape(1))
            return
        layout = self._layout(x)
        steps = self._steps
        if steps > 1:  # with one step per call the two layouts cannot be told apart
            self._static[name] = self._static.get(name, True) and layout == "static"
        if layout == "static" or not self._neuron_seen:  # analog input: dense at every step
            dense = fanout.sum() * self._batch
            tally.add("ac" if kind == "pool" else "mac", self._offset, dense.expand(steps))
            return
        # one step at a time: a [K·N, ...] temporary of a large layer would cost gigabytes at T = 64
        flat_fanout = fanout.reshape(-1)
        sequence = x.reshape(steps, self._batch, -1)
        per_step = torch.stack([(sequence[t] != 0).sum(0, dtype=torch.float64) @ flat_fanout for t in range(steps)])
        tally.add("ac", self._offset, per_step)

    def _on_operator(self, name: str, module: nn.Module, args: tuple, output: Any) -> None:
        """A transformer operation (``evaluation/operator_costs.py``): dense arithmetic, so MACs. A spike-equivalent
        operator costs its operation at every step; one left as in the ANN (a time-invariant input) is counted at every
        step like a static layer."""
        if probing():
            return
        self._kinds[name] = operator_kind_of(module)
        ac, mac = operator_ops(module, args, output, self._batch)
        steps = self._steps if self.spiking else 1
        if self.spiking and not isinstance(module, SpikeEquivalentOperator):
            self._static[name] = True
        tally = self._tally(name)
        for key, value in (("ac", ac), ("mac", mac)):
            tally.add(key, self._offset if self.spiking else 0, torch.full((steps,), value, dtype=torch.float64))

    def _on_neuron(self, name: str, module: nn.Module, args: tuple, output: Any) -> None:
        if probing():
            return
        self._neuron_seen = True
        if not isinstance(output, Tensor):
            return
        steps = self._steps
        sequence = output.detach().reshape(steps, output.shape[0] // steps, *output.shape[1:])
        spikes, events = [], []
        for step in sequence:  # per step, to keep temporaries small
            counts = module.spike_counts(step)  # IF outputs θ·k are |k| spikes, retracted ones included
            spikes.append(counts.sum(dtype=torch.float64))
            events.append((step != 0).sum(dtype=torch.float64))
        self._sizes[name] = int(sequence[0, 0].numel())
        tally = self._tally(name)
        tally.add("spikes", self._offset, torch.stack(spikes))
        tally.add("events", self._offset, torch.stack(events))

    # ------------------------------------------------------------------ result
    def _state(self) -> dict[str, Any]:
        """The counts as plain Python values (what ranks exchange)."""
        return {"samples": self.samples, "order": list(self._order), "kinds": dict(self._kinds), "sizes": dict(self._sizes),
                "static": dict(self._static), "tallies": {name: tally.plain() for name, tally in self._tallies.items()}}  # fmt: skip

    def _merged_state(self) -> dict[str, Any]:
        """This rank's state, or with ``shard`` the sum over every rank (rank order; whole numbers, so exact)."""
        states = all_gather_objects(self._state()) if self.shard else [self._state()]
        merged = {"samples": 0, "order": [], "kinds": {}, "sizes": {}, "static": {}, "tallies": {}}
        for state in states:
            merged["samples"] += state["samples"]
            merged["order"] += [name for name in state["order"] if name not in merged["order"]]
            merged["kinds"].update(state["kinds"])
            merged["sizes"].update(state["sizes"])
            for name, flag in state["static"].items():
                merged["static"][name] = merged["static"].get(name, True) and flag
            for name, values in state["tallies"].items():
                rows = merged["tallies"].setdefault(name, {})
                for key, row in values.items():
                    total = rows.setdefault(key, [])
                    total.extend([0.0] * (len(row) - len(total)))
                    for index, value in enumerate(row):
                        total[index] += value
        return merged

    def result(self) -> OperationCounts:
        """The counts so far, as an immutable :class:`OperationCounts` (summed over ranks with ``shard``)."""
        state = self._merged_state()
        layers, neurons = [], []
        for name in state["order"]:
            values = state["tallies"][name]
            if name in state["sizes"]:
                neurons.append(NeuronOps(name=name, size=state["sizes"][name], spikes=tuple(values.get("spikes", ())),
                                         events=tuple(values.get("events", ()))))  # fmt: skip
            else:
                length = max(len(values.get("ac", ())), len(values.get("mac", ())))
                ac, mac = (tuple(values.get(k, ())) + (0.0,) * (length - len(values.get(k, ()))) for k in ("ac", "mac"))
                layers.append(LayerOps(name=name, kind=state["kinds"][name], ac=ac, mac=mac, static=state["static"].get(name, False)))
        return OperationCounts(samples=state["samples"], spiking=self.spiking, layers=tuple(layers), neurons=tuple(neurons))


def _named(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    prefix = "body." if isinstance(model, SpikingNetwork) else ""
    for name, module in model.named_modules():
        yield (name.removeprefix(prefix) or type(module).__name__), module


def counts_bytes_per_step(model: nn.Module) -> int:
    """Host bytes per simulated step that :func:`count_operations` keeps for ``model`` (two counts per layer)."""
    counted = sum(1 for _, m in _named(model) if isinstance(m, OP_MODULES) or isinstance(m, COUNTED_NEURONS))
    return 2 * counted * BYTES_PER_COUNT


@contextlib.contextmanager
def count_operations(model: nn.Module, *, shard: bool = False) -> Iterator[OperationCounter]:
    """Count spikes and operations of every forward of ``model`` inside the block.

    Example::

        with count_operations(snn) as counter:
            curve = timestep_accuracy_curve(snn, data, timesteps=64)
        counts = counter.result()          # counts.totals(8): cost of the first 8 steps

    The hooks are removed when the block ends, even on error; the model is otherwise untouched
    and its outputs do not change. The two one-sample runs by which a curve measures its memory
    footprint (:func:`~spikeconv.evaluation.memory.measure_footprint`) are not counted. With ``shard``
    (a curve sharded over torchrun's ranks) ``result()`` sums every rank's counts; all ranks must call it.
    """
    counter = OperationCounter(model, shard=shard)
    handles = [model.register_forward_pre_hook(counter._on_forward, with_kwargs=True)]
    if counter.spiking:
        handles.append(model.body.register_forward_pre_hook(counter._on_body, with_kwargs=True))
        handles.append(model.body.register_forward_hook(counter._after_body, with_kwargs=True))
    inner = {id(m) for op in model.modules() if isinstance(op, SpikeEquivalentOperator) for m in op.op.modules()}
    try:
        for name, module in _named(model):
            if id(module) in inner:  # the ANN operation a spike-equivalent operator evaluates: priced with it
                continue
            if isinstance(module, OP_MODULES):
                handles.append(module.register_forward_hook(lambda m, a, o, name=name: counter._on_layer(name, m, a, o)))
            elif is_priced_operator(module):  # LayerNorm, GELU, softmax, products: MACs (transformers)
                handles.append(module.register_forward_hook(lambda m, a, o, name=name: counter._on_operator(name, m, a, o)))
            elif counter.spiking and isinstance(module, COUNTED_NEURONS):
                handles.append(module.register_forward_hook(lambda m, a, o, name=name: counter._on_neuron(name, m, a, o)))
        yield counter
    finally:
        for handle in handles:
            handle.remove()
