"""CurveResult: validation, immutability, lookups and the dict round trip."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from spikeconv.errors import ConfigError, DataError
from spikeconv.evaluation import CurveResult, as_curve_list


def make(**changes) -> CurveResult:
    fields = {
        "timesteps": (1, 2, 4, 8),
        "accuracy": (40.0, 70.0, 89.0, 90.5),
        "ann_accuracy": 91.0,
        "num_samples": 200,
        "label": "vgg",
        "extra": {"model": "vgg11", "plan": {"percentile": 99.9}, "shape": (1, 28, 28)},
    }
    return CurveResult(**{**fields, **changes})


def test_fields_are_normalised() -> None:
    result = make(accuracy=[40, 70, 89, 90.5], ann_accuracy=91)
    assert result.accuracy == (40.0, 70.0, 89.0, 90.5)
    assert all(isinstance(a, float) for a in result.accuracy)
    assert isinstance(result.ann_accuracy, float)
    assert result.extra["shape"] == [1, 28, 28]  # JSON-normalised
    assert result.max_timesteps == 8


def test_extra_is_read_only_and_detached() -> None:
    source = {"model": "cnn", "nested": {"a": 1}}
    result = make(extra=source)
    source["model"] = "changed"
    source["nested"]["a"] = 2
    assert result.extra == {"model": "cnn", "nested": {"a": 1}}
    with pytest.raises(TypeError):
        result.extra["model"] = "x"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.label = "other"  # type: ignore[misc]


def test_default_extra_is_empty_and_not_shared() -> None:
    a = CurveResult(timesteps=(1,), accuracy=(10.0,), ann_accuracy=None, num_samples=1)
    b = CurveResult(timesteps=(1,), accuracy=(10.0,), ann_accuracy=None, num_samples=1)
    assert a.extra == {} and a.label == "snn"
    assert a == b


def test_hashable_and_picklable() -> None:
    result = make()
    assert hash(result) == hash(make())
    assert pickle.loads(pickle.dumps(result)) == result
    assert copy.deepcopy(result) == result
    assert dataclasses.replace(result, label="other").label == "other"


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"timesteps": ()}, "non-empty"),
        ({"timesteps": (0, 1, 2, 3)}, "strictly increasing"),
        ({"timesteps": (1, 2, 2, 3)}, "strictly increasing"),
        ({"timesteps": (1.0, 2, 4, 8)}, "ints"),
        ({"accuracy": (1.0, 2.0)}, "accuracy has 2 values but timesteps has 4"),
        ({"accuracy": (1.0, 2.0, 3.0, 100.5)}, r"\[0, 100\]"),
        ({"accuracy": (1.0, 2.0, 3.0, float("nan"))}, r"\[0, 100\]"),
        ({"ann_accuracy": -1.0}, "ann_accuracy"),
        ({"num_samples": 0}, "num_samples"),
        ({"label": ""}, "label"),
        ({"extra": {"bad": object()}}, "JSON-serialisable"),
        ({"extra": {"bad": float("inf")}}, "JSON-serialisable"),
    ],
)
def test_invalid_values_raise_config_error(changes, match) -> None:
    with pytest.raises(ConfigError, match=match):
        make(**changes)


def test_accuracy_at() -> None:
    result = make()
    assert result.accuracy_at(4) == 89.0
    assert result.accuracy_at(8) == 90.5
    with pytest.raises(ConfigError, match="timestep 3 was not recorded for curve 'vgg'"):
        result.accuracy_at(3)


@pytest.mark.parametrize(
    ("points", "expected"),
    [(0.0, None), (0.5, 8), (2.0, 4), (21.0, 2), (51.0, 1), (100, 1)],
)
def test_best_within(points, expected) -> None:
    # ANN 91.0; accuracies 40, 70, 89, 90.5 at T = 1, 2, 4, 8.
    assert make().best_within(points) == expected


def test_best_within_is_inclusive_despite_rounding() -> None:
    # 1/6 vs 4/6 correct is exactly 50 points apart, but 66.66...67 - 50 < 16.66...68 in floats.
    acc, ann = 100 * 1 / 6, 100 * 4 / 6
    assert not acc >= ann - 50.0  # the float trap this test is about
    result = make(timesteps=(1,), accuracy=(acc,), ann_accuracy=ann)
    assert result.best_within(50.0) == 1


def test_best_within_errors() -> None:
    with pytest.raises(ConfigError, match="no ANN accuracy"):
        make(ann_accuracy=None).best_within(1.0)
    with pytest.raises(ConfigError, match="points"):
        make().best_within(-1.0)


def test_dict_round_trip() -> None:
    result = make()
    data = result.to_dict()
    assert data == {
        "label": "vgg",
        "timesteps": [1, 2, 4, 8],
        "accuracy": [40.0, 70.0, 89.0, 90.5],
        "ann_accuracy": 91.0,
        "num_samples": 200,
        "meta": {"model": "vgg11", "plan": {"percentile": 99.9}, "shape": [1, 28, 28]},
    }
    assert CurveResult.from_dict(data) == result


def test_from_dict_errors_are_data_errors() -> None:
    data = make().to_dict()
    with pytest.raises(DataError, match="missing the key"):
        CurveResult.from_dict({k: v for k, v in data.items() if k != "num_samples"})
    with pytest.raises(DataError, match="must be lists"):
        CurveResult.from_dict({**data, "accuracy": "high"})
    with pytest.raises(DataError, match="invalid curve"):
        CurveResult.from_dict({**data, "accuracy": [1.0, 2.0, 3.0, 300.0]})
    with pytest.raises(DataError, match="JSON object"):
        CurveResult.from_dict([1, 2])  # type: ignore[arg-type]


def test_as_curve_list() -> None:
    result = make()
    assert as_curve_list(result) == [result]
    assert as_curve_list((result, result)) == [result, result]
    with pytest.raises(ConfigError, match="no curves"):
        as_curve_list([])
    with pytest.raises(ConfigError, match="expected CurveResult"):
        as_curve_list([result.to_dict()])
