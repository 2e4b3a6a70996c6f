"""Read a ``torch.export`` program (``.pt2``) without running pickled code from it.

``torch.export.load`` unpickles some parts of an archive (tensor subclasses, custom and opaque
objects, legacy weight files, and sample inputs that fail the weights-only loader), and unpickling
can run code. A plain exported ReLU network holds none of these, so :func:`load_exported` first
reads the archive's index and refuses any such part unless the caller trusts the file.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import torch

from spikeconv.errors import CheckpointError

_SAFE_PREFIXES = ("weight_", "tensor_")
PT2_FIX = (
    "re-export it with torch.export.export from plain weights, or pass --trust-pickle (trust_pickle=True) if you trust the file"
)


def is_exported_program(data: bytes | str | os.PathLike) -> bool:
    """Whether ``data`` (bytes or a path) is a ``torch.export.save`` archive (a zip with ``archive_format`` = ``pt2``)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else Path(data)) as archive:
            formats = [name for name in archive.namelist() if name.rsplit("/", 1)[-1] == "archive_format"]
            return bool(formats) and archive.read(formats[0]).strip() == b"pt2"
    except (OSError, zipfile.BadZipFile, KeyError):
        return False


def _pickled_parts(archive: zipfile.ZipFile) -> list[str]:
    """Entries of the archive that ``torch.export.load`` would unpickle (empty for a plain program)."""
    found = []
    for name in archive.namelist():
        folder, _, base = name.rpartition("/")
        if base.endswith(("_weights_config.json", "_constants_config.json")):
            config = json.loads(archive.read(name)).get("config", {})
            found += [f"{base}:{fqn}" for fqn, entry in config.items()
                      if entry.get("use_pickle") or not str(entry.get("path_name", "")).startswith(_SAFE_PREFIXES)]  # fmt: skip
        elif base.endswith(".pt") and folder.endswith(("data/weights", "data/constants")):
            found.append(name)  # legacy pickled weights/constants
        elif base.endswith(".pt") and folder.endswith("data/sample_inputs"):
            try:
                torch.load(io.BytesIO(archive.read(name)), weights_only=True)
            except Exception:  # anything the weights-only loader refuses would be unpickled
                found.append(name)
    return found


def load_exported(source: str | os.PathLike | bytes, *, trust_pickle: bool = False) -> tuple[torch.export.ExportedProgram, str]:
    """Load an ``ExportedProgram`` from a ``.pt2`` path or its bytes.

    Args:
        source: The file, or its bytes (as embedded in SNN files).
        trust_pickle: Load even parts that ``torch.export.load`` unpickles.

    Returns:
        The program and a label naming it in messages.

    Raises:
        CheckpointError: Missing or unreadable file, not a ``torch.export`` archive, or pickled
            parts without ``trust_pickle``.
    """
    if isinstance(source, bytes):
        data, label = source, "the embedded torch.export program"
    else:
        path = Path(source)
        label = str(path)
        if not path.is_file():
            raise CheckpointError(f"torch.export file {label} does not exist; check the path")
        data = path.read_bytes()
    if not is_exported_program(data):
        raise CheckpointError(f"{label} is not a torch.export archive; "
                              "save one with torch.export.save(torch.export.export(model, (x,)), path)")  # fmt: skip
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        pickled = _pickled_parts(archive)
    if pickled and not trust_pickle:
        raise CheckpointError(
            f"{label} holds pickled Python objects ({', '.join(pickled[:3])}{', ...' if len(pickled) > 3 else ''}), and loading them "
            f"could run code from the file; {PT2_FIX}"
        )
    try:
        program = torch.export.load(io.BytesIO(data))
    except Exception as exc:  # deserialisation raises many types (version skew, unknown ops)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{label} cannot be loaded by torch.export.load ({reason}); "
                              f"re-export it with torch {torch.__version__}") from None  # fmt: skip
    return program, label
