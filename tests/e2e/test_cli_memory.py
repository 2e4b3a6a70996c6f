"""The CLI under a memory budget: an absurd T fails at once in one line, a tight budget chunks time (same numbers)."""

from __future__ import annotations

import json
import time

import pytest
import torch

from spikeconv.cli import main
from spikeconv.evaluation import measure_footprint
from spikeconv.evaluation.memory import CURVE_BYTES_PER_STEP, SLACK
from spikeconv.runtime.memory import current_rss
from spikeconv.workflows import load_snn

DIGITS = ["--dataset", "digits"]


@pytest.fixture(scope="module")
def snn_file(tmp_path_factory):
    """A digits CNN trained for one epoch and converted (about 4 s); tests only read it."""
    folder = tmp_path_factory.mktemp("memory")
    ann, snn = folder / "ann.pt", folder / "d.snn.pt"
    assert main(["train-ann", "--arch", "digits-cnn", *DIGITS, "--epochs", "1", "--train-limit", "256", "--out", str(ann)]) == 0
    assert main(["convert", str(ann), *DIGITS, "--calib-samples", "128", "--out", str(snn)]) == 0
    return snn


def _one_error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    return lines[0]


def test_an_absurd_t_fails_in_seconds_with_one_line(snn_file, tmp_path, capsys):
    capsys.readouterr()
    started = time.perf_counter()
    code = main(["curve", str(snn_file), *DIGITS, "--timesteps", "1000000000", "--limit", "1", "--json", str(tmp_path / "c.json")])
    assert code == 2 and time.perf_counter() - started < 10
    line = _one_error_line(capsys)
    assert "1000000000 timesteps need" in line and "per-step accuracy curve alone" in line and "use at most" in line
    assert not (tmp_path / "c.json").exists()


def test_compare_refuses_an_absurd_t_before_training(tmp_path, capsys):
    capsys.readouterr()
    out = tmp_path / "report"
    code = main(["compare", "--arch", "digits-cnn", *DIGITS, "--methods", "ann,calibrated", "--timesteps", "1,1000000000",
                 "--epochs", "1", "--limit", "10", "--out-dir", str(out)])  # fmt: skip
    assert code == 2 and "per-step accuracy curve alone" in _one_error_line(capsys)
    assert not out.exists()


def test_a_tight_budget_chunks_time_and_gives_the_same_curve(snn_file, tmp_path, monkeypatch, capsys):
    timesteps, batch = 32, 100
    loaded = load_snn(snn_file)
    with torch.inference_mode():
        footprint = measure_footprint(loaded.snn.eval(), torch.rand(1, *loaded.info["input_shape"]))
    fixed = footprint.readout_bytes(timesteps, batch) + timesteps * CURVE_BYTES_PER_STEP + batch * footprint.per_call + SLACK
    whole, chunked = tmp_path / "whole.json", tmp_path / "chunked.json"
    args = ["curve", str(snn_file), *DIGITS, "--timesteps", str(timesteps), "--limit", "300", "--batch-size", str(batch)]
    assert main([*args, "--json", str(whole)]) == 0
    held = current_rss() + (32 << 20)  # the cap is on the process: what it holds now, and a little for what the curve loads
    monkeypatch.setenv("SPIKECONV_MEMORY_BUDGET", str(held + fixed + 5 * batch * footprint.per_step))  # a few steps at a time
    assert main([*args, "--json", str(chunked)]) == 0
    a, b = (json.loads(p.read_text()) for p in (whole, chunked))
    assert a["accuracy"] == b["accuracy"] and a["ann_accuracy"] == b["ann_accuracy"] and a["num_samples"] == 300
    monkeypatch.setenv("SPIKECONV_MEMORY_BUDGET", "1M")  # less than the process holds: not one sample fits
    capsys.readouterr()
    assert main([*args, "--json", str(tmp_path / "none.json")]) == 2
    line = _one_error_line(capsys)
    assert "memory budget of 0 B" in line  # refused by the first check that sees it (the curve's per-step record)
    assert "SPIKECONV_MEMORY_BUDGET=1M, of which the process already holds" in line
    assert not (tmp_path / "none.json").exists()
