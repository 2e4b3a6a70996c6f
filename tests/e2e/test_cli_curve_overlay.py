"""`spikeconv curve A B`: several conversion methods measured on the same samples, one plot."""

from __future__ import annotations

import json

import pytest

from spikeconv.cli import main

DIGITS = ["--dataset", "digits"]


@pytest.fixture(scope="module")
def snns(tmp_path_factory):
    """A digits CNN trained for 3 epochs, converted by the rate and calibrated methods (paths)."""
    folder = tmp_path_factory.mktemp("overlay")
    ann = folder / "ann.pt"
    assert main(["train-ann", "--arch", "digits-cnn", *DIGITS, "--epochs", "3", "--out", str(ann)]) == 0
    paths = []
    for method in ("rate", "calibrated"):
        snn = folder / f"{method}.snn.pt"
        assert main(["convert", str(ann), *DIGITS, "--method", method, "--calib-samples", "256", "--out", str(snn)]) == 0
        paths.append(str(snn))
    return paths


def test_curve_overlays_several_methods_in_one_json_and_plot(snns, tmp_path, capsys):
    capsys.readouterr()
    curve, plot, single = tmp_path / "all.json", tmp_path / "all.png", tmp_path / "one.json"
    assert main(["curve", *snns, *DIGITS, "--timesteps", "8", "--limit", "200", "--json", str(curve), "--plot", str(plot)]) == 0
    table = capsys.readouterr().out
    assert "rate.snn.pt (rate)" in table and "calibrated.snn.pt (calibrated)" in table
    record = json.loads(curve.read_text())
    labels = [c["label"] for c in record["curves"]]
    assert labels == ["rate.snn.pt (rate)", "calibrated.snn.pt (calibrated)"]
    assert all(c["num_samples"] == 200 and len(c["accuracy"]) == 8 for c in record["curves"])
    assert record["curves"][0]["ann_accuracy"] == record["curves"][1]["ann_accuracy"]
    assert plot.stat().st_size > 1000
    # each curve equals the curve of that file alone
    assert main(["curve", snns[1], *DIGITS, "--timesteps", "8", "--limit", "200", "--json", str(single)]) == 0
    assert json.loads(single.read_text())["accuracy"] == record["curves"][1]["accuracy"]


def test_the_same_file_twice_is_one_line_error(tmp_path, capsys):
    path = tmp_path / "x.snn.pt"
    path.write_bytes(b"")
    assert main(["curve", str(path), str(path), *DIGITS]) == 2
    assert "twice" in capsys.readouterr().err


def test_rate_code_adds_the_ideal_code_of_each_converted_snn(snns, tmp_path, capsys):
    curve = tmp_path / "rc.json"
    assert main(["curve", snns[1], *DIGITS, "--timesteps", "8", "--limit", "300", "--rate-code", "--json", str(curve)]) == 0
    assert "ideal rate code (calibrated.snn.pt)" in capsys.readouterr().out
    simulated, ideal = json.loads(curve.read_text())["curves"]
    assert ideal["timesteps"] == [1, 2, 4, 8] and ideal["num_samples"] == simulated["num_samples"] == 300
    assert ideal["ann_accuracy"] == simulated["ann_accuracy"]
    assert ideal["meta"]["kind"] == "rate_code_ann"
    # a shallow CNN with steady input is close to its ideal code, and the code nears the ANN by T = 8
    assert abs(ideal["accuracy"][-1] - simulated["accuracy"][-1]) < 3.0, (ideal, simulated)
    assert ideal["accuracy"][-1] > ideal["accuracy"][0] and ideal["accuracy"][-1] > ideal["ann_accuracy"] - 3.0
