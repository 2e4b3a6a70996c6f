"""`convert --method hybrid` on digits: it trains only when asked, records its budget, and beats its own start.

Also the cost per step that `curve --json` carries for binary and multi-spike neurons.
"""

from __future__ import annotations

import json

import pytest
import torch

from spikeconv.cli import main
from spikeconv.evaluation.step_cost import output_levels
from spikeconv.files import load_snn
from spikeconv.neurons import IFNeuron, SinCorrection

DIGITS = ["--dataset", "digits"]


def _run(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def ann(tmp_path_factory):
    path = tmp_path_factory.mktemp("hybrid") / "ann.pt"
    assert main(["train-ann", "--arch", "digits-cnn", *DIGITS, "--epochs", "3", "--seed", "0", "--out", str(path)]) == 0
    return path


def test_hybrid_fine_tunes_at_the_target_t_and_records_its_budget(ann, tmp_path, capsys):
    calibrated, hybrid = tmp_path / "cal.snn.pt", tmp_path / "hyb.snn.pt"
    common = [*DIGITS, "--target-timesteps", "1", "--device", "cpu"]
    assert _run(["convert", ann, *common, "--method", "calibrated", "--out", calibrated], capsys)[0] == 0
    code, out, err = _run(["convert", ann, *common, "--method", "hybrid", "--finetune-samples", "600", "--finetune-epochs", "1",
                           "--finetune-lr", "1e-3", "--out", hybrid], capsys)  # fmt: skip
    assert code == 0, err
    assert "fine-tuned at T = 1 on 600 training samples" in out
    curves = {}
    for name, path in (("calibrated", calibrated), ("hybrid", hybrid)):
        target = tmp_path / f"{name}.json"
        assert _run(["curve", path, *DIGITS, "--timesteps", "2", "--device", "cpu", "--json", target], capsys)[0] == 0
        curves[name] = json.loads(target.read_text())
    assert curves["hybrid"]["accuracy"][0] > curves["calibrated"]["accuracy"][0]  # training at T = 1 must help at T = 1
    cost = curves["hybrid"]["meta"]["step_cost"]
    assert cost["binary"] and cost["bits_per_neuron_step"] == 1.0 and len(cost["spikes_per_neuron_step"]) == 2
    code, out, _ = _run(["info", hybrid, "--json"], capsys)
    assert code == 0


def test_finetune_flags_are_refused_for_methods_that_do_not_train(ann, tmp_path, capsys):
    code, _, err = _run(["convert", ann, *DIGITS, "--method", "calibrated", "--finetune-epochs", "2", "--out", tmp_path / "x.snn.pt"],
                        capsys)  # fmt: skip
    assert code == 2 and "only apply to --method hybrid" in err and not (tmp_path / "x.snn.pt").exists()


def test_hybrid_fine_tunes_signed_per_channel_neurons_and_refuses_the_isi_rule_before_any_work(ann, tmp_path, capsys):
    signed = tmp_path / "signed.snn.pt"
    code, out, err = _run(["convert", ann, *DIGITS, "--target-timesteps", "2", "--device", "cpu", "--method", "hybrid",
                           "--per-channel", "--sin-correction", "signed", "--finetune-samples", "300", "--finetune-epochs", "1",
                           "--out", signed], capsys)  # fmt: skip
    assert code == 0, err
    assert "fine-tuned at T = 2 on 300 training samples" in out
    loaded = load_snn(signed)
    assert loaded.info["method"] == "hybrid" and loaded.info["hybrid"]["timesteps"] == 2
    neurons = [n for _, n in loaded.snn.neurons()]
    assert all(type(n) is IFNeuron and n.sin_correction is SinCorrection.SIGNED and n.threshold.numel() > 1 for n in neurons)
    refused = tmp_path / "isi.snn.pt"
    code, _, err = _run(["convert", ann, *DIGITS, "--method", "hybrid", "--sin-correction", "isi", "--out", refused], capsys)
    assert code == 2 and "hybrid fine-tunes IF neurons with one spike per step" in err and not refused.exists()
    assert len(err.strip().splitlines()) == 1


def test_output_levels_tell_multi_spike_neurons_apart():
    assert output_levels(IFNeuron(1.0)) == 2
    assert output_levels(IFNeuron(1.0, max_spikes=4)) == 5
    assert output_levels(IFNeuron(1.0, sin_correction=SinCorrection.SIGNED)) == 3
    assert torch.log2(torch.tensor(5.0)).item() == pytest.approx(2.3219, abs=1e-4)
