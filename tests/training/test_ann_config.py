"""AnnTrainConfig validation and the mode Enums' from_name helpers."""

from __future__ import annotations

import dataclasses

import pytest

from spikeconv.errors import ConfigError
from spikeconv.training import AnnTrainConfig, Augment, Optimizer, Schedule


def test_defaults() -> None:
    config = AnnTrainConfig()
    assert (config.epochs, config.batch_size, config.lr) == (20, 128, 2e-3)
    assert config.optimizer is Optimizer.ADAM
    assert config.schedule is Schedule.ONE_CYCLE
    assert config.augment is Augment.NONE
    assert (config.weight_decay, config.momentum, config.seed) == (0.0, 0.9, 0)


def test_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        AnnTrainConfig().epochs = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": 2.5}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": 0.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"lr": -1e-3}, "lr"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"momentum": 1.0}, "momentum"),
        ({"seed": -1}, "seed"),
        ({"optimizer": "adam"}, "optimizer"),
        ({"schedule": "cosine"}, "schedule"),
        ({"augment": Optimizer.SGD}, "augment"),
    ],
)
def test_invalid_values_raise_config_error_naming_the_field(options: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field} must"):
        AnnTrainConfig(**options)


@pytest.mark.parametrize(
    ("enum_type", "name", "member"),
    [
        (Optimizer, "adam", Optimizer.ADAM),
        (Optimizer, "SGD", Optimizer.SGD),
        (Schedule, "one-cycle", Schedule.ONE_CYCLE),
        (Schedule, "ONE_CYCLE", Schedule.ONE_CYCLE),
        (Schedule, " Cosine ", Schedule.COSINE),
        (Augment, "shift-flip", Augment.SHIFT_FLIP),
        (Augment, "none", Augment.NONE),
    ],
)
def test_from_name(enum_type: type, name: str, member: object) -> None:
    assert enum_type.from_name(name) is member


def test_from_name_unknown_lists_choices() -> None:
    with pytest.raises(ConfigError, match="unknown schedule 'step'; choose one of constant, "):
        Schedule.from_name("step")
    assert Augment.names() == ["none", "shift", "shift-flip"]


def test_to_dict_round_trip_with_primitives_only() -> None:
    config = AnnTrainConfig(
        epochs=3, optimizer=Optimizer.SGD, schedule=Schedule.COSINE, augment=Augment.SHIFT_FLIP
    )
    values = config.to_dict()
    assert values["schedule"] == "cosine" and values["augment"] == "shift-flip"
    assert all(isinstance(v, int | float | str) for v in values.values())
    assert AnnTrainConfig.from_dict(values) == config


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="unknown ANN training options: warmup"):
        AnnTrainConfig.from_dict({"warmup": 3})
