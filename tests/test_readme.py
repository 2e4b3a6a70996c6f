"""README's promises: its Python example runs, and it keeps exactly the two set-up commands."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def test_python_example_runs(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the example writes net.nir
    (example,) = _blocks("python")
    exec(compile(example, "README.md", "exec"), {})
    printed = capsys.readouterr().out.split()
    assert len(printed) == 2 and all(0.0 <= float(v) <= 100.0 for v in printed)
    assert (tmp_path / "net.nir").stat().st_size > 0


def test_setup_section_has_the_two_make_commands():
    setup = _blocks("bash")[0]
    commands = [line.split("#")[0].strip() for line in setup.splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
    makefile = (README.parent / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, flags=re.M) and re.search(r"^test:", makefile, flags=re.M)
    assert "make test" in (README.parent / ".ci" / "run").read_text()
