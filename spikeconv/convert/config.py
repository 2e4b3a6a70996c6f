"""Conversion settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from spikeconv._names import NamedEnum
from spikeconv.convert.bistable import BistableConfig
from spikeconv.convert.maxpool import MaxPoolMode
from spikeconv.convert.target_rules import TargetRules
from spikeconv.errors import ConfigError
from spikeconv.neurons import (
    DirectEncoding,
    Encoding,
    Kernel,
    Reset,
    SinCorrection,
    check_timesteps,
    encoding_from_dict,
    encoding_to_dict,
)


class NeuronKind(NamedEnum):
    """The neuron every activation site becomes."""

    IF = "if"  # integrate-and-fire (Γ spikes per step at most, see max_spikes)
    BISTABLE = "bistable"  # BSNN reconstruction: integrate / fire states in anti-phase

    __label__ = "neuron kind"
    __choices_sep__ = " "


@dataclass(frozen=True)
class ConvertConfig:
    """How activation sites become neurons.

    Args:
        reset: Reset rule (soft reset by subtraction is what makes rates match ReLU outputs).
        v_init: Initial membrane as a fraction of the threshold; 0.5 centres the rate-coding
            rounding error (QCFS / SNN calibration), 0.0 is the classic Rueckauer conversion.
        encoding: Input encoder (direct analog current by default).
        timesteps: Default simulation length of the returned network.
        time_chunk: Steps simulated per graph call (bounds memory for long runs).
        kernel: Multi-step kernel for the IF neurons.
        maxpool: What a max-pool on spike trains becomes: the spiking max-pool gate (reproduces
            the ANN) or average pooling (an approximation, warned about and recorded).
        max_spikes: Γ, the most spikes a neuron may emit per step (burst spikes, Li & Zeng
            2022); 1 is the ordinary IF neuron.
        neuron: IF, or the bistable neurons of the BSNN reconstruction (``bistable`` settings).
        bistable: Half-cycle, spikes per step and synchronous delays for ``NeuronKind.BISTABLE``.
        sin_correction: Retraction of spikes of inactivated neurons by IF neurons (negative
            spikes; SpiCalib's problem), see :class:`spikeconv.neurons.SinCorrection`.
        isi_allowance: Extra silent steps for ``SinCorrection.ISI``.
        target: The deployment target's neuron and graph (``convert --target``): thresholds are then
            folded into the weights (:mod:`spikeconv.convert.fold`), see :mod:`spikeconv.convert.target_rules`.
        weight_bits: Symmetric integer weights of this many bits (:mod:`spikeconv.convert.quantize`), or None.
        start_shift: Every neuron's input current gains ``start_shift·θ`` per step, in the bias of the layer
            before it: the initial membrane of a target whose membranes start at 0, as ``v_init/T`` (the
            charge ``V[0] = v_init·θ`` gives by step T; :func:`~spikeconv.convert.fold.shift_start_`).
    """

    reset: Reset = Reset.SUBTRACT
    v_init: float = 0.5
    encoding: Encoding = field(default_factory=DirectEncoding)
    timesteps: int = 64
    time_chunk: int | None = None
    kernel: Kernel = Kernel.INPLACE
    maxpool: MaxPoolMode = MaxPoolMode.SPIKING
    max_spikes: int = 1
    neuron: NeuronKind = NeuronKind.IF
    bistable: BistableConfig = field(default_factory=BistableConfig)
    sin_correction: SinCorrection = SinCorrection.NONE
    isi_allowance: float = 1.0
    target: TargetRules | None = None
    weight_bits: int | None = None
    start_shift: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.sin_correction, SinCorrection):
            raise ConfigError(f"sin_correction must be a SinCorrection member, got {self.sin_correction!r}")
        if self.sin_correction is not SinCorrection.NONE and (
            self.max_spikes > 1 or self.reset is not Reset.SUBTRACT or self.neuron is not NeuronKind.IF
        ):
            raise ConfigError("SIN correction needs IF neurons with reset by subtraction and one spike per step")
        if self.target is not None and not isinstance(self.target, TargetRules):
            raise ConfigError(f"target must be a TargetRules or None, got {self.target!r}")
        if self.weight_bits is not None and (isinstance(self.weight_bits, bool) or not isinstance(self.weight_bits, int)
                                             or not 2 <= self.weight_bits <= 16):  # fmt: skip
            raise ConfigError(f"--weight-bits must be an integer from 2 to 16, got {self.weight_bits!r}")
        if self.weight_bits is not None and self.target is None:
            raise ConfigError("--weight-bits quantises the weights for a deployment target; give --target too")
        if not 0.0 <= self.start_shift < 1.0:
            raise ConfigError(f"start_shift must be in [0, 1) of the threshold per step, got {self.start_shift}")
        if self.isi_allowance < 0:
            raise ConfigError(f"isi_allowance must be >= 0, got {self.isi_allowance}")
        if not isinstance(self.neuron, NeuronKind):
            raise ConfigError(f"neuron must be a NeuronKind member, got {self.neuron!r}")
        if isinstance(self.max_spikes, bool) or not isinstance(self.max_spikes, int) or self.max_spikes < 1:
            raise ConfigError(f"max_spikes must be an integer >= 1, got {self.max_spikes!r}")
        if self.max_spikes > 1 and self.reset is not Reset.SUBTRACT:
            raise ConfigError("burst spikes (max_spikes > 1) need reset by subtraction")
        if not isinstance(self.maxpool, MaxPoolMode):
            raise ConfigError(f"maxpool must be a MaxPoolMode member, got {self.maxpool!r}")
        if not 0.0 <= self.v_init < 1.0:
            raise ConfigError(f"v_init must be in [0, 1) of the threshold, got {self.v_init}")
        check_timesteps(self.timesteps)
        if self.time_chunk is not None:
            check_timesteps(self.time_chunk)

    def to_dict(self) -> dict:
        return {
            "reset": self.reset.value,
            "v_init": self.v_init,
            "encoding": encoding_to_dict(self.encoding),
            "timesteps": self.timesteps,
            "time_chunk": self.time_chunk,
            "kernel": self.kernel.value,
            "maxpool": self.maxpool.value,
            "max_spikes": self.max_spikes,
            "neuron": self.neuron.value,
            "bistable": self.bistable.to_dict(),
            "sin_correction": self.sin_correction.value,
            "isi_allowance": self.isi_allowance,
            **({"target": self.target.to_dict()} if self.target is not None else {}),
            **({"weight_bits": self.weight_bits} if self.weight_bits is not None else {}),
            **({"start_shift": self.start_shift} if self.start_shift else {}),
        }

    @classmethod
    def from_dict(cls, data: dict) -> ConvertConfig:
        return cls(
            reset=Reset.from_name(data.get("reset", "subtract")),
            v_init=float(data.get("v_init", 0.5)),
            encoding=encoding_from_dict(data.get("encoding", {"name": "direct"})),
            timesteps=int(data.get("timesteps", 64)),
            time_chunk=data.get("time_chunk"),
            kernel=Kernel.from_name(data.get("kernel", "inplace")),
            maxpool=MaxPoolMode.from_name(data.get("maxpool", "spiking")),
            max_spikes=int(data.get("max_spikes", 1)),
            neuron=NeuronKind.from_name(data.get("neuron", "if")),
            bistable=BistableConfig.from_dict(data.get("bistable")),
            sin_correction=SinCorrection.from_name(data.get("sin_correction", "none")),
            isi_allowance=float(data.get("isi_allowance", 1.0)),
            target=TargetRules.from_dict(data["target"]) if data.get("target") else None,
            weight_bits=int(data["weight_bits"]) if data.get("weight_bits") is not None else None,
            start_shift=float(data.get("start_shift", 0.0)),
        )
