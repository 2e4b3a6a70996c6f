"""Reset rules and kernel choices, as types rather than strings (sinabs' reset mechanisms)."""

from __future__ import annotations

from enum import Enum

from spikeconv.errors import ConfigError


class _NamedEnum(Enum):
    """An Enum whose members are chosen by their lower-case name at the CLI/JSON edge."""

    @classmethod
    def from_name(cls, name: str):
        """Return the member called ``name`` (case-insensitive), or raise a one-line ConfigError."""
        key = name.strip().lower().replace("-", "_")
        for member in cls:
            if member.value == key:
                return member
        choices = ", ".join(m.value for m in cls)
        raise ConfigError(f"unknown {cls.__name__} {name!r}; choose one of: {choices}")


class Reset(_NamedEnum):
    """What happens to the membrane after a spike.

    ``SUBTRACT`` (reset by subtraction, "soft") keeps the charge above threshold, which is what
    makes a converted IF neuron's rate track a ReLU (Rueckauer et al. 2017). ``ZERO`` ("hard")
    discards it; it is the classic direct-training neuron and a conversion ablation.
    """

    SUBTRACT = "subtract"
    ZERO = "zero"


class Kernel(_NamedEnum):
    """How a neuron runs its time loop.

    ``REFERENCE`` calls the pure step function once per timestep (obviously correct, allocates);
    ``INPLACE`` is the fast path with preallocated buffers, tested against ``REFERENCE``.
    """

    REFERENCE = "reference"
    INPLACE = "inplace"
