"""The import table of style.md holds: dependencies between spikeconv's parts never loop."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "spikeconv"
LEAVES = {"errors", "_fx", "_io", "_outputs", "_names"}  # _io (atomic writes), _outputs (output checks), _names (NamedEnum)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "runtime": {"errors"},
    "_fx": set(),
    "_io": {"errors"},
    "_outputs": {"errors"},
    "_names": {"errors"},
    "neurons": {"errors", "_fx", "_io", "_names"},
    "data": {"errors", "_fx", "_io", "_names", "runtime"},
    "ingest": {"errors", "_fx", "_io", "_names"},
    "calibration": {"errors", "_fx", "_io", "_names", "runtime"},
    "models": {"neurons", "errors", "_io", "_names"},
    "training": {"neurons", "errors", "_fx", "_io", "_names", "runtime"},
    "evaluation": {"neurons", "errors", "_io", "_names", "runtime"},
    "convert": {"neurons", "calibration", "_fx", "errors", "_io", "_names", "runtime"},
    "files": {"ingest", "calibration", "convert", "neurons", "data", "models", "training"} | LEAVES,
    "search": {"neurons", "data", "calibration", "training", "evaluation", "convert", "runtime"} | LEAVES,  # --method auto
    "options": {"neurons", "calibration", "models", "training", "convert", "files", "ingest", "search"} | LEAVES,  # strings -> configs
    "workflows": {"neurons", "data", "ingest", "calibration", "models", "training", "evaluation", "convert", "files", "runtime",
                  "search", "options"} | LEAVES,  # fmt: skip
    "cli": {"workflows", "errors", "data", "models", "neurons", "runtime"},
    "__main__": {"cli"},  # `python -m spikeconv` (and `torchrun -m spikeconv`): the entry point only
}
CLI_REGISTRY_NAMES = {"available_datasets", "available_models", "available_if_kernels"}


def _part_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 or rel.name != "__init__.py" else "__init__"


def _imports(path: Path) -> list[tuple[str, tuple[str, ...], int]]:
    """(imported spikeconv part, imported names, line) for every import in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "spikeconv":
            parts = node.module.split(".")
            if len(parts) > 1:
                found.append((parts[1], tuple(a.name for a in node.names), node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "spikeconv" and len(parts) > 1:
                    found.append((parts[1], (), node.lineno))
    return found


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if _part_of(p) != "__init__")


def test_every_part_is_in_the_table():
    parts = {_part_of(p) for p in SOURCES}
    assert parts <= set(ALLOWED), f"parts missing from the import table: {parts - set(ALLOWED)}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_table(path: Path):
    part = _part_of(path)
    for target, names, line in _imports(path):
        if target == part:
            continue
        assert target in ALLOWED[part], f"{path.name}:{line}: {part} may not import spikeconv.{target}"
        if part == "cli" and target in {"data", "models", "neurons"}:
            assert set(names) <= CLI_REGISTRY_NAMES, f"cli may use only name registries of {target}, not {names}"


def test_nothing_imports_cli():
    for path in SOURCES:
        if _part_of(path) not in ("cli", "__main__"):  # the cli package's own modules import each other; __main__ runs it
            assert all(target != "cli" for target, _, _ in _imports(path)), path


def _root_imports(path: Path) -> list[int]:
    """Lines of ``import spikeconv`` and ``from spikeconv import X`` (the package root) in a file."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "spikeconv":
            lines.append(node.lineno)
        elif isinstance(node, ast.Import) and any(alias.name == "spikeconv" for alias in node.names):
            lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_nothing_imports_the_package_root(path: Path):
    lines = _root_imports(path)
    assert not lines, f"{path.name}:{lines[0]}: import a part (spikeconv.<part>), never the package root spikeconv"


def test_where_to_add_table_names_paths_that_exist():
    import re

    doc = (ROOT / "docs" / "architecture.md").read_text()
    table = doc[doc.index("<!-- where-to-add:begin -->") : doc.index("<!-- where-to-add:end -->")]
    paths = re.findall(r"`(spikeconv/[^`]+)`", table)
    assert len(paths) >= 13
    root = ROOT
    assert [p for p in paths if not (root / p).exists()] == []
