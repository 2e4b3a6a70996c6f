"""Named conversion methods: each is a calibration rule + neuron settings + optional correction.

The CLI's ``--method`` picks one; explicit flags (``--threshold``, ``--v-init``, ...) override
its defaults. Every choice lands in the SNN file and the threshold-plan JSON. Methods live in one
registry, :data:`CONVERSION_METHODS`; adding one is one :func:`register_method` call.

| method | thresholds | neuron | correction | source |
|---|---|---|---|---|
| ``rate`` | 99.99th percentile | soft-reset IF, V[0] = θ/2 | none | Rueckauer et al. 2017 (+ θ/2 shift) |
| ``calibrated`` | MMSE search for the target T | soft-reset IF, V[0] = θ/2 | initial potential, per neuron | Li et al. 2021 ("advanced") |
| ``calibrated-light`` | MMSE search for the target T | soft-reset IF, V[0] = θ/2 | bias, per channel | Li et al. 2021 ("light") |
| ``qcfs`` | the ANN's learned λ | soft-reset IF, V[0] = θ/2 | none | Bu et al. 2022 (QCFS-trained ANN) |
| ``qcfs-calibrated`` | the ANN's learned λ | soft-reset IF, V[0] = θ/2 | initial potential | QCFS + Li et al. 2021 |
| ``burst`` | 99.9th percentile | up to Γ = 2 spikes per step | none | Li & Zeng 2022 |
| ``bsnn`` | 99.9th percentile | bistable IF, P = 1, 2 spikes per step, synchronous delays | none | BSNN (reconstruction) |
| ``hybrid`` | as ``calibrated``, then trained | soft-reset IF (or signed), V[0] = θ/2 | potential, then BPTT at T | Rathi et al. 2020 |

``hybrid`` is the only method that trains: its settings say ``finetune``, and the convert workflow
then fine-tunes the converted SNN (:mod:`spikeconv.training.snn.finetune`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from spikeconv._names import NamedEnum, name_key
from spikeconv.calibration import CalibrationConfig, threshold_rule_from_dict
from spikeconv.convert.bistable import BistableConfig
from spikeconv.convert.config import ConvertConfig, NeuronKind
from spikeconv.convert.corrections import Correction, CorrectionConfig
from spikeconv.convert.for_target import settings_for_target
from spikeconv.errors import ConfigError
from spikeconv.neurons import SinCorrection
from spikeconv.neurons.finetune_if import FINETUNABLE_SIN


class ConversionMethod(NamedEnum):
    """The built-in conversion recipes (any registered method may also be named by its string)."""

    RATE = "rate"
    CALIBRATED = "calibrated"
    CALIBRATED_LIGHT = "calibrated-light"
    QCFS = "qcfs"
    QCFS_CALIBRATED = "qcfs-calibrated"
    BURST = "burst"
    BSNN = "bsnn"
    HYBRID = "hybrid"

    __label__ = "conversion method"
    __choices_sep__ = " "


@dataclass(frozen=True)
class MethodSettings:
    """Everything a method decides: how thresholds are set, the neurons, the correction."""

    calibration: CalibrationConfig
    convert: ConvertConfig
    correction: CorrectionConfig | None = None
    finetune: bool = False  # train the converted SNN at the target T afterwards (hybrid conversion)


@dataclass(frozen=True)
class MethodOverrides:
    """Flags the user gave explicitly (``None``: keep the method's default)."""

    threshold: str | None = None
    percentile: float | None = None
    per_channel: bool = False
    v_init: float | None = None
    max_spikes: int | None = None
    half_period: int | None = None
    synchronous: bool = True
    sin_correction: SinCorrection | None = None


class SettingsBuilder(Protocol):
    """What a registered method is: ``(base, overrides, target_timesteps, correction_samples) -> settings``."""

    def __call__(self, base: ConvertConfig, overrides: MethodOverrides, *, target_timesteps: int,
                 correction_samples: int) -> MethodSettings: ...  # fmt: skip


CONVERSION_METHODS: dict[str, SettingsBuilder] = {}
"""Every conversion method by name, in registration order (the CLI's ``--method`` choices)."""


def register_method(name: str, settings_builder: SettingsBuilder) -> None:
    """Add a conversion method called ``name``.

    Raises:
        ConfigError: ``name`` is already registered.
    """
    if name in CONVERSION_METHODS:
        raise ConfigError(f"conversion method {name!r} is already registered")
    CONVERSION_METHODS[name] = settings_builder


def available_methods() -> list[str]:
    """The registered method names, in registration order."""
    return list(CONVERSION_METHODS)


def method_name(method: ConversionMethod | str) -> str:
    """The registered name of ``method`` (a member or a name in any case, ``_`` or ``-``).

    Raises:
        ConfigError: No method of that name is registered.
    """
    if isinstance(method, ConversionMethod):
        return method.value
    key = name_key(method)
    for name in CONVERSION_METHODS:
        if name_key(name) == key:
            return name
    raise ConfigError(f"unknown conversion method {method!r}; choose one of {', '.join(CONVERSION_METHODS)}")


def recipe(*, threshold: str, percentile: float = 99.99, max_spikes: int = 1, correction: Correction | None = None,
           neuron: Callable[[ConvertConfig, MethodOverrides], ConvertConfig] | None = None,
           finetune: bool = False) -> SettingsBuilder:  # fmt: skip
    """The usual shape of a method: a default threshold rule, Γ, an optional correction.

    Args:
        threshold: Default threshold rule name (a key of ``calibration.THRESHOLD_RULES``).
        percentile: Default percentile of the ``percentile`` rule.
        max_spikes: Default Γ (spikes per step).
        correction: The measured correction, if any.
        neuron: Last adjustment of the neuron settings (e.g. to bistable neurons).
        finetune: The conversion is then trained at the target T (hybrid).
    """

    def build(base: ConvertConfig, overrides: MethodOverrides, *, target_timesteps: int,
              correction_samples: int) -> MethodSettings:  # fmt: skip
        rule = threshold_rule_from_dict({
            "kind": overrides.threshold or threshold, "per_channel": overrides.per_channel, "timesteps": target_timesteps,
            "q": overrides.percentile if overrides.percentile is not None else percentile,
        })  # fmt: skip
        convert = replace(base, v_init=overrides.v_init if overrides.v_init is not None else base.v_init,
                          max_spikes=overrides.max_spikes or max_spikes,
                          sin_correction=overrides.sin_correction or base.sin_correction)  # fmt: skip
        if neuron is not None:
            convert = neuron(convert, overrides)
        fix = None if correction is None else CorrectionConfig(correction, timesteps=target_timesteps,
                                                               max_samples=correction_samples)  # fmt: skip
        return MethodSettings(calibration=CalibrationConfig(default=rule), convert=convert, correction=fix, finetune=finetune)

    return build


def _bistable(convert: ConvertConfig, overrides: MethodOverrides) -> ConvertConfig:
    bistable = BistableConfig(half_period=overrides.half_period or 1, spikes_per_step=convert.max_spikes,
                              synchronous=overrides.synchronous)  # fmt: skip
    return replace(convert, neuron=NeuronKind.BISTABLE, bistable=bistable, max_spikes=1)


def _finetunable(convert: ConvertConfig, overrides: MethodOverrides) -> ConvertConfig:
    """hybrid's neurons: those :class:`~spikeconv.neurons.finetune_if.TrainableIF` trains, refused before any work."""
    if convert.max_spikes != 1 or convert.sin_correction not in FINETUNABLE_SIN:
        raise ConfigError(f"hybrid fine-tunes IF neurons with one spike per step and no SIN correction or the signed one, not "
                          f"--max-spikes {convert.max_spikes} --sin-correction {convert.sin_correction.value}")  # fmt: skip
    return convert


register_method("rate", recipe(threshold="percentile"))
register_method("calibrated", recipe(threshold="mse", correction=Correction.POTENTIAL))
register_method("calibrated-light", recipe(threshold="mse", correction=Correction.BIAS))
register_method("qcfs", recipe(threshold="learned"))
register_method("qcfs-calibrated", recipe(threshold="learned", correction=Correction.POTENTIAL))
register_method("burst", recipe(threshold="percentile", percentile=99.9, max_spikes=2))
register_method("bsnn", recipe(threshold="percentile", percentile=99.9, max_spikes=2, neuron=_bistable))
register_method("hybrid", recipe(threshold="mse", correction=Correction.POTENTIAL, neuron=_finetunable, finetune=True))

METHODS = tuple(available_methods())
"""The method names at import time (the CLI's ``--method`` choices)."""


def method_settings(
    method: ConversionMethod | str,
    base: ConvertConfig,
    *,
    target_timesteps: int = 4,
    correction_samples: int = 512,
    overrides: MethodOverrides | None = None,
) -> MethodSettings:
    """The calibration, neuron and correction settings of ``method``.

    Args:
        method: The recipe: a :class:`ConversionMethod` or a registered method name.
        base: Neuron/simulation settings from the user (reset, encoding, T, ...).
        target_timesteps: The T that MMSE thresholds and corrections optimise for.
        correction_samples: Calibration samples used by the correction.
        overrides: Explicit user flags that win over the method's defaults.

    With ``base.target`` set, the settings are made the target's (:func:`~spikeconv.convert.for_target.settings_for_target`).

    Raises:
        ConfigError: Unknown method or threshold rule, or a method the target cannot run.
    """
    builder = CONVERSION_METHODS[method_name(method)]
    settings = builder(base, overrides or MethodOverrides(), target_timesteps=target_timesteps,
                       correction_samples=correction_samples)  # fmt: skip
    if base.target is None:
        return settings
    return settings_for_target(settings, base.target, timesteps=target_timesteps)  # convert --target: its neuron
