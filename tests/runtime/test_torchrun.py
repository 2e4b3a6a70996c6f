"""Two torchrun processes (gloo on the CPU) against one, on digits: bench/torchrun_check.py, about a minute.

Slow (two process launches per check, each importing torch), so outside the default suite:
``pytest -m slow tests/runtime/test_torchrun.py`` or ``python bench/torchrun_check.py``.

* The 2-process curve equals the 1-process curve exactly: each rank simulates whole batches of the
  single-process order (batch i on rank i mod 2) and the integer counts are summed.
* train-snn on 2 processes with the same global batch ends within 2 points (10 of 500 test samples)
  of one process: the gradient is the same mean over the global batch, but BatchNorm normalises each
  rank's half batch with its own statistics, and float sums are reduced in another order, so the two
  runs take slightly different steps from the first batch on.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "torchrun_check.py"


@pytest.mark.slow
def test_two_processes_match_one(tmp_path, request):
    if "slow" not in (request.config.getoption("markexpr") or ""):  # the suite does not deselect "slow" by itself
        pytest.skip("slow (two torchrun launches, about a minute): run with -m slow, or python bench/torchrun_check.py")
    done = subprocess.run([sys.executable, str(BENCH), "--work", str(tmp_path), "--tolerance", "2.0"], capture_output=True,
                          text=True, timeout=900)  # fmt: skip
    assert done.returncode in (0, 1), done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["curve"]["equal"], report["curve"]
    train = report["train_snn"]
    assert train["within"] and train["checkpoint_matches_log"] and train["epochs_logged"] == 2, train
    assert sorted(p.name for p in tmp_path.glob("snn2.pt*")) == ["snn2.pt", "snn2.pt.log.json"]  # one checkpoint, one log
