"""`spikeconv gap` on a real digits conversion: its numbers agree with the rate code, the curve and T's effect."""

from __future__ import annotations

import json

import pytest
import torch

from spikeconv.cli import main
from spikeconv.data import Split, load_dataset
from spikeconv.evaluation import timestep_accuracy_curve
from spikeconv.files import load_snn
from spikeconv.workflows.curves import rate_code_accuracy
from spikeconv.workflows.gap import gap_networks, layer_gaps

DIGITS = ["--dataset", "digits"]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """A digits CNN (3 spiking layers) converted with `calibrated` for T = 2; tests only read it."""
    folder = tmp_path_factory.mktemp("gap")
    ann, snn = folder / "ann.pt", folder / "cal.snn.pt"
    assert main(["train-ann", "--arch", "digits-cnn", *DIGITS, "--epochs", "3", "--seed", "0", "--out", str(ann)]) == 0
    assert main(["convert", str(ann), *DIGITS, "--method", "calibrated", "--target-timesteps", "2", "--device", "cpu",
                 "--out", str(snn)]) == 0  # fmt: skip
    return snn


@pytest.fixture(scope="module")
def test_data():
    return load_dataset("digits", split=Split.TEST)


def test_network_accuracies_are_the_rate_code_and_curve_ones(converted, test_data):
    loaded = load_snn(converted)
    result = layer_gaps(loaded, test_data, timesteps=3, batch_size=64)
    assert result.rate_code_accuracy == pytest.approx(rate_code_accuracy(loaded, test_data, [3])[0], abs=1e-9)
    curve = timestep_accuracy_curve(loaded.snn, test_data, timesteps=3, ann=loaded.ann, progress=False)
    assert result.snn_accuracy == pytest.approx(curve.accuracy_at(3), abs=1e-9)
    assert result.ann_accuracy == pytest.approx(curve.ann_accuracy, abs=1e-9)
    assert result.samples == len(test_data)
    assert [row.name for row in result.layers] == ["relu1", "relu2", "relu3", "readout"]


def test_timing_error_vanishes_with_t_and_the_static_first_layer_has_none(converted, test_data):
    loaded = load_snn(converted)
    short, long = (layer_gaps(loaded, test_data, timesteps=t, batch_size=128) for t in (2, 64))
    first = short.spiking_layers[0]
    assert first.timing_local == 0.0 and first.timing == 0.0  # a steady input current: the IF neuron emits the rate code
    for a, b in zip(short.spiking_layers[1:], long.spiking_layers[1:], strict=True):
        assert a.timing_local > 0.05  # at T = 2 the deeper layers do lose to timing
        assert b.timing_local < 0.15 * a.timing_local
        assert b.quantisation_local < 0.15 * a.quantisation_local
    assert abs(long.rate_code_accuracy - long.clipped_accuracy) <= 1.0  # a 64-step code is nearly the clipped ANN
    assert long.layer("readout").total < short.layer("readout").total


def test_errors_are_relative_to_the_activation_norm_and_hooks_are_removed(converted, test_data):
    loaded = load_snn(converted)
    result = layer_gaps(loaded, test_data, timesteps=2, batch_size=100)
    clipped, rate, sites = gap_networks(loaded, 2)
    x = torch.stack([test_data[i][0] for i in range(len(test_data))])
    seen = {}
    handle = clipped.get_submodule("relu2").register_forward_hook(lambda m, a, out: seen.setdefault("a", out))
    handle2 = rate.get_submodule("relu2").register_forward_hook(lambda m, a, out: seen.setdefault("r", out))
    with torch.inference_mode():
        clipped(x), rate(x)
    handle.remove(), handle2.remove()
    expected = float((seen["r"] - seen["a"]).norm() / seen["a"].norm())
    assert result.layer("relu2").quantisation == pytest.approx(expected, rel=1e-4)
    assert all(not n._forward_hooks and not n._forward_pre_hooks for _, n in loaded.snn.neurons())


def test_rate_code_and_clip_follow_the_snn_own_weights(converted):
    loaded = load_snn(converted)
    conv = next(name for name, m in loaded.snn.body.named_modules() if isinstance(m, torch.nn.Conv2d))
    with torch.no_grad():
        loaded.snn.body.get_submodule(conv).weight.mul_(0.5)  # as a fine-tune would change it
    clipped, rate, _ = gap_networks(loaded, 2)
    for graph in (clipped, rate):
        assert torch.equal(graph.get_submodule(conv).weight, loaded.snn.body.get_submodule(conv).weight)
    assert not torch.equal(loaded.calibrated.get_submodule(conv).weight, loaded.snn.body.get_submodule(conv).weight)


def test_cli_prints_the_table_and_writes_json(converted, tmp_path, capsys):
    out = tmp_path / "gap.json"
    assert main(["gap", str(converted), *DIGITS, "--timesteps", "2", "--limit", "200", "--device", "cpu", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| relu3 |" in printed and "ideal rate code" in printed
    document = json.loads(out.read_text())
    assert document["format"] == "spikeconv-gap" and document["samples"] == 200 and document["timesteps"] == 2
    assert [row["name"] for row in document["layers"]][-1] == "readout"


def test_cli_refuses_bad_outputs_and_trained_snns_in_one_line(converted, tmp_path, capsys):
    before = converted.read_bytes()
    assert main(["gap", str(converted), *DIGITS, "--timesteps", "2", "--json", str(converted)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is an input" in err and converted.read_bytes() == before
    assert main(["gap", str(converted), *DIGITS, "--timesteps", "2", "--json", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["gap", str(tmp_path / "missing.snn.pt"), *DIGITS, "--timesteps", "2"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["gap", str(converted), *DIGITS, "--timesteps", "0"]) == 2
    trained = tmp_path / "srif.pt"
    assert main(["train-snn", "--arch", "digits-cnn", *DIGITS, "--epochs", "1", "--timesteps", "2", "--train-limit", "128",
                 "--out", str(trained)]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["gap", str(trained), *DIGITS, "--timesteps", "2"]) == 2
    err = capsys.readouterr().err
    assert "trained directly" in err and err.count("\n") == 1


def test_neurons_without_a_rate_code_are_refused_by_name(converted, tmp_path, capsys):
    bistable = tmp_path / "bsnn.snn.pt"
    ann = converted.with_name("ann.pt")
    assert main(["convert", str(ann), *DIGITS, "--method", "bsnn", "--device", "cpu", "--out", str(bistable)]) == 0
    capsys.readouterr()
    assert main(["gap", str(bistable), *DIGITS, "--timesteps", "4", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "has no ideal rate code" in err and "relu1" in err and err.count("\n") == 1


def test_time_chunks_give_the_same_analysis(converted, test_data):
    whole = layer_gaps(load_snn(converted), test_data, timesteps=3, batch_size=128)
    chunked_snn = load_snn(converted)
    chunked_snn.snn.time_chunk = 1  # the hooks add up the chunks of one forward
    chunked = layer_gaps(chunked_snn, test_data, timesteps=3, batch_size=128)
    assert chunked.snn_accuracy == whole.snn_accuracy
    for a, b in zip(whole.layers, chunked.layers, strict=True):
        assert a.mean_snn == pytest.approx(b.mean_snn, rel=1e-5, abs=1e-7)
        assert a.total == pytest.approx(b.total, rel=1e-5, abs=1e-7)
        if a.timing_local is not None:
            assert a.timing_local == pytest.approx(b.timing_local, rel=1e-5, abs=1e-7)
