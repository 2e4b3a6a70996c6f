"""The energy formula, and comparison reports built from hand-made results."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from spikeconv.errors import ConfigError
from spikeconv.evaluation import (
    CurveResult,
    EnergyModel,
    accuracy_figure,
    accuracy_table,
    ann_result,
    build_report,
    count_operations,
    energy_figure,
    report_markdown,
    snn_result,
    spike_rate_figure,
)
from spikeconv.neurons import IFNeuron, SpikingNetwork


def test_energy_formula_and_constants():
    model = EnergyModel()
    assert (model.e_ac_pj, model.e_mac_pj) == (0.9, 4.6)
    assert model.energy_pj(ac=1000, mac=10) == pytest.approx(0.9 * 1000 + 4.6 * 10)
    assert model.formula == "E = 0.9 pJ × AC + 4.6 pJ × MAC" and "Horowitz" in model.source
    custom = EnergyModel(e_ac_pj=0.03, e_mac_pj=0.2)
    assert custom.energy_pj(ac=100, mac=100) == pytest.approx(23.0)
    assert EnergyModel.from_dict(custom.to_dict()) == custom


@pytest.mark.parametrize("value", [-0.1, math.nan, math.inf, "1", True])
def test_energy_constants_must_be_finite_and_non_negative(value):
    with pytest.raises(ConfigError, match="picojoules"):
        EnergyModel(e_ac_pj=value)


class _Body(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.neuron, self.fc2 = nn.Linear(2, 3, bias=False), IFNeuron(1.0, v_init=0.0), nn.Linear(3, 2, bias=False)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.tensor([[1.0, 0.0], [0.5, 0.0], [0.0, 0.0]]))

    def forward(self, x, num_steps):
        return self.fc2(self.neuron(self.fc1(x), num_steps, static=True))


def _results() -> list[dict]:
    snn = SpikingNetwork(_Body())
    with count_operations(snn) as counter, torch.inference_mode():
        snn(torch.tensor([[1.0, 0.0]]), 4)
    curve = CurveResult(timesteps=(1, 2, 3, 4), accuracy=(0.0, 100.0, 100.0, 100.0), ann_accuracy=100.0, num_samples=1)
    ann = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2))
    with count_operations(ann) as ann_counter:
        ann(torch.zeros(1, 2))
    return [
        ann_result(accuracy=100.0, num_samples=1, counts=ann_counter.result()),
        snn_result(method="toy", kind="conversion", label="conversion: toy", curve=curve, counts=counter.result(),
                   timesteps=[1, 2, 4], model={"train_timesteps": None}),  # fmt: skip
    ]


def test_report_prices_every_point_and_compares_with_the_ann():
    report = build_report(_results(), energy=EnergyModel(), meta={"arch": "toy", "dataset": "hand"})
    ann, snn = report["models"]
    assert ann["points"][0]["mac"] == 12 and ann["points"][0]["energy_pj"] == pytest.approx(4.6 * 12)
    at2 = next(p for p in snn["points"] if p["timesteps"] == 2)
    assert (at2["ac"], at2["mac"]) == (6.0, 12.0)  # spikes 1 + 2, fan-out 2; 6 analog MACs per step
    assert at2["energy_pj"] == pytest.approx(0.9 * 6 + 4.6 * 12)
    assert at2["energy_vs_ann"] == pytest.approx((0.9 * 6 + 4.6 * 12) / (4.6 * 12))
    assert at2["energy_static_once_pj"] == pytest.approx(0.9 * 6 + 4.6 * 6)  # the analog layer charged once, not twice
    assert [p["timesteps"] for p in snn["points"]] == [1, 2, 4] and report["energy_model"]["e_mac_pj"] == 4.6


def test_markdown_tables_and_figures():
    report = build_report(_results(), energy=EnergyModel(e_ac_pj=1.0), meta={"arch": "toy", "dataset": "hand"})
    text = report_markdown(report, plots={"accuracy vs timesteps": "accuracy.png"})
    assert "toy on hand" in text and "E = 1 pJ × AC + 4.6 pJ × MAC" in text
    assert "| ANN |" in accuracy_table(report) and "![accuracy vs timesteps](accuracy.png)" in text
    assert "memory access" in text and "spike rate per layer" in text.lower()
    for figure in (accuracy_figure(report), spike_rate_figure(report), energy_figure(report)):
        assert figure.axes and figure.canvas is not None


def test_results_reject_budgets_beyond_the_simulation_and_duplicate_methods():
    ann, snn = _results()
    curve = CurveResult(timesteps=(1, 2, 3, 4), accuracy=(0.0,) * 4, ann_accuracy=None, num_samples=1)
    from spikeconv.evaluation import OperationCounts

    counts = OperationCounts.from_dict(snn["counts"])
    with pytest.raises(ConfigError, match="1..4"):
        snn_result(method="x", kind="direct", label="x", curve=curve, counts=counts, timesteps=[8])
    with pytest.raises(ConfigError, match="once"):
        build_report([snn, snn], energy=EnergyModel())
