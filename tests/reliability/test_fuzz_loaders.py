"""A small seeded slice of bench/fuzz_loaders.py: mutants of every file format end in exit 0 or one ``error:`` line with exit 2.

The mutator is tests/reliability/loader_fuzz.py; the longer run and its counts are in
docs/benchmarks.md. Each loader bug the fuzzer found has a crafted regression input in
tests/reliability/cases.py (group "damaged files"), checked here and rendered in docs/reliability.md.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from cases import DAMAGED_CASES, case_folder, material, run_case
from loader_fuzz import FORMATS, fuzz, make_seeds, mutate, rezip, run_cli
from onnx import numpy_helper

MUTANTS = 15  # per format: 120 mutants, about 12 s on 2 cores
SEED = 0
BENCH = Path(__file__).resolve().parents[2] / "bench" / "fuzz_loaders.py"


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return make_seeds(tmp_path_factory.mktemp("seeds"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_mutants_exit_0_or_one_error_line(fmt, seeds, tmp_path):
    outcomes = list(fuzz(fmt, seeds, tmp_path, mutants=MUTANTS, seed=SEED))
    failed = [f"#{o.index} {o.kind}: {o.verdict}: {o.err.strip()[-300:]}" for o in outcomes if o.verdict.startswith("FAILED")]
    assert not failed, "\n".join(failed)
    assert any(o.verdict == "error" for o in outcomes)


def _mutants(fmt: str, data: bytes, count: int = 4) -> list[tuple[bytes, str]]:
    rng = random.Random(f"{SEED}:{fmt}")
    return [mutate(fmt, data, rng) for _ in range(count)]


def test_the_mutator_is_deterministic_and_changes_the_file(seeds):
    for fmt in FORMATS:
        data = seeds[fmt].read_bytes()
        mutants = _mutants(fmt, data)
        assert [kind for _, kind in mutants] == [kind for _, kind in _mutants(fmt, data)]
        assert all(mutant != data for mutant, _ in mutants), fmt
    rng = random.Random(1)
    kinds = {mutate("ann", seeds["ann"].read_bytes(), rng)[1].split(" ")[0] for _ in range(60)}
    assert {"payload", "member", "zip"} <= kinds  # structured, zip-member and zip-layout mutations all occur


@pytest.mark.parametrize("fmt", ["ann", "pt2", "snn", "trained", "npz"])
def test_a_rezipped_seed_still_works(fmt, seeds, tmp_path):
    """Zip-member mutants are re-zipped: an unchanged re-zip must load, so a mutant's failure is the mutation's."""
    from loader_fuzz import SUFFIXES, command

    path = tmp_path / f"rezipped{SUFFIXES[fmt]}"
    path.write_bytes(rezip(seeds[fmt].read_bytes(), lambda members: members))
    code, _, err = run_cli(command(fmt, path, seeds, tmp_path, 0))
    assert code == 0, err


@pytest.mark.parametrize("case", DAMAGED_CASES, ids=[case.name for case in DAMAGED_CASES])
def test_each_loader_bug_found_by_fuzzing_stays_fixed(case, tmp_path):
    result = run_case(case, case_folder(tmp_path), run_cli)
    assert result.code == 2, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    named = [word for word in result.command.split() if word.endswith((".onnx", ".pt2", ".pt", ".snn.pt", ".npz"))]
    assert any(name.split(":")[-1] in result.stderr for name in named), result.stderr


def test_onnxruntime_warnings_do_not_reach_stderr(tmp_path):
    """An unused initializer made onnxruntime print a warning straight to file descriptor 2 (found while fuzzing)."""
    model = onnx.load_model_from_string(material("onnx"))
    model.graph.initializer.append(numpy_helper.from_array(np.zeros(3, np.float32), "unused"))
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    code, _, err = run_cli(["convert", str(path), "--dataset", "digits", "--calib-samples", "16", "--out", str(tmp_path / "o.snn.pt")])
    assert code == 0 and err == "", err


def test_the_bench_script_runs_and_counts(tmp_path):
    done = subprocess.run([sys.executable, str(BENCH), "--mutants", "3", "--formats", "npz", "--out-dir", str(tmp_path / "failures")],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "| npz | 3 |" in done.stdout and "0 failure(s)" in done.stdout, done.stdout
