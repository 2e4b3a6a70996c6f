"""Observers, threshold rules and their precedence, calibrate() on data, and the plan record."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from spikeconv.calibration import (
    CalibrationConfig,
    MaxObserver,
    MaxThreshold,
    PercentileObserver,
    PercentileThreshold,
    ThresholdPlan,
    attach_plan,
    calibrate,
    plan_of,
    prepare,
)
from spikeconv.errors import CalibrationError, ConfigError, DataError
from spikeconv.ingest import activation_sites, ingest_module


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 16), nn.ReLU(), nn.Linear(16, 3))


@pytest.mark.parametrize("q", [50.0, 99.0, 99.9, 99.99])
def test_percentile_observer_matches_numpy_on_positive_values(q):
    gen = torch.Generator().manual_seed(1)
    chunks = [torch.randn(64, 8, generator=gen).relu() * scale for scale in (1.0, 3.0, 0.5, 7.0)]
    observer = PercentileObserver(q)
    for chunk in chunks:  # growing ranges force histogram merges
        observer(chunk)
    values = np.sort(torch.cat(chunks).flatten().numpy())
    positive = values[values > 0]
    got = observer.compute().item()
    bin_width = 2 * values.max() / observer.bins
    # Exact up to one bin, between the two order statistics around rank q·n (numpy and the
    # histogram interpolate differently inside that gap).
    rank = q / 100 * positive.size
    low = positive[max(int(np.floor(rank)) - 1, 0)]
    high = positive[min(int(np.ceil(rank)), positive.size - 1)]
    assert low - bin_width - 1e-6 <= got <= high + bin_width + 1e-6
    assert got <= values.max() + 1e-6
    if q <= 99.0:  # dense region: agrees with numpy's percentile to within one bin
        assert abs(got - np.percentile(positive, q)) <= bin_width + 1e-6


def test_max_observer_per_channel_gives_each_channel_its_max():
    x = torch.zeros(5, 3, 2, 2)
    x[2, 0, 1, 1], x[4, 1, 0, 0], x[0, 2, 0, 1] = 2.0, 0.5, 9.0
    observer = MaxObserver(per_channel=True)
    observer(x)
    assert observer.compute().tolist() == [2.0, 0.5, 9.0]


def test_silent_channel_gets_a_positive_threshold():
    x = torch.zeros(4, 2, 3)
    x[:, 0] = 1.0
    observer = PercentileObserver(99.0, per_channel=True)
    observer(x)
    values = observer.compute()
    assert values[0].item() == pytest.approx(1.0, rel=1e-2)
    assert values[1].item() > 0


def test_observer_rejects_nan_and_reports_no_data():
    observer = MaxObserver()
    observer.site = "relu_1"
    with pytest.raises(CalibrationError, match="relu_1"):
        observer.compute()
    with pytest.raises(CalibrationError, match="NaN"):
        observer(torch.tensor([1.0, float("nan")]))


def test_bad_percentile_is_a_config_error():
    with pytest.raises(ConfigError):
        PercentileThreshold(0.0)
    with pytest.raises(ConfigError):
        PercentileThreshold(100.5)


def test_rule_precedence_default_then_input_type_then_site():
    gm = ingest_module(_net())
    sites = activation_sites(gm)
    config = CalibrationConfig(default=PercentileThreshold(99.0), by_input_type={nn.Linear: MaxThreshold()},
                               by_site={sites[0]: PercentileThreshold(50.0, per_channel=True)})  # fmt: skip
    prepared = prepare(gm, config)
    rules = prepared.meta["spikeconv_rules"]
    assert rules[sites[0]] == {"kind": "percentile", "q": 50.0, "per_channel": True}
    assert rules[sites[1]] == {"kind": "max", "per_channel": False}


def test_calibrate_records_max_thresholds_equal_to_the_ann_activations():
    model = _net()
    data = [torch.rand(32, 1, 8, 8) for _ in range(3)]
    calibrated = calibrate(prepare(ingest_module(model), CalibrationConfig(default=MaxThreshold())), data)
    plan = plan_of(calibrated)
    assert plan.num_samples == 96
    with torch.no_grad():
        first = torch.cat([model[1](model[0](x)) for x in data])
    assert plan.thresholds[activation_sites(calibrated)[0]] == pytest.approx((first.max().item(),), rel=1e-6)


def test_calibrate_respects_max_samples_and_accepts_pairs():
    data = [(torch.rand(10, 1, 8, 8), torch.zeros(10)) for _ in range(5)]
    calibrated = calibrate(prepare(ingest_module(_net())), data, max_samples=25)
    assert plan_of(calibrated).num_samples == 25


def test_calibrate_rejects_empty_nan_and_misfit_data():
    prepared = prepare(ingest_module(_net()))
    with pytest.raises(CalibrationError, match="empty"):
        calibrate(prepared, [])
    with pytest.raises(DataError, match="NaN"):
        calibrate(prepared, [torch.full((2, 1, 8, 8), float("nan"))])
    with pytest.raises(DataError, match="does not fit"):
        calibrate(prepared, [torch.rand(2, 1, 9, 5)])


def test_stages_refuse_graphs_from_the_wrong_stage():
    gm = ingest_module(_net())
    with pytest.raises(CalibrationError):
        calibrate(gm, [torch.rand(2, 1, 8, 8)])
    with pytest.raises(CalibrationError):
        prepare(prepare(gm))


def test_prepare_and_calibrate_leave_their_input_untouched():
    gm = ingest_module(_net())
    before = str(gm.graph)
    prepared = prepare(gm)
    prepared_graph = str(prepared.graph)
    calibrate(prepared, [torch.rand(4, 1, 8, 8)])
    assert str(gm.graph) == before and str(prepared.graph) == prepared_graph
    assert plan_of(prepared) is None


def test_plan_json_round_trip_reproduces_the_same_thresholds(tmp_path):
    calibrated = calibrate(prepare(ingest_module(_net()), CalibrationConfig(default=MaxThreshold(per_channel=True))),
                           [torch.rand(8, 1, 8, 8)], extra={"dataset": "synthetic", "seed": 3})  # fmt: skip
    plan = plan_of(calibrated)
    plan.save(tmp_path / "plan.json")
    loaded = ThresholdPlan.load(tmp_path / "plan.json")
    assert loaded == plan
    assert loaded.extra["dataset"] == "synthetic"
    reattached = attach_plan(prepare(ingest_module(_net())), loaded)
    assert plan_of(reattached).thresholds == plan.thresholds


def test_plan_from_other_model_or_garbage_is_refused(tmp_path):
    other = ThresholdPlan({"nonexistent_relu": (1.0,)})
    with pytest.raises(CalibrationError):
        attach_plan(prepare(ingest_module(_net())), other)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CalibrationError, match="bad.json"):
        ThresholdPlan.load(bad)
    with pytest.raises(CalibrationError):
        ThresholdPlan({"a": (0.0,)})
