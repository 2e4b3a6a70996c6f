"""Read and validate an ONNX model, with one-line errors that name the file."""

from __future__ import annotations

import os
from pathlib import Path

import onnx

from spikeconv.errors import CheckpointError


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_onnx(source: str | os.PathLike | onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    """Load ``source`` (a path or a ``ModelProto``) and run ``onnx.checker.check_model`` on it.

    Returns:
        The model (external weight files next to a path are loaded too) and a label naming it in
        messages: the path, or ``ModelProto <graph name>``.

    Raises:
        CheckpointError: the file is missing, is not ONNX, or fails the ONNX checker.
    """
    if isinstance(source, onnx.ModelProto):
        model, label = source, f"ModelProto {source.graph.name or '<unnamed>'}"
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = str(path)
        if not path.exists():
            raise CheckpointError(f"ONNX file {label} does not exist; check the path")
        if not path.is_file():
            raise CheckpointError(f"ONNX path {label} is not a file; pass the .onnx file itself")
        try:
            model = onnx.load(str(path))
        except Exception as exc:  # protobuf raises DecodeError, RuntimeWarning-like errors, OSError
            reason = _first_line(exc)
            raise CheckpointError(f"{label} is not a readable ONNX model ({reason}); re-export it with torch.onnx.export") from None
    else:
        raise CheckpointError(f"expected an ONNX file path or onnx.ModelProto, got {type(source).__name__}")
    if not model.graph.node:
        raise CheckpointError(f"{label} holds no ONNX graph nodes; re-export the model with torch.onnx.export")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx.checker.ValidationError and C++ errors surface as several types
        raise CheckpointError(f"{label} fails the ONNX checker ({_first_line(exc)}); re-export the model") from None
    return model, label
