"""The demo's summary line: what auto chose, its test accuracy and drop at that T, and where rate gets there."""

from __future__ import annotations

from spikeconv.evaluation import CurveResult
from spikeconv.workflows.demo import summary_line


def _curve(accuracy, label):
    return CurveResult(timesteps=tuple(range(1, len(accuracy) + 1)), accuracy=tuple(accuracy), ann_accuracy=92.0,
                       num_samples=100, label=label)  # fmt: skip


def test_summary_states_the_choice_the_drop_and_the_rate_baseline():
    auto = {"chosen": {"variant": "calibrated + signed", "timesteps": 3}}
    converted = _curve([80.0, 90.0, 91.5, 91.8], "auto")
    rate = _curve([10.0, 40.0, 60.0, 91.5], "rate")
    line = summary_line(auto, [converted, rate])
    assert line == ("auto chose calibrated + signed at T = 3: 91.50 % on the test set, within 0.50 points of the ANN "
                    "(92.00 %); rate needs T = 4 to come within 1.00")  # fmt: skip
    assert "rate is not there by T = 4" in summary_line(auto, [converted, _curve([10.0, 20.0, 30.0, 40.0], "rate")])
    worse = _curve([80.0, 85.0, 88.5, 91.8], "auto")  # 3.5 points below at T = 3: rate is asked for as much
    assert summary_line(auto, [worse, _curve([10.0, 40.0, 89.0, 91.5], "rate")]).endswith("rate needs T = 3 to come within 3.50")


def test_the_legend_names_what_auto_chose():
    from pathlib import Path

    from spikeconv.workflows.curves import curve_label

    chosen = {"variant": "calibrated + per-channel + signed", "timesteps": 3}
    info = {"method": "calibrated", "auto": {"chosen": chosen}}
    assert curve_label(Path("out/fmnist-cnn.snn.pt"), info) == "fmnist-cnn.snn.pt (auto: calibrated + per-channel + signed, T = 3)"
    assert curve_label(Path("rate.snn.pt"), {"method": "rate"}) == "rate.snn.pt (rate)"
    assert curve_label(Path("trained.pt"), {}) == "trained.pt"
