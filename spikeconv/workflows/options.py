"""Turn the CLI's option strings into the library's typed configs (the string -> type edge).

The CLI imports only workflows (style.md), so the choice lists it offers and the configs it builds
come from here; the library below never parses strings.
"""

from __future__ import annotations

import dataclasses

from spikeconv.calibration import available_threshold_rules
from spikeconv.convert import ConvertConfig, MaxPoolMode
from spikeconv.convert.methods import MethodOverrides, MethodSettings, method_settings
from spikeconv.errors import ConfigError
from spikeconv.files import ModelSpec
from spikeconv.files.targets import TARGETS, target_rules
from spikeconv.ingest.preprocessing import Preprocessing
from spikeconv.models.activations import ActivationKind, ActivationSpec
from spikeconv.neurons import (
    MultiThresholdConfig,
    Reset,
    SinCorrection,
    available_trainable_neurons,
    encoding_from_name,
    trainable_neuron_config,
)
from spikeconv.training import AnnTrainConfig, Augment, Optimizer, Schedule, SnnLoss, SnnTrainConfig
from spikeconv.workflows.auto import AutoConfig, Objective
from spikeconv.workflows.hybrid import FinetuneBudget

THRESHOLD_RULES = tuple(available_threshold_rules())
ENCODINGS = ("direct", "poisson")
OPTIMIZERS = tuple(Optimizer.names())
SCHEDULES = tuple(Schedule.names())
AUGMENTS = tuple(Augment.names())
RESETS = tuple(r.value for r in Reset)
SIN_CORRECTIONS = tuple(s.value for s in SinCorrection)
MAXPOOL_MODES = tuple(m.value for m in MaxPoolMode)
ACTIVATIONS = tuple(k.value for k in ActivationKind)
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
            f"`spikeconv export --target {rules.name}` writes the file it loads")


def ann_training_from_options(*, epochs: int, batch_size: int, lr: float, optimizer: str, schedule: str,
                              weight_decay: float, augment: str, seed: int) -> AnnTrainConfig:  # fmt: skip
    """ANN training settings from CLI strings."""
    return AnnTrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=Optimizer.from_name(optimizer),
                          schedule=Schedule.from_name(schedule), weight_decay=weight_decay,
                          augment=Augment.from_name(augment), seed=seed)  # fmt: skip


def activation_from_options(name: str, levels: int) -> ActivationSpec:
    """Hidden activation from CLI strings (``levels`` matters for QCFS only)."""
    return ActivationSpec(kind=ActivationKind.from_name(name), levels=levels)


TRAINABLE_NEURONS = tuple(available_trainable_neurons())
SNN_LOSSES = tuple(SnnLoss.names())


def snn_training_from_options(*, neuron: str, mpr: bool, timesteps: int, epochs: int, batch_size: int, lr: float | None,
                              optimizer: str | None, schedule: str, loss: str | None, tdbn: bool | None, augment: str,
                              seed: int) -> SnnTrainConfig:  # fmt: skip
    """Direct SNN training settings from CLI strings; ``None`` takes the neuron family's recipe.

    The multi-threshold LIF follows Xu, Liu & Yang (2021): Adam, lr 0.005, per-step MSE, and tdBN
    on (with plain BatchNorm no neuron reaches V_th = 10 at initialisation). The binary neurons
    follow InfLoR: SGD with momentum, lr 0.1, cross-entropy on the mean readout, tdBN off.

    Raises:
        ConfigError: Unknown neuron, MPR asked of a neuron without it, or an invalid value.
    """
    config = trainable_neuron_config(neuron)
    if mpr and not has_mpr(neuron):
        with_mpr = ", ".join(n for n in TRAINABLE_NEURONS if has_mpr(n))
        raise ConfigError(f"--mpr applies to the neurons {with_mpr}, not {neuron!r}; drop --mpr or pick one of them")
    if mpr:
        config = dataclasses.replace(config, mpr=True)
    multi = isinstance(config, MultiThresholdConfig)
    return SnnTrainConfig(
        neuron=config, timesteps=timesteps, epochs=epochs, batch_size=batch_size,
        lr=lr if lr is not None else (0.005 if multi else 0.1),
        optimizer=Optimizer.from_name(optimizer) if optimizer is not None else (Optimizer.ADAM if multi else Optimizer.SGD),
        schedule=Schedule.from_name(schedule),
        loss=SnnLoss.from_name(loss) if loss is not None else SnnLoss.CROSS_ENTROPY,
        tdbn=tdbn if tdbn is not None else multi,
        augment=Augment.from_name(augment), seed=seed,
    )  # fmt: skip


