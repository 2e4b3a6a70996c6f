"""ANN and direct SNN training settings from the CLI's option strings."""

from __future__ import annotations

import dataclasses

from spikeconv.errors import ConfigError
from spikeconv.models.activations import ActivationKind, ActivationSpec
from spikeconv.neurons import MultiThresholdConfig, NeuronConfig, available_trainable_neurons, trainable_neuron_config
from spikeconv.training import AnnTrainConfig, Augment, Optimizer, Schedule, SnnLoss, SnnTrainConfig, available_snn_recipes, snn_recipe

OPTIMIZERS = tuple(Optimizer.names())
SCHEDULES = tuple(Schedule.names())
AUGMENTS = tuple(Augment.names())
ACTIVATIONS = tuple(k.value for k in ActivationKind)
TRAINABLE_NEURONS = tuple(available_trainable_neurons())
SNN_LOSSES = tuple(SnnLoss.names())
SNN_RECIPES = tuple(available_snn_recipes())


def ann_training_from_options(*, epochs: int, batch_size: int, lr: float, optimizer: str, schedule: str,
                              weight_decay: float, augment: str, seed: int) -> AnnTrainConfig:  # fmt: skip
    """ANN training settings from CLI strings."""
    return AnnTrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=Optimizer.from_name(optimizer),
                          schedule=Schedule.from_name(schedule), weight_decay=weight_decay,
                          augment=Augment.from_name(augment), seed=seed)  # fmt: skip


def activation_from_options(name: str, levels: int) -> ActivationSpec:
    """Hidden activation from CLI strings (``levels`` matters for QCFS only)."""
    return ActivationSpec(kind=ActivationKind.from_name(name), levels=levels)


def snn_training_from_options(*, neuron: str | None = None, mpr: bool | None = None, timesteps: int | None = None,
                              epochs: int | None = None, batch_size: int | None = None, lr: float | None = None,
                              optimizer: str | None = None, schedule: str | None = None, loss: str | None = None,
                              tdbn: bool | None = None, augment: str | None = None, seed: int | None = None,
                              weight_decay: float | None = None, label_smoothing: float | None = None,
                              recipe: str | None = None) -> SnnTrainConfig:  # fmt: skip
    """Direct SNN training settings from CLI strings; every ``None`` takes the recipe's value.

    With ``recipe`` (``training/snn/recipes.py``) the options given replace that paper's values; an
    explicit ``neuron`` replaces the recipe's neuron, MPR included (``mpr`` adds it back). Without one,
    the neuron family's own recipe fills in: the multi-threshold LIF follows Xu, Liu & Yang (2021) in
    Adam, lr 0.005 and tdBN on (with plain BatchNorm no neuron reaches V_th = 10 at initialisation),
    the binary neurons follow InfLoR (SGD with momentum, lr 0.1, tdBN off); both train with
    cross-entropy on the mean readout, cosine decay, no augmentation, 20 epochs at T = 4.

    Raises:
        ConfigError: Unknown neuron or recipe, MPR asked of a neuron without it, or an invalid value.
    """
    base = snn_recipe(recipe).config if recipe is not None else None
    config = _neuron(neuron, mpr, base, recipe)
    if base is None:
        multi = isinstance(config, MultiThresholdConfig)
        base = SnnTrainConfig(neuron=config, lr=0.005 if multi else 0.1, optimizer=Optimizer.ADAM if multi else Optimizer.SGD,
                              loss=SnnLoss.CROSS_ENTROPY, tdbn=multi)  # fmt: skip
    given = {"timesteps": timesteps, "epochs": epochs, "batch_size": batch_size, "lr": lr, "tdbn": tdbn, "seed": seed,
             "weight_decay": weight_decay, "label_smoothing": label_smoothing,
             "optimizer": None if optimizer is None else Optimizer.from_name(optimizer),
             "schedule": None if schedule is None else Schedule.from_name(schedule),
             "loss": None if loss is None else SnnLoss.from_name(loss),
             "augment": None if augment is None else Augment.from_name(augment)}  # fmt: skip
    return dataclasses.replace(base, neuron=config, **{name: value for name, value in given.items() if value is not None})


def _neuron(neuron: str | None, mpr: bool | None, base: SnnTrainConfig | None, recipe: str | None) -> NeuronConfig:
    """The trainable neuron: ``neuron`` (MPR only if asked), else the recipe's (its MPR unless ``mpr`` says), else srif."""
    if neuron is None and base is not None:
        config, label = base.neuron, f"{recipe}'s neuron"
    else:
        config, label = trainable_neuron_config(neuron or "srif"), neuron or "srif"
    if mpr is None:
        return config
    if "mpr" not in {f.name for f in dataclasses.fields(config)}:
        if not mpr:
            return config
        with_mpr = ", ".join(n for n in TRAINABLE_NEURONS if has_mpr(n))
        raise ConfigError(f"--mpr applies to the neurons {with_mpr}, not {label!r}; drop --mpr or pick one of them")
    return dataclasses.replace(config, mpr=mpr)


def has_mpr(neuron: str) -> bool:
    """Whether the preset ``neuron`` has the membrane potential rectifier switch (binary neurons)."""
    return "mpr" in {f.name for f in dataclasses.fields(trainable_neuron_config(neuron))}
