"""Named conversion methods: each is a calibration rule + neuron settings + optional correction.

The CLI's ``--method`` picks one; explicit flags (``--threshold``, ``--v-init``, ...) override
its defaults. Every choice lands in the SNN file and the threshold-plan JSON.

| method | thresholds | neuron | correction | source |
|---|---|---|---|---|
| ``rate`` | 99.99th percentile | soft-reset IF, V[0] = θ/2 | none | Rueckauer et al. 2017 (+ θ/2 shift) |
| ``calibrated`` | MMSE search for the target T | soft-reset IF, V[0] = θ/2 | initial potential, per neuron | Li et al. 2021 ("advanced") |
| ``calibrated-light`` | MMSE search for the target T | soft-reset IF, V[0] = θ/2 | bias, per channel | Li et al. 2021 ("light") |
| ``qcfs`` | the ANN's learned λ | soft-reset IF, V[0] = θ/2 | none | Bu et al. 2022 (QCFS-trained ANN) |
| ``qcfs-calibrated`` | the ANN's learned λ | soft-reset IF, V[0] = θ/2 | initial potential | QCFS + Li et al. 2021 |
| ``burst`` | 99.9th percentile | up to Γ = 2 spikes per step | none | Li & Zeng 2022 |
| ``bsnn`` | 99.9th percentile | bistable IF, P = 1, 2 spikes per step, synchronous delays | none | BSNN (reconstruction) |
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from spikeconv.calibration import (
    CalibrationConfig,
    LearnedThreshold,
    MaxThreshold,
    MseThreshold,
    PercentileThreshold,
)
from spikeconv.convert import BistableConfig, ConvertConfig, Correction, CorrectionConfig, NeuronKind
from spikeconv.errors import ConfigError
from spikeconv.neurons import SinCorrection


class ConversionMethod(Enum):
    """A named recipe for converting a trained ANN."""

    RATE = "rate"
    CALIBRATED = "calibrated"
    CALIBRATED_LIGHT = "calibrated-light"
    QCFS = "qcfs"
    QCFS_CALIBRATED = "qcfs-calibrated"
    BURST = "burst"
    BSNN = "bsnn"

    @classmethod
    def from_name(cls, name: str) -> ConversionMethod:
        for member in cls:
            if member.value == str(name).strip().lower():
                return member
        raise ConfigError(f"unknown conversion method {name!r}; choose one of {', '.join(m.value for m in cls)}")


METHODS = tuple(m.value for m in ConversionMethod)


@dataclass(frozen=True)
class MethodSettings:
    """Everything a method decides: how thresholds are set, the neurons, the correction."""

    calibration: CalibrationConfig
    convert: ConvertConfig
    correction: CorrectionConfig | None = None


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


def _rule(kind: str, *, percentile: float, per_channel: bool, target: int):
    if kind == "max":
        return MaxThreshold(per_channel=per_channel)
    if kind == "percentile":
        return PercentileThreshold(percentile, per_channel=per_channel)
    if kind == "mse":
        return MseThreshold(target, per_channel=per_channel)
    if kind == "learned":
        return LearnedThreshold()
    raise ConfigError(f"unknown threshold rule {kind!r}; choose max, percentile, mse or learned")


_DEFAULTS: dict[ConversionMethod, dict] = {
    ConversionMethod.RATE: {"threshold": "percentile", "percentile": 99.99, "max_spikes": 1, "correction": None},
    ConversionMethod.CALIBRATED: {"threshold": "mse", "percentile": 99.99, "max_spikes": 1, "correction": Correction.POTENTIAL},
    ConversionMethod.CALIBRATED_LIGHT: {"threshold": "mse", "percentile": 99.99, "max_spikes": 1, "correction": Correction.BIAS},
    ConversionMethod.QCFS: {"threshold": "learned", "percentile": 99.99, "max_spikes": 1, "correction": None},
    ConversionMethod.QCFS_CALIBRATED: {"threshold": "learned", "percentile": 99.99, "max_spikes": 1,
                                       "correction": Correction.POTENTIAL},  # fmt: skip
    ConversionMethod.BURST: {"threshold": "percentile", "percentile": 99.9, "max_spikes": 2, "correction": None},
    ConversionMethod.BSNN: {"threshold": "percentile", "percentile": 99.9, "max_spikes": 2, "correction": None},
}


def method_settings(
    method: ConversionMethod,
    base: ConvertConfig,
    *,
    target_timesteps: int = 4,
    correction_samples: int = 512,
    overrides: MethodOverrides | None = None,
) -> MethodSettings:
    """The calibration, neuron and correction settings of ``method``.

    Args:
        method: The recipe.
        base: Neuron/simulation settings from the user (reset, encoding, T, ...).
        target_timesteps: The T that MMSE thresholds and corrections optimise for.
        correction_samples: Calibration samples used by the correction.
        overrides: Explicit user flags that win over the method's defaults.
    """
    overrides = overrides or MethodOverrides()
    defaults = _DEFAULTS[method]
    rule = _rule(overrides.threshold or defaults["threshold"],
                 percentile=overrides.percentile if overrides.percentile is not None else defaults["percentile"],
                 per_channel=overrides.per_channel, target=target_timesteps)  # fmt: skip
    convert = replace(base, v_init=overrides.v_init if overrides.v_init is not None else base.v_init,
                      max_spikes=overrides.max_spikes or defaults["max_spikes"],
                      sin_correction=overrides.sin_correction or defaults.get("sin_correction") or base.sin_correction)  # fmt: skip
    if method is ConversionMethod.BSNN:
        bistable = BistableConfig(half_period=overrides.half_period or 1, spikes_per_step=convert.max_spikes,
                                  synchronous=overrides.synchronous)  # fmt: skip
        convert = replace(convert, neuron=NeuronKind.BISTABLE, bistable=bistable, max_spikes=1)
    kind = defaults["correction"]
    correction = None if kind is None else CorrectionConfig(kind, timesteps=target_timesteps, max_samples=correction_samples)
    return MethodSettings(calibration=CalibrationConfig(default=rule), convert=convert, correction=correction)
