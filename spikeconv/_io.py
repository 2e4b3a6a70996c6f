"""Atomic file output: a reader never sees a half-written file, and a failure leaves none."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO]:
    """Open a temporary file next to ``path``; rename it over ``path`` only if the block succeeds.

    Args:
        path: Final destination. Parent folders are created.
        mode: ``"w"`` for text or ``"wb"`` for bytes.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write supports modes 'w' and 'wb', not {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_current_umask())  # mkstemp makes 0600 files; honour umask
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def safe_torch_load(path: str | os.PathLike[str], *, what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)``, with every failure turned into one CheckpointError.

    The weights-only unpickler executes nothing from the file, so a failure means a missing,
    damaged or foreign file, or one holding pickled Python objects; each gets a message that
    names the file and what to do.
    """
    import pickle

    import torch

    from spikeconv.errors import CheckpointError

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{what} {path} does not exist; check the path")
    if not path.is_file():
        raise CheckpointError(f"{what} {path} is not a file; pass the file itself")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "Unsupported global" in str(error) or "Unsupported class" in str(error):
            raise CheckpointError(
                f"{path} holds pickled Python objects (e.g. a whole nn.Module), which spikeconv will not "
                "execute; save a state_dict instead"
            ) from None
        raise CheckpointError(f"{path} is not a readable torch file (corrupt?)") from None
    except Exception as error:  # random bytes raise IndexError/KeyError/RuntimeError/EOFError...
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else "empty file"
        raise CheckpointError(
            f"{path} is not a readable torch file (corrupt or truncated: {type(error).__name__}: {first_line})"
        ) from None
