"""Options for training an ANN, as a frozen, validated dataclass with Enum modes.

Modes are Enums so that the library never parses strings; the CLI turns its option strings into
members with ``from_name`` (which accepts ``one-cycle``, ``ONE_CYCLE``, ``one_cycle`` ...).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

from spikeconv._names import NamedEnum
from spikeconv.errors import ConfigError

__all__ = ["AnnTrainConfig", "Augment", "Optimizer", "Schedule"]


class Optimizer(NamedEnum):
    """Gradient descent variant."""

    __label__ = "optimizer"
    __choices_sep__ = " "

    ADAM = enum.auto()
    SGD = enum.auto()  # with momentum (AnnTrainConfig.momentum)


class Schedule(NamedEnum):
    """Learning-rate schedule, stepped once per batch."""

    __label__ = "schedule"
    __choices_sep__ = " "

    CONSTANT = enum.auto()
    COSINE = enum.auto()  # cosine decay from lr to 0 over all steps
    ONE_CYCLE = enum.auto()  # OneCycleLR with max_lr = lr (warm-up, then anneal)


class Augment(NamedEnum):
    """Training-time augmentation, applied to each batch tensor."""

    __label__ = "augment"
    __choices_sep__ = " "

    NONE = enum.auto()
    SHIFT = enum.auto()  # random translation by up to 2 px (zero pad, random crop)
    SHIFT_FLIP = enum.auto()  # SHIFT plus a random horizontal flip (p = 0.5)


_ENUM_FIELDS: tuple[tuple[str, type[NamedEnum]], ...] = (
    ("optimizer", Optimizer),
    ("schedule", Schedule),
    ("augment", Augment),
)


@dataclass(frozen=True)
class AnnTrainConfig:
    """How :func:`spikeconv.training.train_ann` trains.

    Attributes:
        epochs: Passes over the training set (>= 1).
        batch_size: Images per step (>= 1).
        lr: Learning rate (> 0); the peak rate for ``Schedule.ONE_CYCLE``.
        optimizer: Adam or SGD.
        weight_decay: L2 penalty (>= 0).
        momentum: SGD momentum in [0, 1); unused by Adam.
        schedule: Learning-rate schedule.
        augment: Batch augmentation.
        seed: Seed for shuffling, augmentation and dropout (>= 0).
    """

    epochs: int = 20
    batch_size: int = 128
    lr: float = 2e-3
    optimizer: Optimizer = Optimizer.ADAM
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: Schedule = Schedule.ONE_CYCLE
    augment: Augment = Augment.NONE
    seed: int = 0

    def __post_init__(self) -> None:
        _check_int("epochs", self.epochs, minimum=1)
        _check_int("batch_size", self.batch_size, minimum=1)
        _check_int("seed", self.seed, minimum=0)
        if not _is_number(self.lr) or not math.isfinite(self.lr) or self.lr <= 0:
            raise ConfigError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not _is_number(self.weight_decay) or not 0 <= self.weight_decay < math.inf:
            raise ConfigError(
                f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}"
            )
        if not _is_number(self.momentum) or not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum!r}")
        for field_name, enum_type in _ENUM_FIELDS:
            value = getattr(self, field_name)
            if not isinstance(value, enum_type):
                raise ConfigError(
                    f"{field_name} must be a {enum_type.__name__} member, got {value!r}; "
                    f"use {enum_type.__name__}.from_name(...) for strings"
                )

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON-friendly primitives (Enums by CLI name), e.g. for metadata."""
        return {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "optimizer": self.optimizer.cli_name,
            "weight_decay": self.weight_decay,
            "momentum": self.momentum,
            "schedule": self.schedule.cli_name,
            "augment": self.augment.cli_name,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AnnTrainConfig:
        """Inverse of :meth:`to_dict` (missing keys take their defaults).

        Raises:
            ConfigError: Unknown keys or invalid values.
        """
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown ANN training options: {', '.join(sorted(unknown))}")
        converted = dict(values)
        for key, enum_type in _ENUM_FIELDS:
            if isinstance(converted.get(key), str):
                converted[key] = enum_type.from_name(converted[key])
        return cls(**converted)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
