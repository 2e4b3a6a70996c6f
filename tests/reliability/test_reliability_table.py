"""Every bad input in tests/reliability/cases.py fails in one line with exit 2, and docs/reliability.md shows exactly that.

The table between the markers in docs/reliability.md is rendered from these runs; with
``SPIKECONV_WRITE_DOCS=1`` this test rewrites it instead of comparing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cases import CASES, case_folder, render, run_case
from loader_fuzz import run_cli

DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
BEGIN, END = "<!-- reliability-table:begin -->\n", "<!-- reliability-table:end -->"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Each case run once, in its own folder; tests only read the results."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    runs = {}
    try:
        for case in CASES:
            folder = case_folder(tmp_path_factory.mktemp("case"))
            runs[case.name] = run_case(case, folder, run_cli), folder
    finally:
        torch.set_num_threads(threads)
    return runs


def test_case_names_are_unique():
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("name", [case.name for case in CASES])
def test_each_bad_input_is_one_line_with_exit_2_and_leaves_nothing(results, name):
    result, folder = results[name]
    assert result.code == 2, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not result.sentinel_created, f"{name}: a payload ran"
    left = sorted(p.name for p in folder.rglob("*") if p.name.startswith(("OUT", ".OUT", "REPORT")))
    assert left == [], f"{name} left outputs {left}"


def test_the_hostile_corpus_is_in_the_table():
    hostile = [case for case in CASES if case.sentinel]
    assert len(hostile) >= 20, "tests/security/hostile_corpus.py is missing or empty"


def test_doc_table_is_generated_from_the_cases(results):
    table = render([results[case.name][0] for case in CASES])
    text = DOC.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    if os.environ.get("SPIKECONV_WRITE_DOCS") == "1":
        DOC.write_text(text[:start] + table + text[end:])
        return
    assert text[start:end] == table, "docs/reliability.md is out of date: rerun with SPIKECONV_WRITE_DOCS=1 (see its header)"
