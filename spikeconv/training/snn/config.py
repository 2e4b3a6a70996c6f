"""Options for direct SNN training (BPTT with surrogate gradients) as one frozen dataclass.

Modes are Enums (shared with ANN training where they mean the same thing) and the neuron is a
frozen neuron configuration, so the library never parses strings; ``from_dict`` is the JSON/CLI
edge. Defaults follow InfLoR (SRIF + MPR, SGD with momentum and cosine decay to 0); the
multi-threshold paper's setting is ``neuron=trainable_neuron_config("mtlif")``, Adam, lr 0.005,
T = 2, ``loss=SnnLoss.PER_STEP_MSE`` (methods.md §2.6, §3.4); ``training/snn/recipes.py`` names both
papers' full settings.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

from spikeconv._names import NamedEnum
from spikeconv.errors import ConfigError
from spikeconv.neurons import NeuronConfig, check_timesteps, neuron_config_from_dict, trainable_neuron_config
from spikeconv.training.config import Augment, Optimizer, Schedule

__all__ = ["SnnLoss", "SnnTrainConfig"]


class SnnLoss(NamedEnum):
    """Training loss on the readout current ``[T, N, K]``.

    ``CROSS_ENTROPY``: cross-entropy of the mean readout over T (the accumulated membrane).
    ``PER_STEP_MSE``: Xu et al.'s Eq. 6, ``Σ_t ½·Σ_i (y_i − out_i[t])²`` against one-hot targets.
    """

    __label__ = "loss"
    __choices_sep__ = " "

    CROSS_ENTROPY = enum.auto()
    PER_STEP_MSE = enum.auto()


def _default_neuron() -> NeuronConfig:
    return trainable_neuron_config("srif", mpr=True)


_ENUM_FIELDS: tuple[tuple[str, type[NamedEnum]], ...] = (
    ("optimizer", Optimizer),
    ("schedule", Schedule),
    ("augment", Augment),
    ("loss", SnnLoss),
)


@dataclass(frozen=True)
class SnnTrainConfig:
    """How :func:`spikeconv.training.train_snn` trains a spiking network.

    Attributes:
        neuron: The trainable neuron put at every ReLU call site.
        timesteps: T used in training (the trained network runs at any T afterwards).
        epochs: Passes over the training set (>= 1).
        batch_size: Samples per step (>= 1).
        lr: Learning rate (> 0); the peak for ``Schedule.ONE_CYCLE``.
        optimizer: SGD (with ``momentum``) or Adam (β = 0.9, 0.999).
        momentum: SGD momentum in [0, 1).
        weight_decay: L2 penalty (>= 0).
        schedule: Learning-rate schedule, stepped every batch (cosine decays to 0).
        loss: Readout loss.
        label_smoothing: ε in [0, 1): the target becomes ``(1 − ε)·one_hot + ε/K`` (torch's
            ``cross_entropy(label_smoothing=ε)``; the per-step MSE's target likewise).
        tdbn: Initialise every BatchNorm weight to ``tdbn_alpha·V_th`` (tdBN, Zheng et al. 2021).
        tdbn_alpha: α of tdBN (1; 1/√2 for BNs summed at a residual junction) (> 0).
        augment: Batch augmentation.
        seed: Seed of shuffling, augmentation and dropout (>= 0).
    """

    neuron: NeuronConfig = field(default_factory=_default_neuron)
    timesteps: int = 4
    epochs: int = 20
    batch_size: int = 128
    lr: float = 0.1
    optimizer: Optimizer = Optimizer.SGD
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: Schedule = Schedule.COSINE
    loss: SnnLoss = SnnLoss.CROSS_ENTROPY
    label_smoothing: float = 0.0
    tdbn: bool = False
    tdbn_alpha: float = 1.0
    augment: Augment = Augment.NONE
    seed: int = 0

    def __post_init__(self) -> None:
        if not hasattr(self.neuron, "build") or not hasattr(self.neuron, "to_dict"):
            raise ConfigError(f"neuron must be a neuron configuration (see trainable_neuron_config), got {self.neuron!r}")
        check_timesteps(self.timesteps)
        for name in ("epochs", "batch_size"):
            _check_int(name, getattr(self, name), minimum=1)
        _check_int("seed", self.seed, minimum=0)
        _check_number("lr", self.lr, low=0.0, low_inclusive=False)
        _check_number("weight_decay", self.weight_decay, low=0.0)
        _check_number("tdbn_alpha", self.tdbn_alpha, low=0.0, low_inclusive=False)
        for name in ("momentum", "label_smoothing"):
            value = getattr(self, name)
            if not _is_number(value) or not 0 <= value < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {value!r}")
        if not isinstance(self.tdbn, bool):
            raise ConfigError(f"tdbn must be true or false, got {self.tdbn!r}")
        for name, enum_type in _ENUM_FIELDS:
            if not isinstance(getattr(self, name), enum_type):
                raise ConfigError(
                    f"{name} must be a {enum_type.__name__} member, got {getattr(self, name)!r}; "
                    f"use {enum_type.__name__}.from_name(...) for strings"
                )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly primitives (Enums by CLI name, the neuron as its own dict)."""
        values: dict[str, Any] = {"neuron": self.neuron.to_dict()}
        for name in self.__dataclass_fields__:
            if name != "neuron":
                value = getattr(self, name)
                values[name] = value.cli_name if isinstance(value, NamedEnum) else value
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SnnTrainConfig:
        """Inverse of :meth:`to_dict`; missing keys take their defaults.

        Raises:
            ConfigError: Unknown keys or invalid values.
        """
        if not isinstance(values, dict):
            raise ConfigError(f"SNN training options must be a dict, got {type(values).__name__}")
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown SNN training options: {', '.join(sorted(unknown))}")
        converted = dict(values)
        for name, enum_type in _ENUM_FIELDS:
            if isinstance(converted.get(name), str):
                converted[name] = enum_type.from_name(converted[name])
        if isinstance(converted.get("neuron"), dict):
            converted["neuron"] = neuron_config_from_dict(converted["neuron"])
        return cls(**converted)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_number(name: str, value: object, *, low: float, low_inclusive: bool = True) -> None:
    ok = _is_number(value) and math.isfinite(value) and (value >= low if low_inclusive else value > low)  # type: ignore[arg-type]
    if not ok:
        raise ConfigError(f"{name} must be a finite number {'>=' if low_inclusive else '>'} {low:g}, got {value!r}")


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
