"""Read a ``torch.export`` program (``.pt2``) without running code from the file.

``torch.export.load`` is not safe on a hostile file: when its new-format reader fails it silently
falls back to the older layout, whose constants are unpickled with ``weights_only=False``; the new
format itself unpickles some parts (tensor subclasses, custom and opaque objects) and loads
AOTInductor shared libraries from ``data/aotinductor/``; and a deserialised graph node may name
any attribute reachable from ``torch``, which constant folding would then call.

So, unless the caller trusts the file, :func:`load_exported`

1. checks the archive's layout against what ``torch.export.save`` writes for a plain program
   (one archive folder; ``models/``, ``data/weights/``, ``data/constants/``,
   ``data/sample_inputs/``, ``extra/`` and the version records; uncompressed-size bound; no
   duplicate entries) and refuses anything else, naming the entry;
2. checks every weight and constant is a raw tensor record (no ``use_pickle``, no custom or
   opaque objects) and that the sample inputs load with the weights-only unpickler;
3. re-packs only the checked entries into a fresh archive and reads that with torch's
   new-format reader (``load_pt2``) alone, so torch never sees an entry that was not checked
   and never takes the older-format path;
4. refuses a graph whose nodes call anything but registered operators.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import torch

from spikeconv._io import weights_only_load
from spikeconv.errors import CheckpointError, UnsupportedLayerError, first_line

PT2_FIX = (
    "re-export it with torch.export.export from plain weights, or pass --trust-pickle (trust_pickle=True) if you trust the file"
)
_NAME = r"[A-Za-z0-9_]+"
_FIXED_ENTRIES = ("archive_format", "archive_version", "byteorder", ".data/version", ".data/serialization_id")
_REWRITTEN_BY_WRITER = (".data/version", ".data/serialization_id", "byteorder")
_ALLOWED = tuple(re.compile(pattern) for pattern in (
    rf"models/{_NAME}\.json",
    rf"data/weights/{_NAME}_weights_config\.json",
    r"data/weights/weight_[0-9]+",
    rf"data/constants/{_NAME}_constants_config\.json",
    r"data/constants/tensor_[0-9]+",
    rf"data/sample_inputs/{_NAME}\.pt",
    r"extra/[A-Za-z0-9_.\-]+",
))  # fmt: skip
_MAX_EXPANSION = 64  # uncompressed bytes per archive byte; torch.export.save stores entries uncompressed
_TORCH_LOGGERS = ("torch.export", "torch._export", "torch._export.serde.serialize", "torch.export.pt2_archive._package")


def _archive(data: bytes) -> zipfile.ZipFile | None:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None


def is_exported_program(data: bytes | str | os.PathLike) -> bool:
    """Whether ``data`` (bytes or a path) is a zip holding an ``archive_format`` record = ``pt2``."""
    try:
        raw = data if isinstance(data, bytes) else Path(data).read_bytes()
    except OSError:
        return False
    archive = _archive(raw)
    if archive is None:
        return False
    with archive:
        try:
            formats = [info for info in archive.infolist() if info.filename.rsplit("/", 1)[-1] == "archive_format"]
            return bool(formats) and archive.read(formats[0]).strip() == b"pt2"
        except (OSError, zipfile.BadZipFile, KeyError, ValueError, RuntimeError, EOFError, NotImplementedError):
            return False


def _refuse(label: str, why: str) -> CheckpointError:
    return CheckpointError(f"{label} is not a plain torch.export archive ({why}); {PT2_FIX}")


def _checked_entries(data: bytes, label: str) -> dict[str, bytes]:
    """The archive's entries by name inside its folder, after the layout check (step 1)."""
    archive = _archive(data)
    if archive is None:
        raise CheckpointError(f"{label} is not a readable zip archive (damaged .pt2?); save it again with torch.export.save")
    with archive:
        infos = [info for info in archive.infolist() if not info.is_dir()]
        names = [info.filename for info in infos]
        if len(set(names)) != len(names):
            raise _refuse(label, "it holds two entries with the same name")
        folders = {name.split("/", 1)[0] for name in names if "/" in name}
        loose = [name for name in names if "/" not in name]
        if loose:
            raise _refuse(label, f"entry {loose[0]!r} lies at the top level: this is the older torch.export layout, "
                                 "which torch reads by unpickling")
        if len(folders) != 1:
            raise _refuse(label, f"it holds {len(folders)} archive folders, not one")
        folder = folders.pop() + "/"
        if sum(info.file_size for info in infos) > _MAX_EXPANSION * max(len(data), 1 << 20):
            raise _refuse(label, "its entries expand to far more than the file's size")
        entries: dict[str, bytes] = {}
        for info in infos:
            name = info.filename[len(folder):]
            if info.flag_bits & 0x1:
                raise _refuse(label, f"entry {name!r} is encrypted")
            if name not in _FIXED_ENTRIES and not any(pattern.fullmatch(name) for pattern in _ALLOWED):
                raise _refuse(label, f"unexpected entry {name!r}")
            try:
                entries[name] = archive.read(info)
            except Exception as exc:  # CRC errors, bad compression, truncated data
                raise CheckpointError(f"{label}: entry {name!r} cannot be read ({type(exc).__name__}); the file is damaged") from None
    if entries.get("archive_format", b"").strip() != b"pt2":
        raise _refuse(label, "its archive_format record is not 'pt2'")
    return entries


