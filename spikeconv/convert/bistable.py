"""BSNN conversion (reconstruction): bistable neurons in anti-phase, synchronous delays at joins.

Every IF neuron of a converted graph becomes a :class:`~spikeconv.neurons.BistableIFNeuron`
whose phase offset is its *spiking depth* (the most neurons on any path from the input to it,
counting itself), so adjacent layers alternate between integrating and firing. Where paths of
different depth meet (a residual ``add``, a ``cat``), the shallower time-varying inputs get a
:class:`~spikeconv.neurons.SynchronousDelay` of ``(depth difference) × P`` steps, so both reach
the join in the same phase (BSNN's synchronous neurons, methods.md §4.3). Before/after for a
BasicBlock join ``add = relu0 + bn2`` (depths 1 and 3, P = 1)::

    add = relu0 + conv2
    relu0_sync = self.relu0_sync(relu0, num_steps); add = relu0_sync + conv2
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx

from spikeconv._fx import add_submodule
from spikeconv.convert.time_layout import TimeKind
from spikeconv.errors import ConfigError
from spikeconv.neurons import IFNeuron
from spikeconv.neurons.bistable import BistableIFNeuron, SynchronousDelay

_JOINS = (operator.add, torch.add, torch.cat, torch.concat)


@dataclass(frozen=True)
class BistableConfig:
    """Parameters of the bistable reconstruction (methods.md §4.2-4.3).

    Args:
        half_period: P, steps in each state.
        spikes_per_step: s_max, spikes a neuron may emit per step in its fire state.
        synchronous: Insert synchronous delays where paths of different depth join.
    """

    half_period: int = 1
    spikes_per_step: int = 2
    synchronous: bool = True

    def __post_init__(self) -> None:
        if self.half_period < 1 or self.spikes_per_step < 1:
            raise ConfigError(f"bistable half_period and spikes_per_step must be >= 1, got {self.half_period}, "
                              f"{self.spikes_per_step}")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {"half_period": self.half_period, "spikes_per_step": self.spikes_per_step, "synchronous": self.synchronous}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> BistableConfig:
        data = data or {}
        return cls(int(data.get("half_period", 1)), int(data.get("spikes_per_step", 2)), bool(data.get("synchronous", True)))


def _depths(gm: fx.GraphModule, neurons: set[fx.Node]) -> dict[fx.Node, int]:
    depth: dict[fx.Node, int] = {}
    for node in gm.graph.nodes:
        inputs = [depth[i] for i in node.all_input_nodes if i in depth]
        depth[node] = max(inputs, default=0) + (1 if node in neurons else 0)
    return depth


def _to_bistable(neuron: IFNeuron, depth: int, config: BistableConfig) -> BistableIFNeuron:
    new = BistableIFNeuron(neuron.threshold, depth=depth, half_period=config.half_period,
                           spikes_per_step=config.spikes_per_step, v_init=float(neuron.v_init))  # fmt: skip
    new.set_corrections(bias=neuron.bias, v_offset=neuron.v_offset)
    return new


def make_bistable_(
    gm: fx.GraphModule, neurons: set[fx.Node], kinds: dict[fx.Node, TimeKind], steps: fx.Node, config: BistableConfig
) -> dict[str, Any]:
    """Replace the IF neurons of ``gm`` by bistable ones and synchronise joins (in place).

    Returns:
        What was done, for the SNN's metadata: depth per neuron and the delays inserted.
    """
    depth = _depths(gm, neurons)
    for node in neurons:
        gm.add_submodule(str(node.target), _to_bistable(gm.get_submodule(str(node.target)), depth[node], config))
    delays: dict[str, int] = {}
    if config.synchronous:
        for node in list(gm.graph.nodes):
            if node.op != "call_function" or node.target not in _JOINS:
                continue
            timed = [i for i in node.all_input_nodes if kinds.get(i) is TimeKind.DYNAMIC]
            deepest = max((depth[i] for i in timed), default=0)
            for inp in timed:
                lag = (deepest - depth[inp]) * config.half_period
                if lag > 0:
                    name = add_submodule(gm, f"{inp.name}_sync", SynchronousDelay(lag))
                    with gm.graph.inserting_after(inp):
                        delayed = gm.graph.call_module(name, (inp, steps))
                    node.replace_input_with(inp, delayed)
                    delays[name] = lag
    return {"depths": {str(n.target): depth[n] for n in neurons}, "delays": delays, **config.to_dict()}
