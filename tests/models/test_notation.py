"""Layer notation parsing: presets, options and error messages."""

from __future__ import annotations

import pytest

from spikeconv.errors import ConfigError
from spikeconv.models import (
    DIGITS_CNN,
    FMNIST_CNN,
    MLP,
    NOTATION_GRAMMAR,
    ConvSpec,
    DenseSpec,
    DropoutSpec,
    GlobalAvgPoolSpec,
    PoolKind,
    PoolSpec,
    parse_notation,
)


def test_fmnist_preset_notation() -> None:
    assert parse_notation(FMNIST_CNN) == (
        ConvSpec(32, 5),
        PoolSpec(2),
        ConvSpec(64, 5),
        PoolSpec(2),
        DenseSpec(1024),
    )


def test_digits_and_mlp_preset_notation() -> None:
    assert parse_notation(DIGITS_CNN) == (
        ConvSpec(16, 3, padding=1),
        PoolSpec(2, PoolKind.AVG),
        ConvSpec(32, 3, padding=1),
        PoolSpec(2, PoolKind.AVG),
        DenseSpec(64),
    )
    assert parse_notation(MLP) == (DenseSpec(512), DenseSpec(256))


def test_all_token_kinds_case_and_whitespace() -> None:
    layers = parse_notation(" 64c3s2p1 - 8C3p2s1 - m2 - AP - d0.25 - 100 - D.5 ")
    assert layers == (
        ConvSpec(64, 3, stride=2, padding=1),
        ConvSpec(8, 3, stride=1, padding=2),
        PoolSpec(2, PoolKind.MAX),
        GlobalAvgPoolSpec(),
        DropoutSpec(0.25),
        DenseSpec(100),
        DropoutSpec(0.5),
    )


@pytest.mark.parametrize(
    "spec",
    ["32C5-P2-64C5-P2-1024", "64C3s2p1-M2-AP-D0.25-100", "16C3p1-P2-32C3p1-P2-64", "512-256"],
)
def test_canonical_tokens_round_trip(spec: str) -> None:
    layers = parse_notation(spec)
    assert "-".join(layer.token for layer in layers) == spec
    assert parse_notation("-".join(layer.token for layer in layers)) == layers


@pytest.mark.parametrize(
    ("spec", "token", "position", "reason"),
    [
        ("32C5-X3-1024", "X3", 2, "not a known layer token"),
        ("32C5--1024", "", 2, "empty token"),
        ("1024-32C5", "32C5", 2, "before dense layers"),
        ("100-P2", "P2", 2, "before dense layers"),
        ("32C5-D1.5", "D1.5", 2, "not in [0, 1)"),
        ("0C3", "0C3", 1, "number of filters must be >= 1"),
        ("8C0", "8C0", 1, "kernel size must be >= 1"),
        ("8C3-P0", "P0", 2, "pool size must be >= 1"),
        ("8C3s0", "8C3s0", 1, "stride must be >= 1"),
        ("8C3p1p2", "8C3p1p2", 1, "padding given twice"),
        ("8-0", "0", 2, "dense width must be >= 1"),
        ("32C5-P2.5", "P2.5", 2, "not a known layer token"),
    ],
)
def test_invalid_tokens_name_token_position_and_grammar(
    spec: str, token: str, position: int, reason: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_notation(spec)
    message = str(info.value)
    assert f"invalid layer token {token!r} at position {position}" in message
    assert reason in message
    assert NOTATION_GRAMMAR in message
    assert "\n" not in message


@pytest.mark.parametrize("spec", ["", "   "])
def test_empty_notation_rejected(spec: str) -> None:
    with pytest.raises(ConfigError, match="empty layer notation"):
        parse_notation(spec)


def test_specs_are_frozen() -> None:
    conv = parse_notation("8C3")[0]
    with pytest.raises(AttributeError):
        conv.out_channels = 4  # type: ignore[misc]
