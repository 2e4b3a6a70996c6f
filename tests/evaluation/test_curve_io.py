"""Curve JSON files (layout, round trip, atomic failure) and the markdown table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spikeconv.errors import ConfigError, DataError
from spikeconv.evaluation import (
    CurveResult,
    default_table_points,
    format_curve_table,
    read_curve_json,
    read_curves_json,
    write_curve_json,
)


@pytest.fixture
def converted() -> CurveResult:
    return CurveResult(
        timesteps=(1, 2, 3, 4, 5),
        accuracy=(10.0, 40.0, 62.5, 80.125, 88.0),
        ann_accuracy=90.0,
        num_samples=8,
        label="converted",
        extra={"model": "cnn", "timesteps_note": [1, 5]},
    )


@pytest.fixture
def trained() -> CurveResult:
    return CurveResult(
        timesteps=(1, 2, 4),
        accuracy=(55.0, 75.0, 87.5),
        ann_accuracy=None,
        num_samples=8,
        label="trained",
    )


def test_single_curve_json_has_top_level_keys(tmp_path: Path, converted) -> None:
    path = tmp_path / "out" / "curve.json"
    write_curve_json(converted, path)
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["timesteps"] == [1, 2, 3, 4, 5]
    assert document["accuracy"] == [10.0, 40.0, 62.5, 80.125, 88.0]
    assert document["ann_accuracy"] == 90.0
    assert document["num_samples"] == 8
    assert document["label"] == "converted"
    assert document["meta"] == {"model": "cnn", "timesteps_note": [1, 5]}
    assert document["format"] == "spikeconv.curve"
    assert read_curve_json(path) == converted
    assert read_curves_json(path) == [converted]


def test_several_curves_round_trip(tmp_path: Path, converted, trained) -> None:
    path = tmp_path / "curves.json"
    write_curve_json([converted, trained], path)
    document = json.loads(path.read_text(encoding="utf-8"))
    assert [c["label"] for c in document["curves"]] == ["converted", "trained"]
    assert document["curves"][1]["ann_accuracy"] is None
    assert read_curve_json(path) == [converted, trained]


def test_list_of_one_stays_a_list(tmp_path: Path, trained) -> None:
    path = tmp_path / "one.json"
    write_curve_json([trained], path)
    assert read_curve_json(path) == [trained]


def test_failed_write_leaves_no_temp_file(tmp_path: Path, converted) -> None:
    target = tmp_path / "curve.json"
    target.mkdir()  # a folder where the file should go: the final rename fails
    with pytest.raises(ConfigError, match="cannot write curve JSON"):
        write_curve_json(converted, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curve.json"]
    assert target.is_dir() and not any(target.iterdir())


def test_overwrite_replaces_previous_file(tmp_path: Path, converted, trained) -> None:
    path = tmp_path / "curve.json"
    write_curve_json(converted, path)
    write_curve_json(trained, path)
    assert read_curve_json(path) == trained
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curve.json"]


def test_write_nothing_raises(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no curves"):
        write_curve_json([], tmp_path / "x.json")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"format": "other.thing"}', "not spikeconv curves"),
        ('{"timesteps": [1], "accuracy": [5.0]}', "missing the key"),
        ('{"curves": []}', "non-empty list"),
        (
            '{"timesteps": [1], "accuracy": [500.0], "ann_accuracy": null, "num_samples": 1}',
            r"invalid curve: accuracy must be a percentage",
        ),
    ],
)
def test_bad_files_raise_data_error(tmp_path: Path, content, match) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=match):
        read_curve_json(path)


def test_missing_file_raises_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read curve JSON .*absent.json"):
        read_curve_json(tmp_path / "absent.json")


@pytest.mark.parametrize(
    ("t", "expected"), [(1, [1]), (2, [1, 2]), (5, [1, 2, 4, 5]), (8, [1, 2, 4, 8])]
)
def test_default_table_points(t, expected) -> None:
    assert default_table_points(t) == expected


def test_table_single_curve(converted) -> None:
    assert format_curve_table(converted) == (
        "|   T | converted | converted gap to ANN |\n"
        "|----:|----------:|---------------------:|\n"
        "|   1 |     10.00 |               -80.00 |\n"
        "|   2 |     40.00 |               -50.00 |\n"
        "|   4 |     80.12 |                -9.88 |\n"
        "|   5 |     88.00 |                -2.00 |\n"
        "| ANN |     90.00 |                      |\n"
    )


def test_table_several_curves_and_points(converted, trained) -> None:
    table = format_curve_table([converted, trained], points=[4, 3, 4])
    lines = table.splitlines()
    assert [c.strip() for c in lines[0].split("|")[1:-1]] == [
        "T",
        "converted",
        "converted gap to ANN",
        "trained",
    ]
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in lines[2:]]
    assert cells == [
        ["3", "62.50", "-27.50", "-"],
        ["4", "80.12", "-9.88", "87.50"],
        ["ANN", "90.00", "", "-"],
    ]


def test_table_rejects_bad_points(converted) -> None:
    with pytest.raises(ConfigError, match="table points"):
        format_curve_table(converted, points=[0, 2])
    with pytest.raises(ConfigError, match="table points"):
        format_curve_table(converted, points=[])
