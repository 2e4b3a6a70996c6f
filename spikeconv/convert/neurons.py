"""The converted-neuron registry: which neuron an activation site becomes, by :class:`NeuronKind`.

A kind is a per-site ``build(threshold, config)`` (the neuron :func:`convert` installs at each
site, named after it, before the graph is made time-aware) and an optional graph pass
``finish(gm, sites, kinds, steps, config)`` run after the time layout (e.g. the bistable
reconstruction, which needs each neuron's depth and inserts synchronous delays). What ``finish``
returns is recorded in the SNN's metadata under the kind's name. Adding a neuron kind: a member of
``NeuronKind``, a module with its builder, and one :func:`register_converted_neuron` call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import fx

from spikeconv.convert.bistable import make_bistable_
from spikeconv.convert.config import ConvertConfig, NeuronKind
from spikeconv.convert.time_layout import TimeKind
from spikeconv.errors import ConfigError
from spikeconv.neurons import IFNeuron, SpikingNeuron
from spikeconv.neurons.floored_if import FlooredIFNeuron

NeuronBuilder = Callable[[tuple[float, ...], ConvertConfig], SpikingNeuron]
"""``(planned thresholds of the site, config) -> neuron`` for one site; the neuron takes ``set_corrections``."""

GraphPass = Callable[[fx.GraphModule, set[fx.Node], dict[fx.Node, TimeKind], fx.Node, ConvertConfig], dict[str, Any]]
"""``(gm, neuron sites, time kinds, num_steps node, config) -> metadata``, changing ``gm`` in place."""


@dataclass(frozen=True)
class ConvertedNeuron:
    """How :func:`convert` builds one neuron kind."""

    build: NeuronBuilder
    finish: GraphPass | None = None


CONVERTED_NEURONS: dict[NeuronKind, ConvertedNeuron] = {}
"""Every neuron kind conversion can produce."""


def register_converted_neuron(kind: NeuronKind, builder: NeuronBuilder, finish: GraphPass | None = None) -> None:
    """Let conversion build ``kind``: ``builder`` per site, then ``finish`` over the whole graph.

    Raises:
        ConfigError: ``kind`` is already registered.
    """
    if kind in CONVERTED_NEURONS:
        raise ConfigError(f"converted neuron {kind.value!r} is already registered")
    CONVERTED_NEURONS[kind] = ConvertedNeuron(builder, finish)


def available_converted_neurons() -> list[str]:
    """The registered kinds' names, in registration order."""
    return [kind.value for kind in CONVERTED_NEURONS]


def converted_neuron(kind: NeuronKind) -> ConvertedNeuron:
    """The registered builder of ``kind``.

    Raises:
        ConfigError: Nothing is registered for ``kind``.
    """
    if kind not in CONVERTED_NEURONS:
        raise ConfigError(f"no converted neuron is registered for {kind!r}; "
                          f"choose one of {', '.join(available_converted_neurons())}")  # fmt: skip
    return CONVERTED_NEURONS[kind]


def if_neuron(threshold: tuple[float, ...], config: ConvertConfig) -> IFNeuron:
    """The IF neuron of one site (burst spikes and SIN correction as the config says; a target's membrane floor)."""
    if config.target is not None and config.target.membrane_floor is not None:
        return FlooredIFNeuron(threshold, floor=config.target.membrane_floor, v_init=config.v_init, reset=config.reset,
                               max_spikes=config.max_spikes)  # fmt: skip
    return IFNeuron(threshold, v_init=config.v_init, reset=config.reset, kernel=config.kernel,
                    max_spikes=config.max_spikes, sin_correction=config.sin_correction,
                    isi_allowance=config.isi_allowance)  # fmt: skip


def _bistable(gm: fx.GraphModule, sites: set[fx.Node], kinds: dict[fx.Node, TimeKind], steps: fx.Node,
              config: ConvertConfig) -> dict[str, Any]:  # fmt: skip
    return make_bistable_(gm, sites, kinds, steps, config.bistable)


register_converted_neuron(NeuronKind.IF, if_neuron)
register_converted_neuron(NeuronKind.BISTABLE, if_neuron, _bistable)  # IF neurons, made bistable once depths are known
