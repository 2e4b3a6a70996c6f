"""Per-step spike and operation counts of one evaluated network, and their totals up to a step T.

The counters (:mod:`spikeconv.evaluation.counters`) record, for every counted layer, the number
of operations at each simulated step summed over all samples; the cost of running the network
for only the first ``T`` steps is then the prefix sum up to ``T``, divided by the number of
samples. That is what :meth:`OperationCounts.totals` returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spikeconv.errors import ConfigError, DataError

__all__ = ["LayerOps", "NeuronOps", "OperationCounts"]


@dataclass(frozen=True)
class LayerOps:
    """Operations of one conv/linear/pool layer at each step, summed over samples.

    Attributes:
        name: Module path in the network (``conv1_bn``, ``classifier``, ...).
        kind: ``"conv"``, ``"linear"`` or ``"pool"``; for a transformer operation its name (``"layer_norm"``,
            ``"gelu"``, ``"softmax"``, ``"product"``, ``"attention"``), counted as MACs (``evaluation/operator_costs.py``).
        ac: Accumulates at each step (spike-driven synaptic operations, pool additions).
        mac: Multiply-accumulates at each step (layers fed the analog input; every ANN layer).
        static: The layer ran once on an input that is the same at every step (a direct-encoded
            image before the first neuron); its per-step count repeats one computation.
    """

    name: str
    kind: str
    ac: tuple[float, ...]
    mac: tuple[float, ...]
    static: bool = False


@dataclass(frozen=True)
class NeuronOps:
    """Spikes of one spiking layer at each step, summed over samples.

    Attributes:
        name: Module path of the neuron (named after the ReLU it replaces).
        size: Neurons per sample.
        spikes: Spikes at each step (a burst or multi-spike output of k counts k).
        events: Neurons that emitted anything at each step (a burst counts once).
    """

    name: str
    size: int
    spikes: tuple[float, ...]
    events: tuple[float, ...]


def _prefix(values: tuple[float, ...], t: int) -> float:
    return float(sum(values[:t]))


@dataclass(frozen=True)
class OperationCounts:
    """Everything the counters saw during one evaluation (see :func:`count_operations`).

    Attributes:
        samples: Samples simulated (the per-sample averages divide by this).
        spiking: Whether the network was a SpikingNetwork (else an ANN, one "step" per forward).
        layers: Counted conv/linear/pool layers, in first-call order.
        neurons: Spiking layers, in first-call order (empty for an ANN).
    """

    samples: int
    spiking: bool
    layers: tuple[LayerOps, ...]
    neurons: tuple[NeuronOps, ...] = ()

    @property
    def timesteps(self) -> int:
        """Steps simulated (1 for an ANN)."""
        lengths = [len(layer.ac) for layer in self.layers] + [len(n.spikes) for n in self.neurons]
        return max(lengths, default=0)

    def _check_t(self, t: int | None) -> int:
        if self.samples < 1:
            raise DataError("no samples were counted; run the network inside count_operations first")
        if t is None:
            return self.timesteps
        if not self.spiking:
            raise ConfigError("an ANN has no timesteps; call totals() without t")
        if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= self.timesteps:
            raise ConfigError(f"t must be an integer in 1..{self.timesteps} (the steps simulated), got {t!r}")
        return t

    def totals(self, t: int | None = None) -> dict[str, Any]:
        """Per-sample cost of the first ``t`` steps (all of them by default; ANN: ``t=None``).

        Returns:
            ``{"timesteps", "ac", "mac", "static_ac", "static_mac", "spikes", "events", "neurons",
            "spike_rate", "layers", "spike_rates"}``: operations and spikes per sample (``static_*``:
            the part from layers with a time-invariant input), the number of spiking neurons,
            spikes per neuron per step overall, per counted layer ``{"kind", "ac", "mac",
            "static"}`` and per spiking layer its spikes per neuron per step.
        """
        steps = self._check_t(t)
        n = self.samples
        layers = {
            layer.name: {"kind": layer.kind, "ac": _prefix(layer.ac, steps) / n, "mac": _prefix(layer.mac, steps) / n,
                         "static": layer.static}
            for layer in self.layers
        }  # fmt: skip
        spikes = {neuron.name: _prefix(neuron.spikes, steps) / n for neuron in self.neurons}
        events = sum(_prefix(neuron.events, steps) for neuron in self.neurons) / n
        size = sum(neuron.size for neuron in self.neurons)
        return {
            "timesteps": steps if self.spiking else None,
            "ac": sum(v["ac"] for v in layers.values()),
            "mac": sum(v["mac"] for v in layers.values()),
            "static_ac": sum(v["ac"] for v in layers.values() if v["static"]),
            "static_mac": sum(v["mac"] for v in layers.values() if v["static"]),
            "spikes": sum(spikes.values()),
            "events": events,
            "neurons": size,
            "spike_rate": sum(spikes.values()) / (size * steps) if size else 0.0,
            "layers": layers,
            "spike_rates": {neuron.name: spikes[neuron.name] / (neuron.size * steps) for neuron in self.neurons},
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON form (inverse of :meth:`from_dict`)."""
        return {
            "samples": self.samples,
            "spiking": self.spiking,
            "layers": [{"name": x.name, "kind": x.kind, "ac": list(x.ac), "mac": list(x.mac), "static": x.static}
                       for x in self.layers],  # fmt: skip
            "neurons": [{"name": x.name, "size": x.size, "spikes": list(x.spikes), "events": list(x.events)}
                        for x in self.neurons],  # fmt: skip
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OperationCounts:
        """Rebuild counts from :meth:`to_dict` output.

        Raises:
            DataError: A key is missing or malformed.
        """
        try:
            layers = tuple(LayerOps(str(x["name"]), str(x["kind"]), tuple(map(float, x["ac"])), tuple(map(float, x["mac"])),
                                    bool(x.get("static", False))) for x in data["layers"])  # fmt: skip
            neurons = tuple(NeuronOps(str(x["name"]), int(x["size"]), tuple(map(float, x["spikes"])),
                                      tuple(map(float, x["events"]))) for x in data.get("neurons", []))  # fmt: skip
            return cls(samples=int(data["samples"]), spiking=bool(data["spiking"]), layers=layers, neurons=neurons)
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(f"invalid operation counts ({type(error).__name__}: {error})") from None
