"""Build, cache and bind the C++ neuron kernels of ``csrc/``, compiled once per machine.

The C++ sources live beside this module in ``csrc/`` (shipped as package data): the converted neurons'
time loops (``if_loops.cpp``), pooling (``pooling.cpp``), the trainable neurons' time loops
(``trainable_loops.cpp``), the element-wise passes of direct training (``training_passes.cpp``), their shared
helpers (``common.h``, ``pool_planes.h``), the declarations (``ops.h``) and the Python bindings
(``bindings.cpp``). Each kernel does the same IEEE float32 operations in the same order as the pure-torch
reference it stands in for (compiled with ``-ffp-contract=off``: no fused multiply-adds, no fast math;
``-fno-trapping-math`` only lets GCC vectorise ``floor``, which cannot trap on these values), so its outputs are
bit-identical to the reference, which ``tests/neurons/test_fast_kernels.py`` and
``tests/neurons/test_native_training.py`` check. Where the extension is off or cannot be built, every caller
runs its pure-torch kernel instead (also bit-identical).

Build and cache: the first process that needs the kernels compiles them (``torch.utils.cpp_extension.load``,
about a minute; one line on stderr says so) into ``<cache>/<key>/``, where ``<cache>`` is
``$SPIKECONV_NATIVE_CACHE``, else ``$XDG_CACHE_HOME/spikeconv/native``, else
``~/.cache/spikeconv/native``, and ``<key>`` hashes the contents of every ``csrc/`` file, the compile flags,
the torch and Python builds and this CPU (``-march=native`` code must never run on another CPU). A file lock
keeps two processes from building at once. Every later process imports the built library directly (no
compiler, no ninja), in milliseconds.

``SPIKECONV_NATIVE``: unset (default) uses the kernels where they build and otherwise falls back, with a
logged warning, to the pure-torch kernels; a failed build is recorded in the cache folder so later processes do
not retry it. ``0`` turns the kernels off; ``1`` requires them (retrying a failed build) and raises
:class:`~spikeconv.errors.ConfigError` if they cannot be built.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.machinery
import importlib.util
import logging
import os
import platform
import shutil
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import torch

from spikeconv.errors import ConfigError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no cross-process lock (torch's own build lock still applies)
    fcntl = None

logger = logging.getLogger("spikeconv")

_CSRC = Path(__file__).with_name("csrc")
"""The C++ sources: every ``*.cpp`` there is compiled into the extension, every ``*.h`` is part of the key."""
_SOURCE_SUFFIXES = (".cpp", ".h")
_FUNCTIONS = ["if_run", "signed_run", "isi_run", "burst_run", "avg_pool_run", "avg_pool_grad", "maxpool_gate_run", "binary_run",
              "binary_bptt", "mtlif_run", "mtlif_bptt", "mpr_parts", "mpr_parts_both", "mpr_join", "mpr_fire", "mpr_fire_grad",
              "binary_step_grad", "mtlif_step_grad", "rectangular_slope", "heaviside", "comb_slope"]  # fmt: skip
"""What ``csrc/bindings.cpp`` binds; a cached library lacking one of them is rebuilt."""
_FLAGS = ["-O3", "-ffp-contract=off", "-fno-fast-math", "-fno-trapping-math", "-march=native"]
_LAYOUT = "1"  # the cache folder layout; part of the key
_state: dict[str, ModuleType | None] = {}


class _Unavailable(Exception):
    """The kernels cannot be used here; the message says why (``recorded``: an earlier process's failure)."""

    def __init__(self, reason: str, recorded: bool = False) -> None:
        super().__init__(reason)
        self.recorded = recorded


def native_sources() -> dict[str, bytes]:
    """The contents of the ``csrc/`` files, by file name (sorted): what the extension is compiled from."""
    try:
        paths = sorted(p for p in _CSRC.iterdir() if p.suffix in _SOURCE_SUFFIXES and p.is_file())
        sources = {p.name: p.read_bytes() for p in paths}
    except OSError as error:
        raise _Unavailable(f"the C++ sources in {_CSRC} cannot be read ({error})") from error
    if not any(name.endswith(".cpp") for name in sources):
        raise _Unavailable(f"no C++ sources in {_CSRC}; reinstall spikeconv")
    return sources


def _cpu_tag() -> str:
    """A short hash of this CPU's model and flags: ``-march=native`` code built for one CPU must never be loaded
    from a shared cache on another (it could stop on an illegal instruction)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            lines = [line for line in handle if line.startswith(("model name", "flags", "Features", "CPU part"))][:3]
    except OSError:
        lines = []
    return hashlib.sha256(("".join(lines) + platform.machine() + platform.processor()).encode()).hexdigest()[:10]


def cache_key() -> str:
    """What the built library depends on: the ``csrc/`` files, flags, torch and Python builds, CPU."""
    sources = "\0".join(f"{name}\n{text.decode('utf-8', 'replace')}" for name, text in native_sources().items())
    parts = [_LAYOUT, sources, " ".join(_FLAGS), ",".join(_FUNCTIONS), torch.__version__, str(torch.version.git_version),
             sys.version, sysconfig.get_config_var("EXT_SUFFIX") or "", _cpu_tag()]  # fmt: skip
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def cache_root() -> Path:
    """The folder holding one sub-folder per :func:`cache_key`."""
    explicit = os.environ.get("SPIKECONV_NATIVE_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "spikeconv" / "native"


def _module_name() -> str:
    return f"spikeconv_native_{cache_key()}"


def cached_library() -> Path:
    """Where the built library for this machine lives (it may not exist yet)."""
    return cache_root() / cache_key() / f"{_module_name()}{importlib.machinery.EXTENSION_SUFFIXES[-1]}"


def _import_library(path: Path) -> ModuleType:
    """Import a built extension module from ``path`` (no compiler involved); ImportError if unusable."""
    name = _module_name()
    loader = importlib.machinery.ExtensionFileLoader(name, str(path))
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    if spec is None:
        raise ImportError(f"no module spec for {path}")
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    missing = [f for f in _FUNCTIONS if not hasattr(module, f)]
    if missing:
        raise ImportError(f"{path} lacks {', '.join(missing)}")
    return module


def _try_cached(path: Path) -> ModuleType | None:
    """The cached library, or ``None`` if absent or unusable (then it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        return _import_library(path)
    except ImportError as error:
        logger.warning("spikeconv: cached C++ kernels %s unusable (%s); rebuilding", path, error)
        return None


@contextlib.contextmanager
def _build_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (released by the OS if the process dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _compile(target: Path) -> ModuleType:
    """Build the extension from ``csrc/`` in a scratch folder beside ``target``, move the library to ``target``,
    return it."""
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        raise _Unavailable(f"no C++ compiler {compiler!r} on PATH")
    sources = [str(_CSRC / name) for name in native_sources() if name.endswith(".cpp")]
    build = target.parent / "build"
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    from torch.utils.cpp_extension import load

    module = load(_module_name(), sources, extra_cflags=_FLAGS, build_directory=str(build), verbose=False)
    os.replace(module.__file__, target)
    shutil.rmtree(build, ignore_errors=True)
    return module


def _build(target: Path) -> ModuleType:
    """Compile under the lock unless another process finished first; record a failure for later processes."""
    failed = target.parent / "failed.txt"
    with _build_lock(target.parent.with_suffix(".lock")):
        module = _try_cached(target)
        if module is not None:
            return module
        target.parent.mkdir(parents=True, exist_ok=True)
        print(f"spikeconv: compiling the C++ neuron kernels once for this machine (about a minute) into {target.parent}; "
              "SPIKECONV_NATIVE=0 skips this", file=sys.stderr, flush=True)  # fmt: skip
        try:
            module = _compile(target)
        except Exception as error:  # noqa: BLE001 - any build failure means: no loops here
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            failed.write_text(f"{reason}\n", encoding="utf-8")
            raise _Unavailable(reason) from error
        failed.unlink(missing_ok=True)
        return module


def _mode() -> str:
    """``auto``, ``off`` or ``on`` from ``SPIKECONV_NATIVE``."""
    value = os.environ.get("SPIKECONV_NATIVE", "").strip().lower()
    modes = {"": "auto", "auto": "auto", "0": "off", "false": "off", "off": "off", "1": "on", "true": "on", "on": "on"}
    if value not in modes:
        raise ConfigError(f"SPIKECONV_NATIVE must be 0 (pure-torch kernels), 1 (require the C++ kernels) or unset, got {value!r}")
    return modes[value]


def _load(mode: str) -> ModuleType:
    """The cached library, else a fresh build (``auto`` does not retry a recorded failure)."""
    target = cached_library()
    module = _try_cached(target)
    if module is not None:
        return module
    failed = target.parent / "failed.txt"
    if mode == "auto" and failed.is_file():
        raise _Unavailable(f"an earlier build failed ({failed.read_text(encoding='utf-8').strip()}); "
                           "SPIKECONV_NATIVE=1 retries it", recorded=True)  # fmt: skip
    return _build(target)


def native_ops() -> ModuleType | None:
    """The compiled extension, or ``None`` if it is turned off or cannot be built (logged once per process).

    Raises:
        ConfigError: ``SPIKECONV_NATIVE=1`` and the extension cannot be built or loaded.
    """
    if "ops" in _state:
        return _state["ops"]
    mode, ops = _mode(), None
    if mode != "off":
        try:
            ops = _load(mode)
        except (_Unavailable, OSError) as error:
            if mode == "on":
                raise ConfigError(f"SPIKECONV_NATIVE=1 but the C++ neuron kernels are unavailable: {error}; "
                                  "unset SPIKECONV_NATIVE to fall back to the pure-torch kernels") from error  # fmt: skip
            level = logging.INFO if getattr(error, "recorded", False) else logging.WARNING
            logger.log(level, "spikeconv: C++ neuron kernels unavailable (%s); using the pure-torch kernels (same results)", error)
    _state["ops"] = ops
    return ops


def native_ops_for(*tensors: object) -> ModuleType | None:
    """The extension, where these plain CPU tensors are computed eagerly (not traced, exported or
    compiled, not fake or subclassed tensors: the C++ calls are invisible to those), else ``None``."""
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling():
        return None
    if not all(type(t) is torch.Tensor and t.device.type == "cpu" for t in tensors):
        return None
    return native_ops()


def float32_ops_for(x: torch.Tensor, *scalars: torch.Tensor) -> ModuleType | None:
    """:func:`native_ops_for` where ``x`` is a non-empty contiguous float32 CPU tensor and each of ``scalars`` holds
    one value: what the element-wise C++ passes of direct training (``csrc/training_passes.cpp``) take."""
    if x.dtype != torch.float32 or not x.is_contiguous() or x.numel() == 0 or any(s.numel() != 1 for s in scalars):
        return None
    return native_ops_for(x, *scalars)


def native_available() -> bool:
    """Whether the C++ kernels are (or can be) loaded on this machine."""
    return native_ops() is not None
