"""What one timestep costs, so that accuracy per T is comparable across neuron kinds.

A binary neuron sends one bit per step; a burst or multi-threshold neuron that may emit 0..Γ spikes
sends up to ``log2(Γ + 1)`` bits, and a signed (SIN-corrected) one −1, 0 or +1, ``log2 3``. A T = 2
result with Γ = 4 therefore carries as much per neuron as a binary T ≈ 4.6 one, and reporting it
as "T = 2" alone would flatter it (H-MT, AAAI 2026; Li & Zeng 2022 report spikes per step for the
same reason). :func:`step_cost` gives, per spiking layer and for the network (weighted by neurons
per sample), the number of output levels, the bits per neuron-step and the *bit-steps*
``T · bits``, the binary-equivalent length; with an :class:`~spikeconv.evaluation.OperationCounts`
it adds the measured spikes per neuron per step.
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from spikeconv.neurons import IFNeuron, MultiThresholdLIF, SinCorrection, SpikeRecorder, SpikingNetwork

__all__ = ["output_levels", "step_cost"]


def output_levels(neuron: nn.Module) -> int:
    """How many different outputs one neuron can send in one step (2 for a binary spike)."""
    if isinstance(neuron, IFNeuron):
        if neuron.sin_correction is not SinCorrection.NONE:
            return 3  # −θ, 0, +θ
        return int(neuron.max_spikes) + 1
    if isinstance(neuron, MultiThresholdLIF):
        return int(neuron.config.max_spikes) + 1
    spikes = getattr(neuron, "spikes_per_step", None) or getattr(neuron, "max_spikes", None)
    return int(spikes) + 1 if isinstance(spikes, int) and spikes > 0 else 2


def step_cost(snn: SpikingNetwork, sizes: dict[str, int] | None = None, counts: Any = None) -> dict[str, Any]:
    """Bits per neuron-step of ``snn`` (and spikes per neuron-step if ``counts`` is given).

    Args:
        snn: The network.
        sizes: Neurons per sample by layer name; from ``counts`` when None (then layers without a size weigh 1).
        counts: An :class:`~spikeconv.evaluation.OperationCounts` of a simulation of ``snn``.

    Returns:
        ``{"layers": {name: {"levels", "bits_per_neuron_step"}}, "bits_per_neuron_step": b,
        "max_levels": L, "binary": bool, "spikes_per_neuron_step": [per step] (with counts)}``.
    """
    recorded = {n.name: n for n in counts.neurons} if counts is not None else {}
    sizes = dict(sizes or {name: n.size for name, n in recorded.items()})
    layers: dict[str, dict[str, Any]] = {}
    weighted, total = 0.0, 0
    for name, neuron in snn.neurons():
        if not isinstance(neuron, SpikeRecorder):
            continue
        levels = output_levels(neuron)
        bits = math.log2(levels)
        layers[name] = {"levels": levels, "bits_per_neuron_step": round(bits, 4)}
        weight = sizes.get(name, 1)
        weighted += bits * weight
        total += weight
    bits = weighted / total if total else 1.0
    levels = max((layer["levels"] for layer in layers.values()), default=2)
    cost: dict[str, Any] = {"layers": layers, "bits_per_neuron_step": round(bits, 4), "max_levels": levels, "binary": levels == 2}
    if counts is not None and counts.neurons:
        neurons = sum(n.size for n in counts.neurons) * counts.samples
        steps = counts.timesteps
        cost["spikes_per_neuron_step"] = [round(sum(n.spikes[t] for n in counts.neurons) / neurons, 6) for t in range(steps)]
    return cost
