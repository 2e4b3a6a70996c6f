"""Turn the CLI's option strings into the library's typed configs (the string -> type edge).

The CLI imports only workflows (style.md), so the choice lists it offers and the configs it builds
come from here; the library below never parses strings.
"""

from __future__ import annotations

from spikeconv.calibration import CalibrationConfig, MaxThreshold, PercentileThreshold
from spikeconv.convert import ConvertConfig
from spikeconv.models.activations import ActivationKind, ActivationSpec
from spikeconv.neurons import Reset, encoding_from_name
from spikeconv.training import AnnTrainConfig, Augment, Optimizer, Schedule

THRESHOLD_RULES = ("percentile", "max")
ENCODINGS = ("direct", "poisson")
OPTIMIZERS = tuple(Optimizer.names())
SCHEDULES = tuple(Schedule.names())
AUGMENTS = tuple(Augment.names())
RESETS = tuple(r.value for r in Reset)
ACTIVATIONS = tuple(k.value for k in ActivationKind)


def calibration_from_options(rule: str, percentile: float, per_channel: bool) -> CalibrationConfig:
    """One threshold rule for every activation site."""
    if rule == "max":
        return CalibrationConfig(default=MaxThreshold(per_channel=per_channel))
    return CalibrationConfig(default=PercentileThreshold(percentile, per_channel=per_channel))


def convert_from_options(*, reset: str, v_init: float, encoding: str, seed: int, timesteps: int) -> ConvertConfig:
    """Conversion settings from CLI strings."""
    return ConvertConfig(reset=Reset.from_name(reset), v_init=v_init,
                         encoding=encoding_from_name(encoding, seed=seed), timesteps=timesteps)  # fmt: skip


def ann_training_from_options(*, epochs: int, batch_size: int, lr: float, optimizer: str, schedule: str,
                              weight_decay: float, augment: str, seed: int) -> AnnTrainConfig:  # fmt: skip
    """ANN training settings from CLI strings."""
    return AnnTrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=Optimizer.from_name(optimizer),
                          schedule=Schedule.from_name(schedule), weight_decay=weight_decay,
                          augment=Augment.from_name(augment), seed=seed)  # fmt: skip


def activation_from_options(name: str, levels: int) -> ActivationSpec:
    """Hidden activation from CLI strings (``levels`` matters for QCFS only)."""
    return ActivationSpec(kind=ActivationKind.from_name(name), levels=levels)
