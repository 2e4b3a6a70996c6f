"""--device and --precision on the command line, `python -m spikeconv`, and the refusals (one line, exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from spikeconv.cli import main

DIGITS = ["--dataset", "digits"]


def _run(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def snn(tmp_path_factory):
    """A digits SNN converted with --device cpu from an ANN trained for 2 epochs (a few seconds)."""
    folder = tmp_path_factory.mktemp("device")
    ann, snn = folder / "ann.pt", folder / "snn.pt"
    assert main(["train-ann", "--arch", "digits-cnn", *DIGITS, "--epochs", "2", "--train-limit", "600", "--out", str(ann),
                 "--device", "cpu"]) == 0
    assert main(["convert", str(ann), *DIGITS, "--method", "rate", "--calib-samples", "256", "--out", str(snn), "--device", "cpu"]) == 0
    return snn


def test_device_cpu_is_the_default_result_and_bf16_stays_close(snn, tmp_path, capsys):
    paths = {name: tmp_path / f"{name}.json" for name in ("default", "cpu", "bf16")}
    common = ["curve", snn, *DIGITS, "--timesteps", 16, "--limit", 200]
    assert _run([*common, "--json", paths["default"]], capsys)[0] == 0
    assert _run([*common, "--json", paths["cpu"], "--device", "cpu", "--precision", "32"], capsys)[0] == 0
    assert _run([*common, "--json", paths["bf16"], "--device", "cpu", "--precision", "bf16"], capsys)[0] == 0
    default, cpu, bf16 = (json.loads(p.read_text()) for p in paths.values())
    assert default["accuracy"] == cpu["accuracy"] and default["ann_accuracy"] == cpu["ann_accuracy"]
    assert abs(bf16["accuracy"][-1] - cpu["accuracy"][-1]) <= 5.0  # 10 of 200 samples; docs/scaling.md has the measured cost


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize("command", ["curve", "train-snn", "train-ann", "convert"])
def test_device_cuda_without_cuda_is_one_line_and_exit_2(snn, tmp_path, capsys, command):
    args = {"curve": ["curve", snn, *DIGITS], "train-snn": ["train-snn", "--arch", "digits-cnn", *DIGITS, "--out", tmp_path / "x.pt"],
            "train-ann": ["train-ann", "--arch", "digits-cnn", *DIGITS, "--out", tmp_path / "x.pt"],
            "convert": ["convert", snn.with_name("ann.pt"), *DIGITS, "--out", tmp_path / "x.snn.pt"]}[command]  # fmt: skip
    code, out, err = _run([*args, "--device", "cuda"], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: --device cuda: CUDA is not available")
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "x.snn.pt").exists()


def test_python_dash_m_spikeconv_runs_the_cli():
    done = subprocess.run([sys.executable, "-m", "spikeconv", "curve", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--device" in done.stdout and "--precision" in done.stdout
