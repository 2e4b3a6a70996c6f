"""Multi-threshold LIF: up to Γ spikes per step (Xu, Liu & Yang 2021, arXiv:2112.07426).

Eqs. 4-5 of the paper, with a zero-th order synapse (the next layer receives the spike count)::

    u[t] = k·u[t−1] + I[t] − V_th·o[t−1]               k = 1 − Δt/τ_m  (0.9 for Δt = 1, τ_m = 10)
    o[t] = clip(⌊u[t] / V_th⌋, 0, Γ)                   Γ = max spikes per step (15)

so a step that would saturate a one-spike LIF keeps the excess, and the reset subtracts exactly
the emitted amount (``V_th`` per spike). The printed Eq. 4 leaves the reset term undecayed; the
exact arrangement was not recovered (methods.md §3.1), so :class:`ResetDecay` keeps the
alternative ``k·(u − V_th·o)`` (reset, then leak; SpikingJelly's order) available.

In charge / fire / reset form the state carried between steps is ``U = k·H − V_th·O`` (or
``k·(H − V_th·O)``) and ``H[t] = U[t−1] + X[t]``, with ``U[0] = 0``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from spikeconv._names import NamedEnum
from spikeconv.errors import ConfigError
from spikeconv.neurons.native import native_ops_for
from spikeconv.neurons.surrogates import CombMax, MultiSpikeSurrogate, surrogate_from_dict
from spikeconv.neurons.trainable import TrainableNeuron, check_finite_positive, check_flag
from spikeconv.neurons.workspace import reusable_empty

__all__ = ["MultiThresholdConfig", "MultiThresholdLIF", "ResetDecay", "multi_threshold_step"]


class ResetDecay(NamedEnum):
    """Whether the leak also acts on the reset term.

    ``UNDECAYED``: ``u[t] = k·u[t−1] + I[t] − V_th·o[t−1]`` (Eq. 4 as printed, the default);
    ``DECAYED``: ``u[t] = k·(u[t−1] − V_th·o[t−1]) + I[t]`` (reset first, then leak).
    """

    UNDECAYED = "undecayed"
    DECAYED = "decayed"


@dataclass(frozen=True)
class MultiThresholdConfig:
    """Multi-threshold LIF settings (defaults: the paper's Table 1); :meth:`build` makes a module.

    Attributes:
        threshold: V_th (10, in the paper's mV).
        decay: Leak factor k in [0, 1] (``1 − Δt/τ_m`` = 0.9 for τ_m = 10, Δt = 1 [U: Δt lost]).
        max_spikes: Γ, the most spikes per step (>= 1; 15).
        surrogate: Multi-spike surrogate (default: bounded Gaussian comb, a = 1, b = 20).
        reset_decay: Placement of the leak relative to the reset.
        detach_reset: Treat o as a constant in the reset term (default True). With the
            surrogate in membrane units (peak ``a`` per unit of u) the reset path contributes
            ``∂U/∂H = k − V_th·h(H)``, which at ``V_th = 10, a = 1`` reaches −9 near every peak and
            reverses the temporal gradient; measured on digits, keeping it makes training
            diverge while detaching it trains to ~98 %. The paper's BPTT (Eq. 12 reducing to
            Eq. 13 when one term vanishes) is consistent with dropping this term [U].

    At ``V_th = 10`` a network with ordinary BatchNorm (weight 1) hardly reaches threshold at
    initialisation; train it with tdBN (``SnnTrainConfig(tdbn=True)``), which scales every BN
    weight to ``V_th``.
    """

    threshold: float = 10.0
    decay: float = 0.9
    max_spikes: int = 15
    surrogate: MultiSpikeSurrogate = field(default_factory=CombMax)
    reset_decay: ResetDecay = ResetDecay.UNDECAYED
    detach_reset: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "threshold", check_finite_positive("threshold", self.threshold))
        if isinstance(self.decay, bool) or not isinstance(self.decay, int | float) or not 0.0 <= self.decay <= 1.0:
            raise ConfigError(f"decay must be a number in [0, 1], got {self.decay!r}")
        object.__setattr__(self, "decay", float(self.decay))
        if isinstance(self.max_spikes, bool) or not isinstance(self.max_spikes, int) or self.max_spikes < 1:
            raise ConfigError(f"max_spikes must be an integer >= 1, got {self.max_spikes!r}")
        if not isinstance(self.surrogate, MultiSpikeSurrogate):
            raise ConfigError(
                f"a multi-threshold neuron needs a multi-spike surrogate (comb-sum, comb-max, comb-rational), got {self.surrogate!r}"
            )
        if not isinstance(self.reset_decay, ResetDecay):
            raise ConfigError("reset_decay must be a ResetDecay member; use ResetDecay.from_name(...) for strings")
        check_flag("detach_reset", self.detach_reset)

    def build(self) -> MultiThresholdLIF:
        """A new neuron module with this configuration and an empty membrane."""
        return MultiThresholdLIF(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (inverse of :meth:`from_dict`)."""
        return {
            "type": "multi-threshold",
            "threshold": self.threshold,
            "decay": self.decay,
            "max_spikes": self.max_spikes,
            "surrogate": self.surrogate.to_dict(),
            "reset_decay": self.reset_decay.value,
            "detach_reset": self.detach_reset,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MultiThresholdConfig:
        values = {key: value for key, value in data.items() if key != "type"}
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown multi-threshold neuron option(s): {', '.join(sorted(unknown))}")
        if "surrogate" in values:
            values["surrogate"] = surrogate_from_dict(values["surrogate"])
        if "reset_decay" in values:
            values["reset_decay"] = ResetDecay.from_name(values["reset_decay"])
        return cls(**values)


def multi_threshold_step(
    x: Tensor, v: Tensor, threshold: Tensor, decay: Tensor, config: MultiThresholdConfig
) -> tuple[Tensor, Tensor]:
    """One multi-threshold LIF step: ``(I[t], U[t−1]) -> (o[t], U[t])``.

    ``H = U + I``; ``o = clip(⌊H/V_th⌋, 0, Γ)`` (surrogate backward); ``U = k·H − V_th·o``
    (``ResetDecay.UNDECAYED``) or ``k·(H − V_th·o)`` (``DECAYED``). Returns spike counts.
    """
    h = v + x
    spikes = config.surrogate.spikes(h, threshold, config.max_spikes)
    fired = spikes.detach() if config.detach_reset else spikes
    if config.reset_decay is ResetDecay.UNDECAYED:
        return spikes, decay * h - threshold * fired
    return spikes, decay * (h - threshold * fired)


class MultiThresholdLIF(TrainableNeuron):
    """Multi-threshold LIF neuron emitting integer spike counts 0..Γ per step.

    Dynamics: :func:`multi_threshold_step`. Buffers: ``threshold`` (V_th), ``decay`` (k).
    Shapes as :class:`~spikeconv.neurons.trainable.TrainableNeuron`.
    """

    def __init__(self, config: MultiThresholdConfig) -> None:
        super().__init__()
        if not isinstance(config, MultiThresholdConfig):
            raise ConfigError(f"MultiThresholdLIF needs a MultiThresholdConfig, got {type(config).__name__}")
        self.config = config
        self.register_buffer("threshold", torch.tensor(config.threshold))
        self.register_buffer("decay", torch.tensor(config.decay))

    def extra_repr(self) -> str:
        c = self.config
        surrogate = f"{c.surrogate.name}(a={c.surrogate.a:g}, b={c.surrogate.b:g})"
        return f"V_th={c.threshold:g}, k={c.decay:g}, Γ={c.max_spikes}, surrogate={surrogate}"

    def step(self, x: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        return multi_threshold_step(x, v, self.threshold.to(x.dtype), self.decay.to(x.dtype), self.config)

    def fast_forward(self, x: Tensor, v: Tensor, num_steps: int, static: bool) -> tuple[Tensor, Tensor] | None:
        c = self.config
        ops = native_ops_for(x, v)
        if (ops is None or type(c.surrogate).spikes is not MultiSpikeSurrogate.spikes or x.dtype != torch.float32
                or v.dtype != torch.float32 or x.device.type != "cpu" or self.threshold.dim() or self.decay.dim() or v.numel() == 0):
            return None  # fmt: skip
        xs = x.reshape(1 if static else num_steps, v.shape[0], -1).contiguous()
        vs = v.reshape(v.shape[0], -1).clone()
        out = reusable_empty(self, "out", (num_steps, *v.shape), v)
        ops.mtlif_run(xs, vs, float(self.threshold), float(self.decay), c.max_spikes, out, num_steps, static,
                      c.reset_decay is ResetDecay.DECAYED)  # fmt: skip
        return out, vs.view(v.shape)
