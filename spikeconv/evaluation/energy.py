"""The energy estimate SNN papers use: a price per accumulate (AC) and per multiply-accumulate (MAC).

    E = e_AC · #AC + e_MAC · #MAC,     e_AC = 0.9 pJ, e_MAC = 4.6 pJ

The constants are the 32-bit floating-point add (0.9 pJ) and multiply + add (3.7 + 0.9 pJ) of
Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, for a 45 nm
CMOS process. A spiking layer only adds its weights when an input spike arrives (AC); a layer fed
analog values multiplies (MAC). The estimate ignores memory access (usually the larger cost),
the neurons' own membrane updates, biases, data movement and the hardware's idle power, so it
compares *arithmetic* only; use it to rank networks, not as a measured figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from spikeconv.errors import ConfigError

__all__ = ["HOROWITZ_2014", "EnergyModel"]

HOROWITZ_2014 = "Horowitz, ISSCC 2014: 45 nm CMOS, 32-bit float add 0.9 pJ, multiply 3.7 pJ"


def _check_energy(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be a finite number of picojoules >= 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class EnergyModel:
    """Energy per operation, in picojoules.

    Attributes:
        e_ac_pj: One accumulate (a spike reaching a synapse, or an addition).
        e_mac_pj: One multiply-accumulate (an analog input reaching a synapse; every ANN synapse).
        source: Where the constants come from (written into reports).
    """

    e_ac_pj: float = 0.9
    e_mac_pj: float = 4.6
    source: str = HOROWITZ_2014

    def __post_init__(self) -> None:
        object.__setattr__(self, "e_ac_pj", _check_energy("e_ac_pj", self.e_ac_pj))
        object.__setattr__(self, "e_mac_pj", _check_energy("e_mac_pj", self.e_mac_pj))

    def energy_pj(self, *, ac: float, mac: float) -> float:
        """``e_AC·ac + e_MAC·mac`` in picojoules."""
        return self.e_ac_pj * float(ac) + self.e_mac_pj * float(mac)

    @property
    def formula(self) -> str:
        """The formula with this model's constants, e.g. ``E = 0.9 pJ × AC + 4.6 pJ × MAC``."""
        return f"E = {self.e_ac_pj:g} pJ × AC + {self.e_mac_pj:g} pJ × MAC"

    def to_dict(self) -> dict[str, Any]:
        return {"e_ac_pj": self.e_ac_pj, "e_mac_pj": self.e_mac_pj, "formula": self.formula, "source": self.source}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnergyModel:
        return cls(e_ac_pj=data.get("e_ac_pj", 0.9), e_mac_pj=data.get("e_mac_pj", 4.6),
                   source=str(data.get("source", HOROWITZ_2014)))  # fmt: skip
