"""Conversion settings for a deployment target: a method's neurons made the target's, or refused.

:func:`config_for_target` turns a method's neuron settings into what the target's importer runs
(reset, membranes starting at 0, spikes per step, average pooling), saying what it changed;
what cannot be changed without becoming another method is refused in one line.
(:mod:`spikeconv.convert.target_check` is the check :func:`~spikeconv.convert.convert` makes of a
config that names a target.)
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from spikeconv.convert.config import ConvertConfig, NeuronKind
from spikeconv.convert.corrections import Correction, CorrectionConfig
from spikeconv.convert.maxpool import MaxPoolMode
from spikeconv.convert.target_rules import TargetRules
from spikeconv.errors import ConfigError
from spikeconv.neurons import Reset, SinCorrection

if TYPE_CHECKING:
    from spikeconv.convert.methods import MethodSettings

__all__ = ["allowed_for_target", "config_for_target", "settings_for_target", "target_changes"]


def config_for_target(config: ConvertConfig, rules: TargetRules, *, timesteps: int | None = None) -> tuple[ConvertConfig, list[str]]:
    """``config`` with the target's neuron (reset, start at 0, spikes per step, average pooling), and what changed.

    Where the target's membranes start at 0, the initial membrane ``v_init·θ`` becomes a bias of
    ``v_init·θ/T`` per step (``start_shift``; the same charge by step T): for a soft-reset neuron and a
    constant input, the spike count at step T is then the one ``V[0] = v_init·θ`` gives.

    Args:
        config: The method's settings.
        rules: The target's.
        timesteps: The T the conversion is made for (``--target-timesteps``; default ``config.timesteps``).

    Raises:
        ConfigError: The settings are a method the target cannot run (bistable neurons, retracted spikes,
            burst spikes on a binary target); the message names the method and the target.
    """
    if config.neuron is not NeuronKind.IF:
        raise ConfigError(f"--target {rules.name}: {config.neuron.value} neurons (--method bsnn) change with the step index, "
                          f"which {rules.library} cannot run; choose another --method")  # fmt: skip
    if config.sin_correction is not SinCorrection.NONE:
        raise ConfigError(f"--target {rules.name}: the {config.sin_correction.value} SIN correction retracts spikes, which "
                          f"{rules.library} cannot run; drop --sin-correction")  # fmt: skip
    if 1 < config.max_spikes and rules.max_spikes == 1:
        raise ConfigError(f"--target {rules.name}: {rules.library} fires at most one spike per step, the method fires "
                          f"{config.max_spikes}; choose another --method (e.g. calibrated-light)")  # fmt: skip
    changes = []
    if config.reset is not rules.reset:
        changes.append(f"reset {config.reset.value} -> {rules.reset.value}")
    shift = config.start_shift
    if not rules.initial_membrane and config.v_init != 0.0:
        steps = timesteps or config.timesteps
        shift = config.start_shift + config.v_init / steps
        changes.append(f"initial membrane {config.v_init:g}·θ -> 0 and a bias of {shift:.4g}·θ per step "
                       f"(the same charge by step {steps})")  # fmt: skip
    if config.max_spikes != rules.max_spikes:
        changes.append(f"{config.max_spikes} -> {'no limit on' if rules.max_spikes > 1 else str(rules.max_spikes)} spikes per step")
    if config.maxpool is MaxPoolMode.SPIKING:
        changes.append("max pooling -> average pooling")
    new = replace(config, reset=rules.reset, v_init=config.v_init if rules.initial_membrane else 0.0, max_spikes=rules.max_spikes,
                  maxpool=MaxPoolMode.AVERAGE, target=rules, start_shift=shift)  # fmt: skip
    return new, changes


def allowed_for_target(method: str, sin: SinCorrection, rules: TargetRules) -> bool:
    """Whether ``--method auto`` should try this variant for the target (it refuses none it could run).

    Retracted spikes, bistable neurons, fine-tuning and burst spikes on a binary target are out;
    ``calibrated``'s initial-potential correction becomes its bias form (``calibrated-light``) where
    membranes start at 0 (:func:`settings_for_target`).
    """
    if sin is not SinCorrection.NONE or method in ("bsnn", "hybrid"):
        return False
    return not (method == "burst" and rules.max_spikes == 1)


def settings_for_target(settings: MethodSettings, rules: TargetRules, *, timesteps: int) -> MethodSettings:
    """A method's settings made the target's: its neuron (:func:`config_for_target`, for ``timesteps``) and, where
    membranes start at 0, the bias form of an initial-potential correction.

    Raises:
        ConfigError: The method cannot be run by the target (named in the message).
    """
    if settings.finetune:
        raise ConfigError(f"--target {rules.name}: hybrid fine-tunes the thresholds after conversion, so they could not be "
                          "folded into the weights; choose another --method")  # fmt: skip
    convert, _ = config_for_target(settings.convert, rules, timesteps=timesteps)
    return replace(settings, convert=convert, correction=_correction_for(settings, rules))


def _correction_for(settings: MethodSettings, rules: TargetRules) -> CorrectionConfig | None:
    """A hard-reset target gets the hard-reset fit for any correction; a zero start, the bias form of a potential one."""
    correction = settings.correction
    if correction is None:
        return None
    if rules.reset is Reset.ZERO:
        return replace(correction, kind=Correction.HARD_RESET)
    if correction.kind is Correction.POTENTIAL and not rules.initial_membrane:
        return replace(correction, kind=Correction.BIAS)
    return correction


def target_changes(settings: MethodSettings, rules: TargetRules, *, timesteps: int) -> list[str]:
    """What making ``settings`` the target's changes, in words (for the CLI's note)."""
    _, changes = config_for_target(settings.convert, rules, timesteps=timesteps)
    before, after = settings.correction, _correction_for(settings, rules)
    if before is not None and after.kind is not before.kind:
        changes.append(f"{before.kind.value} correction -> {_CORRECTION_TEXT[after.kind]}")
    return [*changes, "thresholds folded into the weights (every threshold 1)"]


_CORRECTION_TEXT = {Correction.BIAS: "bias correction",
                    Correction.HARD_RESET: "hard-reset fit (θ, spike value and bias per channel, by simulating the neuron)"}  # fmt: skip
