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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from spikeconv._names import NamedEnum
from spikeconv.errors import ConfigError, DataError
from spikeconv.neurons.if_neuron import SpikingNeuron
from spikeconv.neurons.mpr import mpr
from spikeconv.neurons.native import native_ops_for
from spikeconv.neurons.strategies import Reset
from spikeconv.neurons.surrogates import BinarySurrogate, Rectangular, surrogate_from_dict
from spikeconv.neurons.workspace import reusable_empty

__all__ = ["BinaryNeuronConfig", "BinarySpikingNeuron", "Charge", "TrainableNeuron", "binary_neuron_step"]

MPR_THRESHOLD = 0.5
"""MPR keeps every forward spike only when ``V_th = φ(V_th) = 0.5``."""


class Charge(NamedEnum):
    """How the membrane integrates input: ``IF`` adds it (addition only, hardware friendly);
    ``LIF`` leaks towards it with time constant τ (more biological)."""

    IF = "if"
    LIF = "lif"


def check_finite_positive(name: str, value: object) -> float:
    """``value`` as a float, or a one-line ConfigError unless it is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return value


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
    presented = mpr(h) if config.mpr else h
    spikes = config.surrogate.spike(presented - threshold)
    fired = spikes.detach() if config.detach_reset else spikes
    if config.reset is Reset.SUBTRACT:
        return spikes, h - fired
    return spikes, h * (1.0 - fired)


class TrainableNeuron(SpikingNeuron):
    """Base of the trainable neurons: runs a pure step over time, keeps the membrane.

    Shapes: input ``[K·N, ...]`` time-flattened, or ``[N, ...]`` with ``static=True`` (the same
    input at every step, e.g. the first layer of a direct-encoded image); output ``[K·N, ...]``.
    Autograd tracks the whole loop, which is backpropagation through time.
    """

    def __init__(self) -> None:
        super().__init__()
        self._v: Tensor | None = None

    def reset_state(self) -> None:
        self._v = None

    def step(self, x: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """One step ``(X[t], state) -> (output, state)``."""
        raise NotImplementedError

    def fast_forward(self, x: Tensor, v: Tensor, num_steps: int, static: bool) -> tuple[Tensor, Tensor] | None:
        """Outputs ``[K, N, ...]`` and final membrane from a C++ loop bit-identical to looping :meth:`step`,
        or ``None`` where there is none; called only when no gradient is recorded."""
        return None

    def spike_counts(self, step_output: Tensor) -> Tensor:
        """Spikes per unit of one step's output (:class:`~spikeconv.neurons.SpikeRecorder`): a binary
        spike is 1, a multi-threshold output ``k`` is ``k`` spikes."""
        return step_output.abs()

    def forward(self, x: Tensor, num_steps: int, static: bool = False) -> Tensor:
        if static:
            inputs: tuple[Tensor, ...] = (x,) * num_steps
        else:
            if x.dim() < 1 or x.shape[0] % num_steps:
                raise DataError(f"{type(self).__name__}: input batch {tuple(x.shape)[:1]} is not a multiple of num_steps={num_steps}")
            inputs = x.reshape(num_steps, x.shape[0] // num_steps, *x.shape[1:]).unbind(0)
        v = self._v
        if v is None or v.shape != inputs[0].shape:
            v = torch.zeros_like(inputs[0])
        if not torch.is_grad_enabled() or not (x.requires_grad or v.requires_grad):
            fast = self.fast_forward(x if static else x.reshape(num_steps, -1, *x.shape[1:]), v, num_steps, static)
            if fast is not None:
                outputs_tensor, self._v = fast
                return outputs_tensor.flatten(0, 1)
        outputs = []
        for step_input in inputs:
            out, v = self.step(step_input, v)
            outputs.append(out)
        self._v = v
        return torch.cat(outputs)


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
        return binary_neuron_step(x, v, self.threshold.to(x.dtype), self.leak.to(x.dtype), self.config)

    def fast_forward(self, x: Tensor, v: Tensor, num_steps: int, static: bool) -> tuple[Tensor, Tensor] | None:
        c = self.config
        ops = native_ops_for(x, v)
        if (ops is None or c.mpr or type(c.surrogate).spike is not BinarySurrogate.spike or x.dtype != torch.float32
                or v.dtype != torch.float32 or x.device.type != "cpu" or self.threshold.dim() or self.leak.dim() or v.numel() == 0):
            return None  # fmt: skip
        xs = x.reshape(1 if static else num_steps, v.shape[0], -1).contiguous()
        vs = v.reshape(v.shape[0], -1).clone()
        out = reusable_empty(self, "out", (num_steps, *v.shape), v)
        ops.binary_run(xs, vs, float(self.threshold), float(self.leak), out, num_steps, static, c.charge is Charge.LIF,
                       c.reset is Reset.ZERO)  # fmt: skip
        return out, vs.view(v.shape)
