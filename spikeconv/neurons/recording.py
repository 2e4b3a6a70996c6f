"""What spike counting asks of a neuron: how many spikes one step's output holds.

A neuron module whose output is spikes implements :class:`SpikeRecorder` (``spike_counts``);
:func:`spikeconv.evaluation.count_operations` counts exactly the modules that do. Stateful modules
that only gate or delay spikes (:class:`~spikeconv.neurons.SpikingMaxPool2d`,
:class:`~spikeconv.neurons.SynchronousDelay`) make none, so they do not implement it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor

__all__ = ["SpikeRecorder"]


@runtime_checkable
class SpikeRecorder(Protocol):
    """A neuron whose output can be read as spike counts."""

    def spike_counts(self, step_output: Tensor) -> Tensor:
        """Spikes per unit in one step's output ``[N, ...]`` (non-negative, same shape).

        A retracted (negative) spike counts as a spike, so counts are magnitudes.
        """
        ...
