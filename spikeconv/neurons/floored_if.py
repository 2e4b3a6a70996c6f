"""An integrate-and-fire neuron whose membrane is clamped from below after every step (sinabs' IAF).

sinabs' ``IAF``/``IAFSqueeze`` (3.1.3, ``layers/functional/lif.py``), which its NIR importer builds
for every ``IF`` node, floors the membrane at ``min_v_mem = −v_threshold`` after the reset; a
converted IF neuron has no floor, so a strongly inhibited neuron charges back from far below zero
in spikeconv and from −θ in sinabs. This neuron adds that floor, computed as sinabs computes it, so
that a network converted for sinabs simulates in spikeconv exactly as sinabs runs it.

Equations (per step; θ per layer or per channel, ``f = floor``)::

    H = V + X (+ bias)
    S = clip(⌊H / θ⌋, 0, Γ)                 sinabs: (H > 0)·trunc(H / θ), the same numbers
    V = H − θ·S        (soft reset)         or  V = H·(1 − S)  (hard reset, Γ = 1)
    V = relu(V + f·θ) − f·θ                 sinabs: relu(v − min_v_mem) + min_v_mem
    output = θ·S

Shapes: as :class:`~spikeconv.neurons.IFNeuron` (input ``[K·N, C, ...]`` or static ``[N, C, ...]``,
output ``[K·N, C, ...]``). One pure-torch step loop; it is never fused with the layer after it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from spikeconv.errors import ConfigError, ConversionError
from spikeconv.neurons.if_neuron import IFNeuron
from spikeconv.neurons.strategies import Kernel, Reset

__all__ = ["FlooredIFNeuron"]


class FlooredIFNeuron(IFNeuron):
    """IF neuron with a membrane floor at ``−floor·θ`` (see the module docstring).

    Args:
        threshold: θ, one value (per layer) or one per channel.
        floor: The floor, as a multiple of θ (sinabs: 1).
        v_init: Initial membrane as a fraction of θ.
        reset: Reset rule.
        max_spikes: Γ, the most spikes per step.
    """

    def __init__(self, threshold: float | Sequence[float] | Tensor, *, floor: float, v_init: float = 0.0,
                 reset: Reset = Reset.SUBTRACT, max_spikes: int = 1) -> None:  # fmt: skip
        super().__init__(threshold, v_init=v_init, reset=reset, kernel=Kernel.REFERENCE, max_spikes=max_spikes)
        if not float(floor) > 0:
            raise ConfigError(f"the membrane floor must be > 0 (a floor at −floor·θ), got {floor}")
        self.register_buffer("floor", torch.tensor(float(floor)))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, floor=-{self.floor.item():g}·θ"

    def forward(self, x: Tensor, num_steps: int, static: bool = False) -> Tensor:
        if not static and x.shape[0] % num_steps:
            raise ConversionError(f"input batch {x.shape[0]} is not a multiple of num_steps={num_steps}")
        steps = [x] * num_steps if static else list(x.reshape(num_steps, x.shape[0] // num_steps, *x.shape[1:]))
        th = self.broadcast_threshold(steps[0])
        bias = self.bias.to(x.dtype) if self.bias.dim() or self.bias.item() != 0.0 else None
        if self._v is None or self._v.shape != steps[0].shape:
            start = self.v_init.to(x.dtype) * th + self.v_offset.to(x.dtype)
            self._v = start.expand(steps[0].shape).clone()
        low = -self.floor.to(x.dtype) * th
        outputs = []
        v = self._v
        for current in steps:
            h = v + (current if bias is None else current + bias)
            spikes = torch.clamp(torch.floor(h / th), 0, self.max_spikes)
            v = h - spikes * th if self.reset is Reset.SUBTRACT else h * (1.0 - spikes)
            v = torch.relu(v - low) + low
            outputs.append(spikes * th)
        self._v = v
        return torch.cat(outputs) if outputs else x[:0]

    def forward_pooled(self, *args, **kwargs) -> Tensor:  # the fused pool kernels know no floor
        raise ConversionError("a floored IF neuron is never fused with a pooling layer")
