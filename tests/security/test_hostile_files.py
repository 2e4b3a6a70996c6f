"""No hostile file runs its payload or makes spikeconv read beside it; each is refused in one line naming it."""

from __future__ import annotations

import pytest
from hostile_corpus import HOSTILE_CASES

from spikeconv.cli import main


@pytest.mark.parametrize("case", HOSTILE_CASES, ids=[case.name for case in HOSTILE_CASES])
def test_hostile_file_is_refused_without_running_anything(case, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "case"
    folder.mkdir()
    sentinel = tmp_path / "PAYLOAD-RAN"
    argv = case.build(folder, sentinel)
    monkeypatch.chdir(folder)
    code = main(argv)
    err = capsys.readouterr().err
    assert not sentinel.exists(), f"{case.name}: the payload ran"
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert case.reads in err, err
    assert not (folder / "out.snn.pt").exists() and not (folder / "report" / "report.json").exists()
