"""Two processes (torchrun, gloo on the CPU) against one: the checks of docs/scaling.md, on digits in about a minute.

1. ``curve`` of a converted digits SNN: 2-process JSON == 1-process JSON, exactly (curve, ANN accuracy, samples).
2. ``train-snn`` with the same global batch: 2-process final test accuracy within ``--tolerance`` points of the
   1-process run, and the 2-process checkpoint (written once, by rank 0) read back by ``spikeconv curve``.

Prints one JSON object; exits 1 when a check fails.

Usage:
    python bench/torchrun_check.py [--work DIR] [--epochs 2] [--tolerance 2.0]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BIN = Path(sys.executable).parent
DIGITS = ["--dataset", "digits"]


def spikeconv(*args: str | Path, processes: int = 1) -> None:
    """Run one spikeconv command, in one process or under ``torchrun --standalone``; raise on failure."""
    launcher = [sys.executable, "-m", "spikeconv"]
    if processes > 1:
        launcher = [str(BIN / "torchrun"), "--standalone", f"--nproc-per-node={processes}", "-m", "spikeconv"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same thread count in both runs (torchrun's default)
    done = subprocess.run([*launcher, *map(str, args)], capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(launcher + list(map(str, args)))}\n{done.stderr[-3000:]}")


def curve_check(work: Path, timesteps: int) -> dict:
    ann, snn = work / "ann.pt", work / "snn.pt"
    spikeconv("train-ann", "--arch", "digits-cnn", *DIGITS, "--epochs", "3", "--out", ann, "--device", "cpu")
    spikeconv("convert", ann, *DIGITS, "--method", "calibrated", "--out", snn, "--device", "cpu")
    one, two = work / "curve1.json", work / "curve2.json"
    spikeconv("curve", snn, *DIGITS, "--timesteps", timesteps, "--batch-size", "64", "--json", one, "--device", "cpu")
    spikeconv("curve", snn, *DIGITS, "--timesteps", timesteps, "--batch-size", "64", "--json", two, "--device", "cpu", processes=2)
    a, b = (json.loads(p.read_text()) for p in (one, two))
    keys = ("timesteps", "accuracy", "ann_accuracy", "num_samples")
    return {"equal": all(a[k] == b[k] for k in keys), "one_process": {k: a[k] for k in keys[1:]},
            "two_processes": {k: b[k] for k in keys[1:]}}  # fmt: skip


def train_check(work: Path, epochs: int, tolerance: float) -> dict:
    common = ["train-snn", "--arch", "digits-cnn", *DIGITS, "--timesteps", "2", "--epochs", str(epochs), "--batch-size", "64",
              "--seed", "0", "--device", "cpu"]  # fmt: skip
    one, two = work / "snn1.pt", work / "snn2.pt"
    spikeconv(*common, "--out", one)
    spikeconv(*common, "--out", two, processes=2)
    logs = [json.loads(Path(f"{p}.log.json").read_text())["epochs"] for p in (one, two)]
    final = [log[-1]["eval_accuracy"] for log in logs]
    spikeconv("curve", two, *DIGITS, "--timesteps", "2", "--json", work / "trained2.json", "--device", "cpu")
    read_back = json.loads((work / "trained2.json").read_text())["accuracy"][-1]
    return {"one_process": final[0], "two_processes": final[1], "difference": round(abs(final[0] - final[1]), 2),
            "tolerance": tolerance, "within": abs(final[0] - final[1]) <= tolerance, "curve_of_checkpoint": read_back,
            "checkpoint_matches_log": abs(read_back - final[1]) < 1e-9, "epochs_logged": len(logs[1])}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="Folder for the files [default: a temporary one].")
    parser.add_argument("--timesteps", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--tolerance", type=float, default=2.0, help="Points of test accuracy (10 of digits' 500 samples).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        report = {"curve": curve_check(work, args.timesteps), "train_snn": train_check(work, args.epochs, args.tolerance)}
    print(json.dumps(report, indent=1))
    ok = report["curve"]["equal"] and report["train_snn"]["within"] and report["train_snn"]["checkpoint_matches_log"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
