"""ThresholdPlan: the frozen, JSON-serialisable result of calibration."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from spikeconv._io import atomic_write
from spikeconv.errors import CalibrationError

PLAN_FORMAT = "spikeconv-threshold-plan"
PLAN_VERSION = 1


@dataclass(frozen=True)
class ThresholdPlan:
    """Thresholds per activation site, and how they were obtained.

    Args:
        thresholds: Site name -> one threshold (per layer) or one per channel.
        rules: Site name -> the rule used (``to_dict`` form), so a record says what it means.
        num_samples: Calibration samples seen.
        extra: Further JSON-serialisable facts (data set, seed, ...).
        corrections: Site name -> low-latency corrections measured against the ANN (written by
            :func:`spikeconv.convert.correct`): ``{"bias": [...], "bias_shape": [...],
            "v_offset": [...], "v_offset_shape": [...]}`` (any subset), so that a conversion
            replays exactly from the JSON record.
    """

    thresholds: Mapping[str, tuple[float, ...]]
    rules: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    num_samples: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)
    corrections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        clean = {}
        for site, values in self.thresholds.items():
            values = tuple(float(v) for v in values)
            if not values or not all(math.isfinite(v) and v > 0 for v in values):
                raise CalibrationError(f"site {site!r}: thresholds must be finite and > 0")
            clean[site] = values
        object.__setattr__(self, "thresholds", MappingProxyType(clean))
        object.__setattr__(self, "rules", MappingProxyType(dict(self.rules)))
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))
        for site, record in self.corrections.items():
            if site not in clean:
                raise CalibrationError(f"correction for unknown site {site!r}")
            for key in ("bias", "v_offset"):
                if key in record and math.prod(record.get(f"{key}_shape", [])) != len(record[key]):
                    raise CalibrationError(f"site {site!r}: {key} does not match its recorded shape")
        object.__setattr__(self, "corrections", MappingProxyType({s: dict(r) for s, r in self.corrections.items()}))

    def __deepcopy__(self, memo: dict) -> ThresholdPlan:
        return self  # immutable

    def __reduce__(self):
        return (ThresholdPlan.from_dict, (self.to_dict(),))

    @property
    def sites(self) -> tuple[str, ...]:
        return tuple(self.thresholds)

    def to_dict(self) -> dict:
        return {
            "format": PLAN_FORMAT,
            "version": PLAN_VERSION,
            "num_samples": self.num_samples,
            "thresholds": {s: list(v) for s, v in self.thresholds.items()},
            "rules": {s: dict(r) for s, r in self.rules.items()},
            "extra": dict(self.extra),
            "corrections": {s: dict(r) for s, r in self.corrections.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> ThresholdPlan:
        if data.get("format") != PLAN_FORMAT:
            raise CalibrationError(f"not a spikeconv threshold plan (format={data.get('format')!r})")
        return cls(
            thresholds={s: tuple(v) for s, v in data["thresholds"].items()},
            rules=data.get("rules", {}),
            num_samples=int(data.get("num_samples", 0)),
            extra=data.get("extra", {}),
            corrections=data.get("corrections", {}),
        )

    def save(self, path: str | Path) -> None:
        """Write the plan as JSON (atomically)."""
        with atomic_write(path) as handle:
            json.dump(self.to_dict(), handle, indent=2)

    @classmethod
    def load(cls, path: str | Path) -> ThresholdPlan:
        """Read a plan written by :meth:`save`."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CalibrationError(f"cannot read threshold plan {path}: {exc}") from None
        return cls.from_dict(data)
