"""Calibration settings: which observer each activation site gets.

Precedence follows FX's QConfigMapping: the global default, overridden by the type of the layer
that feeds the site (e.g. every ReLU after an ``nn.Linear``), overridden by the site's own name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from torch import nn

from spikeconv.calibration.observers import FixedObserver, MaxObserver, MseObserver, Observer, PercentileObserver
from spikeconv.errors import ConfigError


@dataclass(frozen=True)
class MaxThreshold:
    """Threshold = maximum activation (per layer or per channel)."""

    per_channel: bool = False

    def make_observer(self, site_module: nn.Module | None = None) -> Observer:
        return MaxObserver(per_channel=self.per_channel)

    def to_dict(self) -> dict:
        return {"kind": "max", "per_channel": self.per_channel}


@dataclass(frozen=True)
class PercentileThreshold:
    """Threshold = ``q``-th percentile of positive activations (default 99.99)."""

    q: float = 99.99
    per_channel: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.q <= 100:
            raise ConfigError(f"percentile must be in (0, 100], got {self.q}")

    def make_observer(self, site_module: nn.Module | None = None) -> Observer:
        return PercentileObserver(self.q, per_channel=self.per_channel)

    def to_dict(self) -> dict:
        return {"kind": "percentile", "q": self.q, "per_channel": self.per_channel}


@dataclass(frozen=True)
class MseThreshold:
    """Threshold minimising the rate-coding error for ``timesteps`` steps (MMSE search, Li et al. 2021).

    ``shift`` is the rounding offset of the neuron's initial membrane (0.5 for V[0] = θ/2).
    """

    timesteps: int = 8
    shift: float = 0.5
    per_channel: bool = False

    def __post_init__(self) -> None:
        MseObserver(self.timesteps, shift=self.shift)  # validates

    def make_observer(self, site_module: nn.Module | None = None) -> Observer:
        return MseObserver(self.timesteps, shift=self.shift, per_channel=self.per_channel)

    def to_dict(self) -> dict:
        return {"kind": "mse", "timesteps": self.timesteps, "shift": self.shift, "per_channel": self.per_channel}


@dataclass(frozen=True)
class LearnedThreshold:
    """Threshold = the activation's own learned clipping level (QCFS λ, Bu et al. 2022).

    For sites whose activation module declares ``learned_threshold()``; calibration data is still
    run (it checks the data fits) but does not change the threshold.
    """

    def make_observer(self, site_module: nn.Module | None = None) -> Observer:
        learned = getattr(site_module, "learned_threshold", None)
        if learned is None:
            name = type(site_module).__name__ if site_module is not None else "a function"
            raise ConfigError(f"the 'learned' threshold rule needs an activation with a learned threshold (e.g. QCFS), "
                              f"but this site is {name}; use max, percentile or mse")  # fmt: skip
        return FixedObserver(float(learned()))

    def to_dict(self) -> dict:
        return {"kind": "learned"}


ThresholdRule = MaxThreshold | PercentileThreshold | MseThreshold | LearnedThreshold


ThresholdRuleFactory = Callable[[Mapping], ThresholdRule]
"""Builds a rule from its ``to_dict`` record (missing keys take the rule's defaults)."""

THRESHOLD_RULES: dict[str, ThresholdRuleFactory] = {}
"""Every threshold rule by name (the ``kind`` of its record, the CLI's ``--threshold``), in CLI order."""


def register_threshold_rule(name: str, factory: ThresholdRuleFactory) -> None:
    """Add a threshold rule: ``factory(record)`` builds it from its ``to_dict`` record.

    Raises:
        ConfigError: ``name`` is already registered.
    """
    if name in THRESHOLD_RULES:
        raise ConfigError(f"threshold rule {name!r} is already registered")
    THRESHOLD_RULES[name] = factory


def available_threshold_rules() -> list[str]:
    """The registered rule names, in registration order."""
    return list(THRESHOLD_RULES)


register_threshold_rule("percentile", lambda d: PercentileThreshold(float(d.get("q", 99.99)),
                                                                    per_channel=bool(d.get("per_channel", False))))
register_threshold_rule("max", lambda d: MaxThreshold(per_channel=bool(d.get("per_channel", False))))
register_threshold_rule("mse", lambda d: MseThreshold(int(d.get("timesteps", 8)), float(d.get("shift", 0.5)),
                                                      per_channel=bool(d.get("per_channel", False))))
register_threshold_rule("learned", lambda d: LearnedThreshold())


def threshold_rule_from_dict(data: Mapping) -> ThresholdRule:
    """Inverse of ``to_dict`` (for JSON records and the CLI): the registered rule ``data["kind"]``.

    Raises:
        ConfigError: No rule of that name is registered.
    """
    kind = data.get("kind")
    factory = THRESHOLD_RULES.get(kind) if isinstance(kind, str) else None
    if factory is None:
        names = available_threshold_rules()
        raise ConfigError(f"unknown threshold rule {kind!r}; choose {', '.join(names[:-1])} or {names[-1]}")
    return factory(data)


def _frozen(mapping: Mapping | None) -> Mapping:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class CalibrationConfig:
    """Threshold rules for every activation site.

    Args:
        default: Rule for sites nothing else matches.
        by_input_type: Rule per type of the module feeding the site (e.g. ``{nn.Linear: ...}``).
        by_site: Rule per site name (the ReLU node's name in the canonical graph).
    """

    default: ThresholdRule = field(default_factory=PercentileThreshold)
    by_input_type: Mapping[type[nn.Module], ThresholdRule] = field(default_factory=dict)
    by_site: Mapping[str, ThresholdRule] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_input_type", _frozen(self.by_input_type))
        object.__setattr__(self, "by_site", _frozen(self.by_site))

    def rule_for(self, site: str, input_type: type[nn.Module] | None) -> ThresholdRule:
        """The rule that applies to ``site``, fed by a module of ``input_type`` (or a function)."""
        if site in self.by_site:
            return self.by_site[site]
        if input_type is not None and input_type in self.by_input_type:
            return self.by_input_type[input_type]
        return self.default

    def to_dict(self) -> dict:
        return {
            "default": self.default.to_dict(),
            "by_input_type": {t.__name__: r.to_dict() for t, r in self.by_input_type.items()},
            "by_site": {s: r.to_dict() for s, r in self.by_site.items()},
        }