def _config(entries: dict[str, bytes], name: str, label: str) -> dict:
    if name not in entries:
        raise _refuse(label, f"{name!r} is missing")
    try:
        config = json.loads(entries[name]).get("config")
    except (ValueError, AttributeError, UnicodeDecodeError):
        raise CheckpointError(f"{label}: {name!r} is not valid JSON; the file is damaged") from None
    if not isinstance(config, dict) or not all(isinstance(entry, dict) for entry in config.values()):
        raise _refuse(label, f"{name!r} does not list tensors")
    return config


def _check_payloads(entries: dict[str, bytes], label: str) -> None:
    """Step 2: every model's weights and constants are raw tensors, its sample inputs weights-only."""
    models = [name[len("models/"):-len(".json")] for name in entries if name.startswith("models/")]
    if "model" not in models:
        raise _refuse(label, "it holds no 'models/model.json'")
    for model in models:
        for kind, folder, prefix in (("weights", "data/weights/", "weight_"), ("constants", "data/constants/", "tensor_")):
            config = _config(entries, f"{folder}{model}_{kind}_config.json", label)
            for fqn, entry in config.items():
                path_name = str(entry.get("path_name", ""))
                if entry.get("use_pickle") or not path_name.startswith(prefix):
                    raise CheckpointError(f"{label} holds pickled Python objects ({kind} {fqn!r} in {path_name!r}), and loading them "
                                          f"could run code from the file; {PT2_FIX}")  # fmt: skip
                if f"{folder}{path_name}" not in entries:
                    raise _refuse(label, f"{kind} {fqn!r} names the missing entry {path_name!r}")
        inputs = f"data/sample_inputs/{model}.pt"
        if inputs not in entries:
            raise _refuse(label, f"{inputs!r} is missing")
        try:
            weights_only_load(io.BytesIO(entries[inputs]))
        except Exception:  # anything the weights-only loader refuses, torch would unpickle
            raise CheckpointError(f"{label} holds pickled Python objects (sample inputs {inputs} that only a full unpickler "
                                  f"reads), and loading them could run code from the file; {PT2_FIX}") from None  # fmt: skip


def _repack(entries: dict[str, bytes]) -> bytes:
    """Step 3: a fresh archive of the checked entries, written by torch's own writer."""
    from torch.export.pt2_archive._package import PT2ArchiveWriter

    buffer = io.BytesIO()
    with PT2ArchiveWriter(buffer) as writer:
        for name, payload in entries.items():
            if name not in _REWRITTEN_BY_WRITER:
                writer.write_bytes(name, payload)
    return buffer.getvalue()