def has_mpr(neuron: str) -> bool:
    """Whether the preset ``neuron`` has the membrane potential rectifier switch (binary neurons)."""
    return "mpr" in {f.name for f in dataclasses.fields(trainable_neuron_config(neuron))}


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


def finetune_budget(*, finetune: bool, method: str, epochs: int | None, samples: int | None, lr: float | None,
                    seed: int = 0) -> FinetuneBudget | None:  # fmt: skip
    """The hybrid fine-tune budget from ``--finetune-*`` (None for methods that do not train; the flags are refused there)."""
    given = [flag for flag, value in (("--finetune-epochs", epochs), ("--finetune-samples", samples), ("--finetune-lr", lr))
             if value is not None]  # fmt: skip
    if not finetune:
        if given:
            raise ConfigError(f"{', '.join(given)} only apply to --method hybrid and --method auto --allow-finetune "
                              f"(method {method} does not train)")  # fmt: skip
        return None
    default = FinetuneBudget()
    return FinetuneBudget(epochs=epochs or default.epochs, samples=samples or default.samples, lr=lr or default.lr, seed=seed)


def _numbers(text: str, option: str, kind: type) -> tuple:
    try:
        values = tuple(kind(part) for part in text.replace(" ", "").split(","))
    except ValueError:
        raise ConfigError(f"{option} takes comma-separated numbers, got {text!r}") from None
    return values


def model_spec_from_options(*, arch: str | None, factory: str | None, num_classes: int | None, input_shape: str | None,
                            mean: str | None, std: str | None, trust_pickle: bool) -> ModelSpec:  # fmt: skip
    """What the model file does not say, from CLI strings: ``--input-shape 1,28,28``, ``--mean 0.5`` or ``--mean 0.49,0.48,0.45``.

    Giving only one of ``--mean``/``--std`` leaves the other at its neutral value (0 or 1).
    """
    shape = None if input_shape is None else _numbers(input_shape, "--input-shape", int)
    preprocessing = None
    if mean is not None or std is not None:
        preprocessing = Preprocessing(mean=_numbers(mean, "--mean", float) if mean is not None else (0.0,),
                                      std=_numbers(std, "--std", float) if std is not None else (1.0,))  # fmt: skip
    return ModelSpec(arch=arch, factory=factory, num_classes=num_classes, input_shape=shape, preprocessing=preprocessing,
                     trust_pickle=trust_pickle)  # fmt: skip


OBJECTIVES = tuple(Objective.names())
_EXPLICIT_ONLY = {"target_timesteps": "--target-timesteps", "threshold": "--threshold", "percentile": "--percentile",
                  "per_channel": "--per-channel", "max_spikes": "--max-spikes", "half_period": "--half-period",
                  "sin_correction": "--sin-correction"}  # fmt: skip


def check_auto_flags(**given: object) -> None:
    """Refuse the flags that tune one method when ``--method auto`` chooses the method and its options itself."""
    named = [_EXPLICIT_ONLY[name] for name, value in given.items() if value not in (None, False)]
    if named:
        raise ConfigError(f"{', '.join(named)} tune(s) one conversion method, but --method auto chooses the method, its options "
                          "and T itself; drop them, or name the method (e.g. --method calibrated)")  # fmt: skip


def auto_from_options(*, max_drop: float, objective: str, max_timesteps: int, val_samples: int,
                      correction_samples: int, allow_finetune: bool = False,
                      finetune: FinetuneBudget | None = None) -> AutoConfig:  # fmt: skip
    """``--method auto`` settings from CLI values (``finetune``: the ``--finetune-*`` budget of ``--allow-finetune``)."""
    return AutoConfig(max_drop=float(max_drop), objective=Objective.from_name(objective), max_timesteps=max_timesteps,
                      validation_samples=val_samples, correction_samples=correction_samples, allow_finetune=allow_finetune,
                      finetune=finetune or FinetuneBudget())  # fmt: skip
