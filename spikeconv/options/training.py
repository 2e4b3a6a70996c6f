"""ANN and direct SNN training settings from the CLI's option strings."""

from __future__ import annotations

import dataclasses

from spikeconv.errors import ConfigError
from spikeconv.models.activations import ActivationKind, ActivationSpec
from spikeconv.neurons import MultiThresholdConfig, available_trainable_neurons, trainable_neuron_config
from spikeconv.training import AnnTrainConfig, Augment, Optimizer, Schedule, SnnLoss, SnnTrainConfig

OPTIMIZERS = tuple(Optimizer.names())
SCHEDULES = tuple(Schedule.names())
AUGMENTS = tuple(Augment.names())
ACTIVATIONS = tuple(k.value for k in ActivationKind)
TRAINABLE_NEURONS = tuple(available_trainable_neurons())
SNN_LOSSES = tuple(SnnLoss.names())


def ann_training_from_options(*, epochs: int, batch_size: int, lr: float, optimizer: str, schedule: str,
                              weight_decay: float, augment: str, seed: int) -> AnnTrainConfig:  # fmt: skip
    """ANN training settings from CLI strings."""
    return AnnTrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=Optimizer.from_name(optimizer),
                          schedule=Schedule.from_name(schedule), weight_decay=weight_decay,
                          augment=Augment.from_name(augment), seed=seed)  # fmt: skip


def activation_from_options(name: str, levels: int) -> ActivationSpec:
    """Hidden activation from CLI strings (``levels`` matters for QCFS only)."""
    return ActivationSpec(kind=ActivationKind.from_name(name), levels=levels)


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
