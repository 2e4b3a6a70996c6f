"""What a model file holds, detected from its content (never from a flag).

| content | detected by | read as |
|---|---|---|
| spikeconv checkpoint (``train-ann``) | weights-only torch file, ``format: spikeconv-ann`` | architecture + weights + preprocessing |
| ONNX model | protobuf header (or ``.onnx``) | ``ingest_onnx`` |
| ``torch.export`` program (``.pt2``) | zip holding ``archive_format`` = ``pt2`` | the strict reader (``ingest.exported.load``) |
| state_dict | weights-only torch file of name -> tensor | weights for ``--arch`` / ``--model-factory`` |
| pickled ``nn.Module`` (``torch.save(model)``) | refused by the weights-only loader | refused unless ``--trust-pickle`` |

Torch files are first read with ``weights_only=True``, which executes nothing; only
``trust_pickle`` loads pickled objects.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spikeconv._io import needs_full_unpickler, weights_only_load
from spikeconv.errors import CheckpointError, first_line
from spikeconv.files.nir_common import is_hdf5
from spikeconv.files.onnx_bytes import self_contained_onnx
from spikeconv.ingest.exported import is_exported_program

ACCEPTED = ("a spikeconv checkpoint (spikeconv train-ann), an ONNX file, a torch.export program (.pt2), "
            "or a state_dict with --arch or --model-factory")  # fmt: skip
PICKLE_REFUSAL = (
    "holds pickled Python objects (e.g. a whole nn.Module saved with torch.save(model)), and loading a pickle can run code "
    "from the file; save model.state_dict() and pass --arch or --model-factory, or save torch.export.export(model, (x,)) "
    "with torch.export.save, or export ONNX; or pass --trust-pickle if you trust the file"
)
_STATE_DICT_KEYS = ("state_dict", "model_state_dict")
_SNN_FORMATS = ("spikeconv-snn", "spikeconv-snn-trained")


class ModelFormat(Enum):
    """What a model file holds."""

    SPIKECONV = "spikeconv checkpoint"
    ONNX = "ONNX file"
    EXPORTED = "torch.export program"
    STATE_DICT = "state_dict"
    PICKLED_MODULE = "pickled nn.Module"


@dataclass(frozen=True)
class ModelFile:
    """A detected model file: its format and what was parsed (ONNX ModelProto, .pt2 bytes, state_dict, module)."""

    path: Path
    format: ModelFormat
    content: Any = None


def _is_onnx(path: Path) -> bool:
    if path.suffix.lower() == ".onnx":
        return True
    with path.open("rb") as handle:
        head = handle.read(4)
    return head[:1] == b"\x08"  # protobuf field 1 (ir_version); torch files start with b"PK" or a pickle opcode


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in name or name.endswith("constants.pkl") for name in archive.namelist())
    except Exception:  # not a readable zip (BadZipFile, a name that is not UTF-8, ...): the torch loader names the problem
        return False


def as_state_dict(content: Any) -> dict[str, torch.Tensor] | None:
    """``content`` as a name -> tensor dict (also inside ``{"state_dict": ...}``; a DataParallel ``module.`` prefix is dropped), or None."""
    if isinstance(content, Mapping):
        for key in _STATE_DICT_KEYS:
            if isinstance(content.get(key), Mapping):
                content = content[key]
                break
    if not isinstance(content, Mapping) or not content:
        return None
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in content.items()):
        return None
    if all(k.startswith("module.") for k in content):
        return {k[len("module.") :]: v for k, v in content.items()}
    return dict(content)


def _classify(path: Path, content: Any, *, snn_ok: bool = False) -> ModelFile | Mapping:
    if isinstance(content, Mapping) and content.get("format") == "spikeconv-ann":
        return ModelFile(path, ModelFormat.SPIKECONV, content)
    if isinstance(content, Mapping) and content.get("format") in _SNN_FORMATS:
        if snn_ok:
            return content
        raise CheckpointError(f"{path} is already a spiking network (an SNN file); convert takes the trained ANN")
    if isinstance(content, nn.Module):
        return ModelFile(path, ModelFormat.PICKLED_MODULE, content)
    state_dict = as_state_dict(content)
    if state_dict is not None:
        return ModelFile(path, ModelFormat.STATE_DICT, state_dict)
    raise CheckpointError(f"{path} holds a {type(content).__name__} that is neither a model nor a state_dict; give {ACCEPTED}")


def _load_torch(path: Path, *, trust_pickle: bool, refusal: str = PICKLE_REFUSAL) -> Any:
    try:
        return weights_only_load(path)
    except Exception as error:  # random bytes raise IndexError/KeyError/RuntimeError/EOFError/UnpicklingError...
        if not needs_full_unpickler(error):
            raise CheckpointError(f"{path} is not a model file spikeconv can read; give {ACCEPTED}") from None
    if not trust_pickle:
        raise CheckpointError(f"{path} {refusal}")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # a class that cannot be imported here, or a damaged file
        raise CheckpointError(f"{path} cannot be unpickled ({first_line(error)}); its classes must be importable here, or save a "
                              "state_dict and use --model-factory") from None  # fmt: skip


def read_model_file(path: str | Path, *, trust_pickle: bool = False) -> ModelFile:
    """Detect what ``path`` holds and parse it once; the loaders of :mod:`spikeconv.files.ann_loaders` take it from here.

    Raises:
        CheckpointError: Missing file, an unknown or damaged format, an SNN file, or a pickled
            object without ``trust_pickle``; one line that names the file and the accepted formats.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"model file {path} does not exist; check the path")
    if not path.is_file():
        raise CheckpointError(f"model path {path} is not a file; give {ACCEPTED}")
    return _non_torch(path) or _classify(path, _load_torch(path, trust_pickle=trust_pickle))


def _non_torch(path: Path) -> ModelFile | None:
    """An ONNX model or a ``.pt2`` program, parsed; None for anything else; TorchScript and NIR graphs are refused."""
    if is_hdf5(path):
        raise CheckpointError(f"{path} is a NIR graph (a spiking network, not a trained ANN); measure it with `spikeconv curve`")
    if _is_onnx(path):
        return ModelFile(path, ModelFormat.ONNX, self_contained_onnx(path))
    data = path.read_bytes()
    if is_exported_program(data):
        return ModelFile(path, ModelFormat.EXPORTED, data)
    if _is_torchscript(path):
        raise CheckpointError(f"{path} is a TorchScript archive, which spikeconv does not read; give {ACCEPTED}")
    return None


INFO_PICKLE_REFUSAL = ("holds pickled Python objects (e.g. a whole nn.Module saved with torch.save(model)), and loading a "
                       "pickle can run code from the file, so `spikeconv info` does not read it; save model.state_dict(), "
                       "a torch.export program or ONNX instead")  # fmt: skip


def read_any_file(path: str | Path) -> ModelFile | Mapping:
    """What ``spikeconv info`` reads: a detected model file as :func:`read_model_file` gives it, or the payload dict
    of an SNN file (``spikeconv-snn`` or ``spikeconv-snn-trained``), read weights-only. Never unpickles.

    Raises:
        CheckpointError: Missing file, a folder, an unknown or damaged format, or pickled objects; one line.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"file {path} does not exist; check the path")
    if not path.is_file():
        raise CheckpointError(f"{path} is not a file; give a model file or an SNN file")
    return _non_torch(path) or _classify(path, _load_torch(path, trust_pickle=False, refusal=INFO_PICKLE_REFUSAL), snn_ok=True)
