"""SpikingNetwork: the runnable SNN that conversion and direct training both produce."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from torch import Tensor, nn

from spikeconv.errors import ConfigError, DataError
from spikeconv.neurons.encoding import DirectEncoding, Encoding
from spikeconv.neurons.fusion import fused_body
from spikeconv.neurons.if_neuron import SpikingNeuron


def check_timesteps(num_steps: int) -> int:
    """Validate a timestep count: an int ≥ 1."""
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ConfigError(f"timesteps must be an integer >= 1, got {num_steps!r}")
    return num_steps


class SpikingNetwork(nn.Module):
    """A spiking network simulated for ``T`` timesteps; owns T and the neurons' state.

    The body (a converted fx graph, or a directly trained network) takes ``(x, num_steps)``: ``x`` is the encoded input (the raw sample for
    direct encoding), every intermediate tensor is time-flattened ``[K·N, ...]``, and the output
    is the readout layer's input current at each step. The readout does not spike: summing its
    current over steps is the accumulated membrane, and the prediction after ``t`` steps is the
    argmax of that sum.

    Where nothing observes them, each IF neuron and the average pool after it run as one pass
    (:mod:`spikeconv.neurons.fusion`; same results). Every forward starts from fresh membranes.
    ``time_chunk`` bounds memory by simulating ``K`` steps at a time (state carries across chunks
    within one forward); the result does not depend on it.

    Args:
        body: Module called as ``body(x, num_steps)`` holding :class:`SpikingNeuron` modules.
        encoding: Input encoder.
        timesteps: Default number of steps when ``forward`` gets none.
        time_chunk: Steps simulated per graph call (``None``: all at once).
        metadata: JSON-serialisable facts about how the network was made (plan, preprocessing).
    """

    def __init__(
        self,
        body: nn.Module,
        *,
        encoding: Encoding | None = None,
        timesteps: int = 32,
        time_chunk: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.body = body
        self.encoding = encoding if encoding is not None else DirectEncoding()
        self.timesteps = check_timesteps(timesteps)
        self.time_chunk = None if time_chunk is None else check_timesteps(time_chunk)
        self.metadata = dict(metadata or {})

    def neurons(self) -> Iterator[tuple[str, SpikingNeuron]]:
        """(name, neuron) for every spiking neuron, in module order."""
        for name, module in self.body.named_modules():
            if isinstance(module, SpikingNeuron):
                yield name, module

    def forward(self, x: Tensor, num_steps: int | None = None) -> Tensor:
        """Simulate ``num_steps`` steps; returns the readout current per step, ``[T, N, K]``."""
        total = check_timesteps(self.timesteps if num_steps is None else num_steps)
        if x.dim() < 1 or x.shape[0] == 0:
            raise DataError(f"expected a non-empty batch [N, ...], got shape {tuple(x.shape)}")
        for _, neuron in self.neurons():
            neuron.reset_state()
        chunk = self.time_chunk or total
        body = fused_body(self.body)  # the same graph with neuron→pool pairs in one pass where nothing watches them
        readout = None
        for first in range(0, total, chunk):
            steps = min(chunk, total - first)
            encoded = self.encoding.encode(x, steps, first)
            out = body(encoded, steps)
            piece = out.reshape(steps, x.shape[0], *out.shape[1:])
            if steps == total:
                readout = piece
            else:  # one [T, N, K] buffer filled chunk by chunk: no list of pieces and concatenated copy at once
                readout = piece.new_empty((total, *piece.shape[1:])) if readout is None else readout
                readout[first : first + steps] = piece
            del out, piece
        for _, neuron in self.neurons():
            neuron.reset_state()
        return readout
