"""Named trainable-neuron presets (the CLI's ``--neuron`` choices) and neuron-config JSON.

=========  =========================================================  =====================
name       neuron                                                     source
=========  =========================================================  =====================
``if``     IF, hard reset, V_th = 0.5                                 InfLoR ablation
``lif``    LIF (τ = 2), hard reset, V_th = 0.5                        InfLoR ablation
``srif``   IF with soft reset by the spike value (SRIF), V_th = 0.5   InfLoR (+ ``mpr=True``)
``mtlif``  multi-threshold LIF, V_th = 10, k = 0.9, Γ = 15             Xu, Liu & Yang 2021
=========  =========================================================  =====================

MPR is a switch on the binary presets: ``trainable_neuron_config("srif", mpr=True)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from spikeconv.errors import ConfigError
from spikeconv.neurons.multi_threshold import MultiThresholdConfig
from spikeconv.neurons.strategies import Charge, Reset
from spikeconv.neurons.trainable import BinaryNeuronConfig

__all__ = [
    "NeuronConfig",
    "available_trainable_neurons",
    "neuron_config_from_dict",
    "register_trainable_neuron",
    "trainable_neuron_config",
]

NeuronConfig = BinaryNeuronConfig | MultiThresholdConfig
"""Any trainable neuron configuration: ``config.build()`` gives a fresh neuron module."""

_PRESETS: dict[str, Callable[[], NeuronConfig]] = {}


def register_trainable_neuron(name: str, factory: Callable[[], NeuronConfig]) -> None:
    """Make ``factory()`` available as preset ``name``.

    Raises:
        ConfigError: ``name`` is empty or already registered.
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"a trainable neuron preset needs a non-empty name, got {name!r}")
    if name in _PRESETS:
        raise ConfigError(f"trainable neuron {name!r} is already registered; pick another name")
    _PRESETS[name] = factory


def available_trainable_neurons() -> list[str]:
    """Registered preset names, sorted."""
    return sorted(_PRESETS)


def trainable_neuron_config(name: str, **overrides: Any) -> NeuronConfig:
    """The preset ``name`` with some fields replaced (e.g. ``mpr=True``, ``threshold=1.0``).

    Raises:
        ConfigError: Unknown preset or field, or an invalid value.
    """
    factory = _PRESETS.get(str(name).strip().lower())
    if factory is None:
        raise ConfigError(f"unknown neuron {name!r}; choose one of: {', '.join(available_trainable_neurons())}")
    base = factory()
    fields = {f.name for f in dataclasses.fields(base)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"neuron {name!r} has no option(s) {', '.join(unknown)}; it takes: {', '.join(sorted(fields))}")
    return dataclasses.replace(base, **overrides)


def neuron_config_from_dict(data: dict[str, Any]) -> NeuronConfig:
    """Rebuild a neuron configuration from its ``to_dict()`` output.

    Raises:
        ConfigError: Not a dict, unknown ``type``, or invalid options.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"a neuron configuration must be a dict, got {type(data).__name__}")
    kind = data.get("type")
    if kind == "binary":
        return BinaryNeuronConfig.from_dict(data)
    if kind == "multi-threshold":
        return MultiThresholdConfig.from_dict(data)
    raise ConfigError(f"unknown neuron configuration type {kind!r}; expected 'binary' or 'multi-threshold'")


register_trainable_neuron("if", lambda: BinaryNeuronConfig(charge=Charge.IF, reset=Reset.ZERO))
register_trainable_neuron("lif", lambda: BinaryNeuronConfig(charge=Charge.LIF, reset=Reset.ZERO))
register_trainable_neuron("srif", lambda: BinaryNeuronConfig(charge=Charge.IF, reset=Reset.SUBTRACT))
register_trainable_neuron("mtlif", MultiThresholdConfig)
