"""bench/reproduce_seeds.py (issue 30): the report's statistics on fake logs, and a finished run is not trained twice."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
import reproduce_seeds  # noqa: E402

ACCURACY = {  # (method, T, seed) -> final test accuracy of the fake finished runs
    ("if", 2, 0): 88.0, ("if", 2, 1): 88.5, ("if", 2, 2): 87.7,
    ("lif", 2, 0): 88.9, ("lif", 2, 1): 88.1, ("lif", 2, 2): 88.6,
    ("srif", 2, 0): 89.2, ("srif", 2, 1): 88.4, ("srif", 2, 2): 89.0,
    ("srif+mpr", 2, 0): 89.5, ("srif+mpr", 2, 2): 88.8,  # seed 1 is partial
}  # fmt: skip


def write_log(run, out_dir, *, epochs_done, final=None, config=None):
    path = run.log(out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    epochs = [{"epoch": e, "train_loss": 1.0, "train_accuracy": 50.0, "eval_accuracy": 50.0 if e < run.epochs else final,
               "seconds": 10.0, "lr": 0.1} for e in range(1, epochs_done + 1)]  # fmt: skip
    log = {"format": "spikeconv-snn-log", "config": config or run.expected_config(), "arch": {"name": "fmnist-cnn"}, "epochs": epochs}
    path.write_text(json.dumps(log))


@pytest.fixture
def fake_ablation(tmp_path):
    """The T = 2 half of a 3-epoch ablation: 11 runs finished, one partial, and all of T = 4 missing."""
    runs = reproduce_seeds.plan("ablation", seeds=[0, 1, 2], epochs=3, timesteps=[2, 4], methods=None, train_limit=None)
    for run in runs:
        key = (run.method, run.timesteps, run.seed)
        if key in ACCURACY:
            write_log(run, tmp_path, epochs_done=3, final=ACCURACY[key])
        elif key == ("srif+mpr", 2, 1):
            write_log(run, tmp_path, epochs_done=1)
    return tmp_path


def test_report_gives_mean_std_and_paired_differences_and_marks_missing_cells(fake_ablation, capsys):
    reproduce_seeds.main(["--report", "--table", "ablation", "--epochs", "3", "--out-dir", str(fake_ablation)])
    printed = capsys.readouterr().out
    table = json.loads((fake_ablation / "report.json").read_text())["tables"]["ablation"]
    cells = {(c["method"], c["timesteps"]): c for c in table["cells"]}
    srif = [ACCURACY[("srif", 2, s)] for s in range(3)]
    assert cells[("srif", 2)]["mean"] == pytest.approx(statistics.fmean(srif))
    assert cells[("srif", 2)]["std"] == pytest.approx(statistics.stdev(srif)) and cells[("srif", 2)]["n"] == 3
    assert cells[("srif+mpr", 2)]["n"] == 2 and cells[("srif+mpr", 2)]["by_seed"]["1"] is None
    assert cells[("if", 4)] == {"method": "if", "timesteps": 4, "mean": None, "std": None, "n": 0,
                                "by_seed": {"0": None, "1": None, "2": None}}  # fmt: skip
    paired = {(p["a"], p["b"], p["timesteps"]): p for p in table["paired"]}
    srif_minus_if = [ACCURACY[("srif", 2, s)] - ACCURACY[("if", 2, s)] for s in range(3)]
    assert [paired[("srif", "if", 2)]["by_seed"][str(s)] for s in range(3)] == pytest.approx(srif_minus_if)
    assert paired[("srif", "if", 2)]["std"] == pytest.approx(statistics.stdev(srif_minus_if))
    mpr = paired[("srif+mpr", "srif", 2)]  # seed 1 unpaired: only seeds 0 and 2 count
    assert mpr["n"] == 2 and mpr["by_seed"]["1"] is None and mpr["mean"] == pytest.approx((0.3 + -0.2) / 2)
    assert mpr["positive"] == 1 and paired[("srif", "lif", 4)]["n"] == 0
    assert "| srif+mpr | 2 | 3 | 89.50 | partial 1/3 | 88.80 | 89.15 ± 0.49 (n = 2) |" in printed
    assert "| if | 4 | 3 | missing | missing | missing | — |" in printed
    assert "| srif − if | 2 | +1.20 | -0.10 | +1.30 |" in printed and "11 of 24 runs finished." in printed
    assert (fake_ablation / "report.md").read_text() + "\n" == printed


def test_a_log_of_other_options_is_named_not_counted_and_training_over_it_is_refused(tmp_path, capsys):
    (run,) = reproduce_seeds.plan("mtlif", seeds=[0], epochs=2, timesteps=[2], methods=None, train_limit=None)
    write_log(run, tmp_path, epochs_done=2, final=93.0, config={**run.expected_config(), "lr": 0.001})
    reproduce_seeds.main(["--report", "--table", "mtlif", "--seeds", "0", "--epochs", "2", "--out-dir", str(tmp_path)])
    assert "| mtlif | 2 | 2 | other options | — | — |" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="other options"):
        reproduce_seeds.main(["--table", "mtlif", "--seeds", "0", "--epochs", "2", "--out-dir", str(tmp_path)])


def test_dry_run_lists_the_partial_and_missing_runs_with_resume(fake_ablation, capsys):
    reproduce_seeds.main(["--table", "ablation", "--epochs", "3", "--timesteps", "2", "--dry-run", "--out-dir", str(fake_ablation)])
    lines = capsys.readouterr().out.splitlines()
    would = [line for line in lines if line.startswith("would run")]
    assert len(would) == 1 and "--neuron srif --mpr --timesteps 2 --epochs 3 --seed 1" in would[0] and would[0].endswith("--resume")
    assert sum(line.startswith("finished, skipped") for line in lines) == 11


def test_a_finished_run_is_skipped_on_rerun(tmp_path):
    """One real run (digits, 256 images, 1 epoch) through spikeconv train-snn, then the same command again."""
    args = [sys.executable, str(BENCH / "reproduce_seeds.py"), "--table", "ablation", "--methods", "srif", "--seeds", "0",
            "--timesteps", "2", "--epochs", "1", "--train-limit", "256", "--arch", "digits-cnn", "--dataset", "digits",
            "--out-dir", str(tmp_path)]  # fmt: skip
    first = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    (log,) = (tmp_path / "ablation").glob("*.log.json")
    assert log.name == "srif_t2_e1_s0_n256.pt.log.json" and "missing, running" in first.stdout
    config = json.loads(log.read_text())["config"]
    assert (config["optimizer"], config["augment"], config["neuron"]["mpr"]) == ("sgd", "shift-flip", False)
    before = log.stat().st_mtime_ns, (tmp_path / "ablation" / "srif_t2_e1_s0_n256.pt").read_bytes()
    again = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "finished, skipped" in again.stdout and "running" not in again.stdout
    assert (log.stat().st_mtime_ns, (tmp_path / "ablation" / "srif_t2_e1_s0_n256.pt").read_bytes()) == before
