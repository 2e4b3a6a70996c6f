"""Bistable IF neurons and synchronous delays: spikeconv's reconstruction of BSNN.

Li, Zhao, Zeng, "BSNN: Towards Faster and Better Conversion of Artificial Neural Networks to
Spiking Neural Networks with Bistable Neurons", arXiv:2105.12917 / Front. Neurosci. 2022. Only the
paper's abstract could be verified; the equations below are the reconstruction of methods.md §4
(a phase-alternating IF neuron), NOT the paper's own equations:

    phase(l, t) = ⌊(t − 1 + l·P) / P⌋ mod 2           l: spiking depth of the layer (1-based), P: half-cycle
    integrate state (phase 0):  V ← V + X[t];  no spike
    fire state      (phase 1):  V ← V + X[t];  S = clip(⌊V/θ⌋, 0, s_max);  V ← V − θ·S

Adjacent layers are in anti-phase, so each layer collects a whole half-cycle of its input before
releasing it, and the order in which excitation and inhibition arrive inside that window no
longer creates spikes of inactivated neurons. The first output appears after about L·P steps.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from spikeconv.errors import ConfigError, ConversionError
from spikeconv.neurons.if_neuron import IFNeuron, SpikingNeuron
from spikeconv.neurons.kernels import neuron_kernel
from spikeconv.neurons.strategies import Kernel
from spikeconv.neurons.workspace import reusable_empty


def bistable_phase(depth: int, step: int, half_period: int) -> int:
    """1 when the layer at spiking ``depth`` is in its fire state at (1-based) ``step``, else 0."""
    return ((step - 1 + depth * half_period) // half_period) % 2


class BistableIFNeuron(IFNeuron):
    """IF neuron that alternates between an integrate-only and a fire state (see module docstring).

    Shapes: as :class:`IFNeuron` (input ``[K·N, C, ...]`` or static ``[N, C, ...]``).

    Args:
        threshold: θ, per layer or per channel.
        depth: l, the layer's spiking depth (its phase offset is l·P).
        half_period: P, steps per state.
        spikes_per_step: s_max; 2 lets a layer that fires half the time carry a full-rate signal.
        v_init: Initial membrane as a fraction of θ.
        kernel: Which registered kernel runs the time loop.
    """

    def __init__(
        self,
        threshold: float | Sequence[float] | Tensor,
        *,
        depth: int,
        half_period: int = 1,
        spikes_per_step: int = 2,
        v_init: float = 0.5,
        kernel: Kernel = Kernel.INPLACE,
    ) -> None:
        super().__init__(threshold, v_init=v_init, max_spikes=spikes_per_step, kernel=kernel)
        if depth < 1 or half_period < 1:
            raise ConfigError(f"bistable neurons need depth >= 1 and half_period >= 1, got {depth}, {half_period}")
        self.depth = depth
        self.half_period = half_period
        self._step = 0

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, depth={self.depth}, P={self.half_period}"

    def reset_state(self) -> None:
        super().reset_state()
        self._step = 0

    def forward(self, x: Tensor, num_steps: int, static: bool = False) -> Tensor:
        if static:
            step_input, sequence = x, None
        else:
            if x.shape[0] % num_steps:
                raise ConversionError(f"input batch {x.shape[0]} is not a multiple of num_steps={num_steps}")
            sequence = x.reshape(num_steps, x.shape[0] // num_steps, *x.shape[1:])
            step_input = sequence[0]
        th = self.broadcast_threshold(step_input)
        bias = self.bias.to(x.dtype)
        if self._v is None or self._v.shape != step_input.shape:
            start = self.v_init.to(x.dtype) * th + self.v_offset.to(x.dtype)
            self._v = start.expand(step_input.shape).contiguous()
        fire = [bool(bistable_phase(self.depth, self._step + t + 1, self.half_period)) for t in range(num_steps)]
        self._step += num_steps
        out = None if self.kernel is Kernel.REFERENCE else reusable_empty(self, "out", (num_steps, *step_input.shape), step_input)
        outputs, self._v = neuron_kernel("bistable", self.kernel)(step_input if static else sequence, self._v, th, bias, fire,
                                                                  self.max_spikes, num_steps, static, out)  # fmt: skip
        return outputs.flatten(0, 1)


class SynchronousDelay(SpikingNeuron):
    """Delays a time-varying signal by ``delay`` steps: a synchronous relay on a residual shortcut.

    In the reconstruction of BSNN's synchronous neurons (methods.md §4.3), the shortcut of a
    residual block crosses fewer bistable stages than the main path, so its information reaches
    the ``add`` out of phase. Relay stages with identity weights delay it by one half-cycle each;
    as a pure delay (not an IF relay) this also carries signed values (e.g. projection
    shortcuts) unchanged. Input/output ``[K·N, ...]``; the last ``delay`` steps carry over between
    time chunks.
    """

    def __init__(self, delay: int) -> None:
        super().__init__()
        if delay < 1:
            raise ConfigError(f"a synchronous delay must be >= 1 step, got {delay}")
        self.delay = delay
        self._pending: Tensor | None = None

    def extra_repr(self) -> str:
        return f"delay={self.delay}"

    def reset_state(self) -> None:
        self._pending = None

    def forward(self, x: Tensor, num_steps: int, static: bool = False) -> Tensor:
        sequence = x.expand(num_steps, *x.shape) if static else x.reshape(num_steps, x.shape[0] // num_steps, *x.shape[1:])
        if self._pending is None:
            self._pending = torch.zeros(self.delay, *sequence.shape[1:], dtype=x.dtype, device=x.device)
        joined = torch.cat([self._pending, sequence])
        self._pending = joined[num_steps:].clone()
        return joined[:num_steps].flatten(0, 1)
