"""Conversion settings from the CLI's option strings: neuron, encoding, deployment target, method overrides."""

from __future__ import annotations

from spikeconv.calibration import available_threshold_rules
from spikeconv.convert import ConvertConfig, MaxPoolMode
from spikeconv.convert.methods import MethodOverrides, MethodSettings, method_settings
from spikeconv.errors import ConfigError
from spikeconv.files.targets import TARGETS, target_rules
from spikeconv.neurons import Reset, SinCorrection, encoding_from_name

THRESHOLD_RULES = tuple(available_threshold_rules())
ENCODINGS = ("direct", "poisson")
RESETS = tuple(r.value for r in Reset)
SIN_CORRECTIONS = tuple(s.value for s in SinCorrection)
MAXPOOL_MODES = tuple(m.value for m in MaxPoolMode)
TARGET_NAMES = tuple(TARGETS)


def convert_from_options(*, reset: str, v_init: float, encoding: str, seed: int, timesteps: int,
                         maxpool: str = "spiking", target: str | None = None, weight_bits: int | None = None) -> ConvertConfig:  # fmt: skip
    """Conversion settings from CLI strings; ``target`` names a consumer library (files/targets), whose neuron the
    method's settings then become (:func:`~spikeconv.convert.method_settings`)."""
    rules = target_rules(target)
    if weight_bits is not None and rules is None:
        raise ConfigError(f"--weight-bits quantises the weights for a deployment target; give --target "
                          f"{'/'.join(t for t in TARGET_NAMES if t != 'nir')}"
                          + (" (the exact nir file keeps float weights)" if target == "nir" else ""))  # fmt: skip
    if rules is not None and (reset != Reset.SUBTRACT.value or v_init != 0.5 or maxpool != "spiking"):
        given = [flag for flag, changed in (("--reset", reset != Reset.SUBTRACT.value), ("--v-init", v_init != 0.5),
                                            ("--maxpool", maxpool != "spiking")) if changed]  # fmt: skip
        raise ConfigError(f"{', '.join(given)} set(s) what --target {target} decides (its neuron and layers); drop them")
    return ConvertConfig(reset=Reset.from_name(reset), v_init=v_init, encoding=encoding_from_name(encoding, seed=seed),
                         timesteps=timesteps, maxpool=MaxPoolMode.from_name(maxpool), target=rules,
                         weight_bits=weight_bits)  # fmt: skip


def target_note(config: ConvertConfig) -> str | None:
    """One line on what ``convert --target`` made of the network (None without a target)."""
    rules = config.target
    if rules is None:
        return None
    reset = "resets by subtraction" if rules.reset is Reset.SUBTRACT else "resets to 0"
    floor = f", membrane floored at −{rules.membrane_floor:g}·θ" if rules.membrane_floor is not None else ""
    bits = f"; {config.weight_bits}-bit integer weights" if config.weight_bits is not None else ""
    fit = ("corrections replaced by a hard-reset fit (θ, spike value and bias per channel, by simulating the neuron)"
           if rules.reset is Reset.ZERO else "initial-potential corrections made bias corrections")  # fmt: skip
    return (f"for {rules.library}: the neuron {reset}, starts at 0 (the θ/2 start as a bias of θ/(2T) per step), fires "
            f"{rules.spikes_text}{floor}; max pooling averaged, {fit}, thresholds folded into the weights{bits}; "
            f"`spikeconv export --target {rules.name}` writes the file it loads")  # fmt: skip


def settings_from_options(method: str, base: ConvertConfig, *, target_timesteps: int, correction_samples: int,
                          threshold: str | None, percentile: float | None, per_channel: bool,
                          max_spikes: int | None, half_period: int | None = None,
                          synchronous: bool = True, sin_correction: str | None = None) -> MethodSettings:  # fmt: skip
    """A conversion method's settings, with the user's explicit flags winning."""
    sin = None if sin_correction is None else SinCorrection.from_name(sin_correction)
    overrides = MethodOverrides(threshold=threshold, percentile=percentile, per_channel=per_channel, max_spikes=max_spikes,
                                half_period=half_period, synchronous=synchronous, sin_correction=sin)  # fmt: skip
    return method_settings(method, base, target_timesteps=target_timesteps,
                           correction_samples=correction_samples, overrides=overrides)  # fmt: skip