def _is_operator(target: object) -> bool:
    import math
    import operator

    if isinstance(target, (torch._ops.OpOverload, torch._ops.HigherOrderOperator)):
        return True
    module = getattr(target, "__module__", None)
    name = getattr(target, "__name__", "")
    return callable(target) and (getattr(operator, name, None) is target or getattr(math, name, None) is target
                                 or (module == "torch" and name.startswith("sym_")))  # fmt: skip


def _check_targets(program: torch.export.ExportedProgram, label: str) -> None:
    """Step 4: only registered operators may be called (a node's target can name any torch attribute)."""
    for module in program.graph_module.modules():
        graph = getattr(module, "graph", None)
        for node in [] if graph is None else graph.nodes:
            if node.op == "call_function" and not _is_operator(node.target):
                raise UnsupportedLayerError(f"{label}: node {node.name!r} calls {node.target!r}, which is not a torch operator; "
                                            "spikeconv runs only exported operator graphs")  # fmt: skip
            if node.op == "call_method":
                raise UnsupportedLayerError(f"{label}: node {node.name!r} calls the method {node.target!r}; "
                                            "spikeconv runs only exported operator graphs")  # fmt: skip


@contextlib.contextmanager
def quiet_torch_export() -> Iterator[None]:
    """Silence torch.export's deprecation and fallback chatter while a program is read."""
    loggers = [logging.getLogger(name) for name in _TORCH_LOGGERS]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _read_strict(data: bytes, label: str) -> torch.export.ExportedProgram:
    from torch.export.pt2_archive._package import load_pt2

    entries = _checked_entries(data, label)
    _check_payloads(entries, label)
    try:
        with quiet_torch_export():
            contents = load_pt2(io.BytesIO(_repack(entries)))
        program = contents.exported_programs["model"]
    except CheckpointError:
        raise
    except Exception as exc:  # deserialisation raises many types (version skew, unknown ops, damaged JSON)
        reason = first_line(exc)
        raise CheckpointError(f"{label} cannot be read as a torch.export program ({type(exc).__name__}: {reason}); "
                              f"re-export it with torch {torch.__version__}") from None  # fmt: skip
    _check_targets(program, label)
    return program


def _read_trusted(data: bytes, label: str) -> torch.export.ExportedProgram:
    try:
        with quiet_torch_export():
            return torch.export.load(io.BytesIO(data))
    except Exception as exc:  # deserialisation raises many types
        reason = first_line(exc)
        raise CheckpointError(f"{label} cannot be loaded by torch.export.load ({reason}); "
                              f"re-export it with torch {torch.__version__}") from None  # fmt: skip


def load_exported(source: str | os.PathLike | bytes, *, trust_pickle: bool = False,
                  label: str | None = None) -> tuple[torch.export.ExportedProgram, str]:  # fmt: skip
    """Load an ``ExportedProgram`` from a ``.pt2`` path or its bytes, running no code from it.

    Args:
        source: The file, or its bytes (as embedded in SNN files).
        trust_pickle: Use ``torch.export.load`` itself, which may unpickle parts of the file.
        label: How messages name the program (default: the path, or "the torch.export program").

    Returns:
        The program and the label naming it in messages.

    Raises:
        CheckpointError: Missing or unreadable file, not a plain ``torch.export`` archive, or
            parts that would be unpickled, without ``trust_pickle``.
        UnsupportedLayerError: The graph calls something other than torch operators.
    """
    if isinstance(source, bytes):
        data, label = source, label or "the torch.export program"
    else:
        path = Path(source)
        label = label or str(path)
        if not path.is_file():
            raise CheckpointError(f"torch.export file {label} does not exist; check the path")
        data = path.read_bytes()
    if not is_exported_program(data):
        raise CheckpointError(f"{label} is not a torch.export archive; "
                              "save one with torch.export.save(torch.export.export(model, (x,)), path)")  # fmt: skip
    if trust_pickle:
        return _read_trusted(data, label), label
    return _read_strict(data, label), label
