"""Atomic file output: a reader never sees a half-written file, and a failure leaves none.

Every output is first written to a temporary ``.NAME.PID-HOST.RANDOM.tmp`` beside it and then
renamed over it. Inside :func:`output_set` the renames wait until every output of the set has
been written, so a command's outputs appear together or not at all. A process killed mid-write
(SIGKILL, power loss) leaves its temporary behind; the next write of the same file removes the
temporaries whose process is gone (:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

# The host tag keeps a run on another machine (same pid, shared folder) from judging our temporaries.
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_TEMP_MIDDLE = re.compile(r"(\d+)-([0-9a-f]{8})\.[A-Za-z0-9_]+")


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _process_alive(pid: int) -> bool:
    """True unless ``pid`` certainly names no process on this machine (a pid we cannot signal is alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: someone else's live process
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporaries of ``path`` left by killed runs; returns what was removed.

    Only ``.NAME.PID-HOST.RANDOM.tmp`` files of this host whose process no longer exists are
    removed: a running writer's temporary (ours or another process's) is never touched, and
    neither is a file of another name format. Failures to list or remove are ignored, since a
    stale temporary costs only disk space. (Pid reuse can keep a stale file; it never removes a
    live one.)
    """
    if os.name != "posix":  # os.kill(pid, 0) is not a liveness test elsewhere
        return []
    target = Path(path)
    prefix, removed = f".{target.name}.", []
    try:
        entries = [e.name for e in os.scandir(target.parent) if e.name.startswith(prefix) and e.name.endswith(".tmp")]
    except OSError:
        return []
    for name in entries:
        match = _TEMP_MIDDLE.fullmatch(name[len(prefix) : -len(".tmp")])
        if match is None or match.group(2) != _HOST:
            continue
        pid = int(match.group(1))
        if pid <= 0 or pid == os.getpid() or _process_alive(pid):
            continue
        with contextlib.suppress(OSError):
            os.unlink(target.parent / name)
            removed.append(target.parent / name)
    return removed


class OutputSet:
    """Outputs written to temporaries that are renamed into place together, by :func:`output_set`."""

    def __init__(self) -> None:
        self._staged: dict[str, tuple[str, Path]] = {}  # absolute target -> (temporary, target)

    def stage(self, temporary: str, target: Path) -> None:
        """Hold ``temporary`` until commit; a second write of the same target replaces the first."""
        key = os.path.abspath(target)
        if key in self._staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._staged[key][0])
        self._staged[key] = (temporary, target)

    def commit(self) -> None:
        """Rename every temporary over its target, in the order they were written."""
        pending = list(self._staged.values())
        self._staged.clear()
        try:
            while pending:
                temporary, target = pending[0]
                os.replace(temporary, target)
                pending.pop(0)
        finally:
            for temporary, _ in pending:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)

    def discard(self) -> None:
        """Remove every temporary; no target is touched."""
        for temporary, _ in self._staged.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        self._staged.clear()


_ACTIVE_SET: contextvars.ContextVar[OutputSet | None] = contextvars.ContextVar("spikeconv_output_set", default=None)


@contextlib.contextmanager
def output_set() -> Iterator[OutputSet]:
    """Make the outputs written in this block all-or-nothing.

    Each :func:`atomic_write` in the block writes (and fsyncs) its own temporary beside its target;
    the temporaries are renamed over their targets only after the block finished without error.
    If anything in the block fails, every temporary is removed and no target is touched. The final
    renames are sequential, not one atomic operation across files: they start only after every
    write succeeded and each is a same-folder rename, so only a crash (or a rename refused) between
    two of them can leave some targets new and others old. A block nested in another joins it.
    An ``OSError`` of the writes (disk full, permissions) is raised as one
    :class:`~spikeconv.errors.OutputError`.
    """
    from spikeconv.errors import OutputError

    if _ACTIVE_SET.get() is not None:
        yield _ACTIVE_SET.get()
        return
    outputs = OutputSet()
    token = _ACTIVE_SET.set(outputs)
    try:
        yield outputs
    except BaseException as error:
        outputs.discard()
        if isinstance(error, OSError):
            raise OutputError(_os_error_line(error)) from error
        raise
    finally:
        _ACTIVE_SET.reset(token)
    try:
        outputs.commit()
    except OSError as error:
        raise OutputError(_os_error_line(error)) from error


def _os_error_line(error: OSError) -> str:
    where = f" {error.filename}" if error.filename else ""
    return f"cannot write{where}: {error.strerror or error}; free space or fix permissions there, or pass another output path"


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO]:
    """Open a temporary file next to ``path``; rename it over ``path`` only if the block succeeds.

    Inside :func:`output_set` the rename waits for the end of the set. Stale temporaries of
    ``path`` from killed runs are removed first (:func:`remove_stale_temporaries`).

    Args:
        path: Final destination. Parent folders are created.
        mode: ``"w"`` for text or ``"wb"`` for bytes.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write supports modes 'w' and 'wb', not {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}-{_HOST}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_current_umask())  # mkstemp makes 0600 files; honour umask
        outputs = _ACTIVE_SET.get()
        if outputs is None:
            os.replace(tmp_name, target)
        else:
            outputs.stage(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


_OBJECT_MARKERS = ("Unsupported global", "Unsupported class", "is blocked", "not an allowed global")


def needs_full_unpickler(error: BaseException) -> bool:
    """Whether the weights-only loader refused a file because it holds pickled objects or opcodes."""
    import pickle

    return isinstance(error, pickle.UnpicklingError) and any(marker in str(error) for marker in _OBJECT_MARKERS)


def weights_only_load(source: str | os.PathLike[str] | IO[bytes]) -> Any:
    """``torch.load(source, weights_only=True, map_location="cpu")`` without torch's protocol warnings."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(source, map_location="cpu", weights_only=True)


def safe_torch_load(path: str | os.PathLike[str], *, what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)``, with every failure turned into one CheckpointError.

    The weights-only unpickler executes nothing from the file, so a failure means a missing,
    damaged or foreign file, or one holding pickled Python objects; each gets a message that
    names the file and what to do.
    """
    from spikeconv.errors import CheckpointError, first_line

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{what} {path} does not exist; check the path")
    if not path.is_file():
        raise CheckpointError(f"{what} {path} is not a file; pass the file itself")
    try:
        return weights_only_load(path)
    except Exception as error:  # random bytes raise IndexError/KeyError/RuntimeError/EOFError/UnpicklingError...
        if needs_full_unpickler(error):
            raise CheckpointError(
                f"{path} holds pickled Python objects (e.g. a whole nn.Module), which spikeconv will not "
                "execute; spikeconv's own files hold only tensors and plain values: write it again with spikeconv, "
                "or save a state_dict"
            ) from None
        reason = "empty file" if path.stat().st_size == 0 else f"{type(error).__name__}: {first_line(error)}"
        raise CheckpointError(f"{path} is not a readable torch file (corrupt or truncated: {reason})") from None


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (read in 1 MiB blocks): what identifies a model or data file in records."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
