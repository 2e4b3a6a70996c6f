"""ONNX files as SNN sources: self-contained bytes and the input's fixed sizes."""

from __future__ import annotations

from pathlib import Path

import onnx

from spikeconv.ingest.onnx.load import load_onnx
from spikeconv.ingest.onnx.verify import data_input


def self_contained_onnx(path: Path) -> onnx.ModelProto:
    """The checked model with any external weight files (the dynamo exporter writes ``.onnx.data``) inlined.

    :func:`~spikeconv.ingest.onnx.load.load_onnx` reads the external data (only from inside the
    model's folder) into the tensors and marks them as held inline, so the model's bytes stand alone.

    Raises:
        CheckpointError: The file is missing, not ONNX, refers to external data it may not, or fails the checker.
    """
    proto, _ = load_onnx(path)
    return proto


def onnx_input_dims(proto, label: str) -> list[int | None]:
    """Sizes of the model's data input, ``None`` where symbolic (``["batch", 1, 28, 28]`` -> ``[None, 1, 28, 28]``)."""
    value = data_input(proto, label)
    dims = value.type.tensor_type.shape.dim if value.type.tensor_type.HasField("shape") else []
    return [int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims]
