"""What a deployment target's simulator can run, as conversion settings (``convert --target``).

Each export target (:mod:`spikeconv.files.targets`, one module per consumer library) states the
neuron its importer builds, measured by running that importer: how it resets, whether membranes
may start anywhere but 0, how many spikes a neuron emits per step, whether the membrane is floored,
whether it takes one threshold per layer or per neuron, and whether its graph executor can run a
layer on a residual shortcut. :class:`TargetRules` carries those facts into
:class:`~spikeconv.convert.ConvertConfig`, so that conversion produces only that neuron, and the
SNN file records them (``convert`` can import nothing from ``files``; the workflow looks the rules
up in the target registry and hands them over).

:mod:`spikeconv.convert.for_target` turns a method's settings into the target's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spikeconv.errors import ConfigError
from spikeconv.neurons import Reset

UNBOUNDED_SPIKES = 1 << 20
"""Γ of a target whose neurons emit ⌊V/θ⌋ spikes per step without a limit (sinabs' MultiSpike)."""


@dataclass(frozen=True)
class TargetRules:
    """The neuron and graph a consumer library runs, as conversion needs them.

    Attributes:
        name: The target's name (``convert --target``), e.g. ``"sinabs"``.
        library: The library and version whose importer was measured, e.g. ``"sinabs 3.1.3"``.
        reset: How its neuron resets after a spike.
        initial_membrane: Whether membranes may start away from 0 (``v_init``, potential corrections).
        max_spikes: Spikes per step: 1, or :data:`UNBOUNDED_SPIKES` for ⌊V/θ⌋ without a limit.
        membrane_floor: The membrane is clamped at ``−membrane_floor·θ`` after each reset (None: no floor).
        uniform_thresholds: One threshold per layer (else one per neuron).
        shortcut_layers: Its graph executor runs a layer on a residual shortcut in the same step.
    """

    name: str
    library: str
    reset: Reset = Reset.ZERO
    initial_membrane: bool = False
    max_spikes: int = 1
    membrane_floor: float | None = None
    uniform_thresholds: bool = True
    shortcut_layers: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.reset, Reset):
            raise ConfigError(f"target {self.name!r}: reset must be a Reset member")
        if isinstance(self.max_spikes, bool) or not isinstance(self.max_spikes, int) or self.max_spikes < 1:
            raise ConfigError(f"target {self.name!r}: max_spikes must be an integer >= 1")
        if self.max_spikes > 1 and self.reset is not Reset.SUBTRACT:
            raise ConfigError(f"target {self.name!r}: several spikes per step need reset by subtraction")
        if self.membrane_floor is not None and not self.membrane_floor > 0:
            raise ConfigError(f"target {self.name!r}: membrane_floor must be > 0 (a floor at −floor·θ)")

    @property
    def spikes_text(self) -> str:
        return "one spike per step" if self.max_spikes == 1 else "⌊V/θ⌋ spikes per step (no limit)"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "library": self.library, "reset": self.reset.value, "initial_membrane": self.initial_membrane,
                "max_spikes": self.max_spikes, "membrane_floor": self.membrane_floor, "uniform_thresholds": self.uniform_thresholds,
                "shortcut_layers": self.shortcut_layers}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetRules:
        floor = data.get("membrane_floor")
        return cls(name=str(data["name"]), library=str(data.get("library", data["name"])), reset=Reset.from_name(data["reset"]),
                   initial_membrane=bool(data.get("initial_membrane", False)), max_spikes=int(data.get("max_spikes", 1)),
                   membrane_floor=None if floor is None else float(floor),
                   uniform_thresholds=bool(data.get("uniform_thresholds", True)),
                   shortcut_layers=bool(data.get("shortcut_layers", True)))  # fmt: skip
