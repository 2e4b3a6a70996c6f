"""Trainable binary spiking neurons: hard-reset IF/LIF, SRIF, and the MPR switch (InfLoR).

All follow the charge / fire / reset form of Fang et al. (ICCV 2021) used by InfLoR (Guo et al.,
ECCV 2022), with ``V_reset = 0`` and ``U[0] = 0`` (methods.md §1-2)::

    charge:   H[t] = U[t−1] + X[t]                         (Charge.IF)
              H[t] = U[t−1] + (X[t] − U[t−1]) / τ          (Charge.LIF)
    rectify:  M[t] = φ(H[t])  with MPR,  M[t] = H[t]  without
    fire:     O[t] = Θ(M[t] − V_th)                         (surrogate gradient backward)
    reset:    U[t] = H[t] − O[t]                            (Reset.SUBTRACT: "soft", SRIF)
              U[t] = H[t]·(1 − O[t])                        (Reset.ZERO: "hard")

Spikes are 0/1 and SRIF subtracts the spike *value* 1, not ``V_th``: with ``V_th = 0.5`` this is
the only reading under which InfLoR's worked example (inputs 1.5, 1.2, 1.5, 0.9, 1.4 × V_th) gives
its three SRIF spikes against four for hard-reset IF. MPR changes only the value the firing
function sees (the reset still uses H), so SRIF, SRIF+MPR, IF+MPR and LIF+MPR all exist.

:class:`BinarySpikingNeuron` runs the step over time as every
:class:`~spikeconv.neurons.trainable_base.TrainableNeuron` does; its one-node step and its fused BPTT are the
autograd nodes of :mod:`spikeconv.neurons.binary_nodes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from spikeconv.errors import ConfigError
from spikeconv.neurons.binary_nodes import binary_bptt, binary_step_node, spikes_ignore_mpr
from spikeconv.neurons.mpr import MPR_THRESHOLD, mpr_spike
from spikeconv.neurons.native import native_ops_for
from spikeconv.neurons.strategies import Charge, Reset
from spikeconv.neurons.surrogates import BinarySurrogate, Rectangular, surrogate_from_dict
from spikeconv.neurons.trainable_base import TrainableNeuron, check_finite_positive, check_flag
from spikeconv.neurons.workspace import reusable_empty

__all__ = ["BinaryNeuronConfig", "BinarySpikingNeuron", "Charge", "binary_neuron_step"]


@dataclass(frozen=True)
class BinaryNeuronConfig:
    """One binary trainable neuron type; :meth:`build` makes a fresh module per call site.

    Attributes:
        charge: IF or LIF charging.
        reset: ``Reset.SUBTRACT`` (subtract the emitted spike, SRIF) or ``Reset.ZERO`` (hard).
        mpr: Present φ(H) instead of H to the firing function (needs ``threshold = 0.5``).
        threshold: V_th (0.5 per methods.md §1.3).
        tau: LIF membrane time constant τ > 1 (SpikingJelly's default 2; InfLoR's value was not
            recovered); unused by IF.
        surrogate: Binary surrogate gradient (default: unit-height window on ``0 ≤ M ≤ 1``).
        detach_reset: Treat O as a constant in the reset (a common BPTT simplification); the
            default keeps ∂U/∂H = 1 − ∂O/∂H.
    """

    charge: Charge = Charge.IF
    reset: Reset = Reset.SUBTRACT
    mpr: bool = False
    threshold: float = 0.5
    tau: float = 2.0
    surrogate: BinarySurrogate = field(default_factory=Rectangular)
    detach_reset: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.charge, Charge) or not isinstance(self.reset, Reset):
            raise ConfigError("charge and reset must be Charge and Reset members; use Charge.from_name(...) for strings")
        if not isinstance(self.surrogate, BinarySurrogate):
            raise ConfigError(f"a binary neuron needs a binary surrogate (rectangular, sigmoid, atan, ...), got {self.surrogate!r}")
        object.__setattr__(self, "threshold", check_finite_positive("threshold", self.threshold))
        object.__setattr__(self, "tau", check_finite_positive("tau", self.tau))
        check_flag("mpr", self.mpr)
        check_flag("detach_reset", self.detach_reset)
        if self.tau < 1:
            raise ConfigError(f"tau must be >= 1 (the leak 1/tau is a fraction), got {self.tau!r}")
        if self.mpr and self.threshold != MPR_THRESHOLD:
            raise ConfigError(
                f"MPR is defined for threshold {MPR_THRESHOLD} (φ(0.5) = 0.5 keeps the spikes unchanged), got {self.threshold}; "
                "use threshold 0.5 or turn MPR off"
            )

    def build(self) -> BinarySpikingNeuron:
        """A new neuron module with this configuration and an empty membrane."""
        return BinarySpikingNeuron(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (inverse of :meth:`from_dict`); ``type`` tells the neuron families apart."""
        return {
            "type": "binary",
            "charge": self.charge.value,
            "reset": self.reset.value,
            "mpr": self.mpr,
            "threshold": self.threshold,
            "tau": self.tau,
            "surrogate": self.surrogate.to_dict(),
            "detach_reset": self.detach_reset,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BinaryNeuronConfig:
        values = {key: value for key, value in data.items() if key != "type"}
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown binary neuron option(s): {', '.join(sorted(unknown))}")
        if "charge" in values:
            values["charge"] = Charge.from_name(values["charge"])
        if "reset" in values:
            values["reset"] = Reset.from_name(values["reset"])
        if "surrogate" in values:
            values["surrogate"] = surrogate_from_dict(values["surrogate"])
        return cls(**values)


def binary_neuron_step(x: Tensor, v: Tensor, threshold: Tensor, leak: Tensor, config: BinaryNeuronConfig) -> tuple[Tensor, Tensor]:
    """One step of a binary trainable neuron: ``(X[t], U[t−1]) -> (O[t], U[t])``.

    Args:
        x: Input current ``[N, ...]``.
        v: Membrane after the previous reset, same shape.
        threshold: V_th (0-dim buffer).
        leak: ``1/τ`` (0-dim buffer), used by LIF only.
        config: Charge, reset, MPR switch, surrogate and reset detachment.

    Returns:
        ``(spikes, membrane)``: 0/1 spikes and the membrane after reset, both shaped like ``x``.
    """
    h = v + x if config.charge is Charge.IF else v + (x - v) * leak
    spikes = mpr_spike(h, threshold, config.surrogate) if config.mpr else config.surrogate.spike(h - threshold)
    fired = spikes.detach() if config.detach_reset else spikes
    if config.reset is Reset.SUBTRACT:
        return spikes, h - fired
    return spikes, h * (1.0 - fired)


class BinarySpikingNeuron(TrainableNeuron):
    """Hard-reset IF/LIF or SRIF, with or without MPR (see the module docstring).

    Dynamics: :func:`binary_neuron_step`. Buffers: ``threshold`` (V_th) and ``leak`` (1/τ).
    """

    def __init__(self, config: BinaryNeuronConfig) -> None:
        super().__init__()
        if not isinstance(config, BinaryNeuronConfig):
            raise ConfigError(f"BinarySpikingNeuron needs a BinaryNeuronConfig, got {type(config).__name__}")
        self.config = config
        self.register_buffer("threshold", torch.tensor(config.threshold))
        self.register_buffer("leak", torch.tensor(1.0 / config.tau))

    def extra_repr(self) -> str:
        c = self.config
        kind = f"{'SR' if c.reset is Reset.SUBTRACT else 'hard-reset '}{c.charge.value.upper()}"
        tau = f", tau={c.tau:g}" if c.charge is Charge.LIF else ""
        return f"{kind}{' + MPR' if c.mpr else ''}, V_th={c.threshold:g}{tau}, surrogate={c.surrogate.name}"

    def step(self, x: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        threshold, leak = self.threshold.to(x.dtype), self.leak.to(x.dtype)
        node = binary_step_node(x, v, threshold, leak, self.config)
        if node is not None:
            return node
        return binary_neuron_step(x, v, threshold, leak, self.config)

    def fast_forward(self, x: Tensor, v: Tensor, num_steps: int, static: bool) -> tuple[Tensor, Tensor] | None:
        c = self.config
        ops = native_ops_for(x, v)
        if (ops is None or self.threshold.dim() or self.leak.dim() or not spikes_ignore_mpr(c, self.threshold)
                or type(c.surrogate).spike is not BinarySurrogate.spike or x.dtype != torch.float32 or v.dtype != torch.float32
                or x.device.type != "cpu" or v.numel() == 0):
            return None  # fmt: skip
        xs = x.reshape(1 if static else num_steps, v.shape[0], -1).contiguous()
        vs = v.reshape(v.shape[0], -1).clone()
        out = reusable_empty(self, "out", (num_steps, *v.shape), v)
        ops.binary_run(xs, vs, float(self.threshold), float(self.leak), out, num_steps, static, c.charge is Charge.LIF,
                       c.reset is Reset.ZERO, v.new_empty(0))  # fmt: skip
        return out, vs.view(v.shape)

    def fused_bptt(self, x: Tensor, v: Tensor, num_steps: int, static: bool) -> tuple[Tensor, Tensor] | None:
        c = self.config
        if type(c.surrogate).spike is not BinarySurrogate.spike or self.threshold.dim() or self.leak.dim() or v.numel() == 0:
            return None
        return binary_bptt(x, v, self.threshold.to(x.dtype), self.leak.to(x.dtype), c, num_steps, static)
