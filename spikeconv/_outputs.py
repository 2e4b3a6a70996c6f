"""Output paths checked before any work: writable, not a folder, not an input, not given twice.

A job calls :func:`check_outputs` first, so a path that cannot or must not be written costs
seconds, not a training run, and the user's files (the model being converted, the SNN being
measured) are never replaced by an output. The check writes nothing but a probe file that it
removes at once; missing parent folders are created only when the output is written.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from spikeconv.errors import OutputError

__all__ = ["check_output_folder", "check_outputs"]

PathLike = str | os.PathLike[str]


def check_outputs(outputs: Mapping[str, PathLike | None], inputs: Iterable[PathLike | None] = ()) -> None:
    """Refuse, before any work, outputs that would fail or destroy data.

    Args:
        outputs: Option name (``"--out"``, ``"--plan-json"``, ...) -> file to write; None entries
            (options not given) are skipped.
        inputs: Files the command reads; None entries are skipped.

    Raises:
        OutputError: An output is an input (same path, link or hard link), two outputs are the
            same file, an output is an existing folder or a non-regular file, or its folder
            cannot be created or written. The message names the option, the path and the fix.
    """
    chosen = {label: Path(path) for label, path in outputs.items() if path is not None}
    sources = [Path(path) for path in inputs if path is not None]
    for label, path in chosen.items():
        for source in sources:
            if _same_file(path, source):
                raise OutputError(f"{label} {path} is an input of this command ({source}) and writing it would "
                                  f"destroy that file; pass another {label} path")  # fmt: skip
    labels = list(chosen)
    for index, first in enumerate(labels):
        for second in labels[index + 1 :]:
            if _same_file(chosen[first], chosen[second]):
                raise OutputError(f"{first} and {second} are both {chosen[second]}, so one would overwrite the other; "
                                  f"pass a different path to {second}")  # fmt: skip
    for label, path in chosen.items():
        if path.is_dir():
            raise OutputError(f"{label} {path} is a folder; pass a file name, e.g. {os.path.join(path, 'NAME')}")
        if os.path.lexists(path) and not path.is_file():
            raise OutputError(f"{label} {path} exists and is not a regular file; pass the path of a file to write")
        _check_writable_folder(label, path, path.absolute().parent)


def check_output_folder(label: str, folder: PathLike) -> None:
    """Refuse an output folder that is a file or cannot be created or written.

    Raises:
        OutputError: One line naming ``label``, the folder and the fix.
    """
    folder = Path(folder)
    if os.path.lexists(folder) and not folder.is_dir():
        raise OutputError(f"{label} {folder} is a file, not a folder; pass a folder (it is created if missing)")
    _check_writable_folder(label, folder, folder.absolute())


def _same_file(a: Path, b: Path) -> bool:
    with contextlib.suppress(OSError, RuntimeError):
        if a.resolve() == b.resolve():
            return True
    try:
        return os.path.samefile(a, b)  # hard links, case-insensitive file systems
    except OSError:
        return False


def _check_writable_folder(label: str, path: Path, folder: Path) -> None:
    """``folder`` exists and is writable, or the nearest folder above it that exists is writable."""
    existing = folder
    while not os.path.lexists(existing) and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{label} {path} cannot be created: {existing} is not a folder; pass a path in a folder")
    if not os.access(existing, os.W_OK | os.X_OK) or not _can_create_file_in(existing):
        raise OutputError(f"{label} {path} cannot be written: folder {existing} is not writable; "
                          "pass a path in a writable folder")  # fmt: skip


def _can_create_file_in(folder: Path) -> bool:
    """Create and remove a probe file: the only test a read-only mount or an ACL cannot fool."""
    try:
        fd, name = tempfile.mkstemp(prefix=".spikeconv-probe.", suffix=".tmp", dir=folder)
    except OSError:
        return False
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)
    return True
