"""The C++ kernels live in ``spikeconv/neurons/csrc/`` as C++ files, ship with the package, and bind what Python calls."""

from __future__ import annotations

import ast
import fnmatch
import re
import tomllib
from pathlib import Path

import pytest

from spikeconv.neurons import native

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "spikeconv"
CPP_TOKENS = ("#include", "#define", "at::Tensor", "TORCH_CHECK", "TORCH_LIBRARY", "PYBIND11_MODULE", "for (int", "__restrict__",
              "template <", "namespace {")  # fmt: skip


def _python_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", _python_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_python_module_holds_cpp_source(path: Path):
    """C++ is written in ``.cpp``/``.h`` files that compilers and editors see, never in Python strings."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = [(node.lineno, token) for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)
             for token in CPP_TOKENS if token in node.value]  # fmt: skip
    assert not found, f"{path.relative_to(ROOT)}:{found[0][0]}: a string holds C++ ({found[0][1]!r}); put it in a csrc/ file"


def test_every_source_file_is_package_data():
    """A non-editable install carries every ``csrc/`` file (``pyproject.toml``'s package-data), or the build has no source."""
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["package-data"]["spikeconv.neurons"]
    files = sorted(p.relative_to(PACKAGE / "neurons").as_posix() for p in native._CSRC.iterdir() if p.is_file())
    assert files and all(name.endswith((".cpp", ".h")) for name in files)
    assert [f for f in files if not any(fnmatch.fnmatch(f, g) for g in globs)] == []
    assert sorted(native.native_sources()) == [Path(f).name for f in files]


def test_bindings_declarations_and_python_agree():
    """Each function Python expects is declared in ``ops.h``, defined in one ``.cpp`` and bound in ``bindings.cpp``."""
    declared = re.findall(r"^void (\w+)\(", (native._CSRC / "ops.h").read_text(encoding="utf-8"), re.MULTILINE)
    bound = re.findall(r"^\s*SPIKECONV_BIND\((\w+)\);", (native._CSRC / "bindings.cpp").read_text(encoding="utf-8"), re.MULTILINE)
    defined = [name for path in native._CSRC.glob("*.cpp") if path.name != "bindings.cpp"
               for name in re.findall(r"^void (\w+)\(", path.read_text(encoding="utf-8"), re.MULTILINE)]  # fmt: skip
    assert sorted(declared) == sorted(bound) == sorted(native._FUNCTIONS)
    assert sorted(set(defined) & set(declared)) == sorted(declared)
    assert len(set(declared)) == len(declared)
