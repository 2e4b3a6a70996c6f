"""Read and validate an ONNX model, with one-line errors that name the file.

External data (weights kept in files beside the model, as the dynamo exporter writes) is read
only from plain files inside the model's own folder: a location that is absolute, climbs out with
``..``, or leaves the folder through a link is refused. A model given as a ``ModelProto`` (or
bytes, as embedded in SNN files) must be self-contained: it has no folder to read from, and
onnxruntime would otherwise resolve its references against the current folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import onnx

from spikeconv.errors import CheckpointError, first_line


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        yield from _attribute_tensors(node.attribute)


def _attribute_tensors(attributes) -> Iterator[onnx.TensorProto]:
    for attribute in attributes:
        if attribute.HasField("t"):
            yield attribute.t
        yield from attribute.tensors
        if attribute.HasField("sparse_tensor"):
            yield from (attribute.sparse_tensor.values, attribute.sparse_tensor.indices)
        for sparse in attribute.sparse_tensors:
            yield from (sparse.values, sparse.indices)
        if attribute.HasField("g"):
            yield from _graph_tensors(attribute.g)
        for graph in attribute.graphs:
            yield from _graph_tensors(graph)


def _all_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    yield from _graph_tensors(model.graph)
    for function in model.functions:
        for node in function.node:
            yield from _attribute_tensors(node.attribute)


def external_locations(model: onnx.ModelProto) -> list[str]:
    """The external-data locations ``model`` refers to (empty for a self-contained model)."""
    found = []
    for tensor in _all_tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.external_data:
            entries = {entry.key: entry.value for entry in tensor.external_data}
            found.append(entries.get("location", "<no location>"))
    return found


def _check_locations(model: onnx.ModelProto, folder: Path, label: str) -> None:
    """Refuse external data outside ``folder``: absolute paths, ``..``, links that leave it, non-files."""
    root = folder.resolve()
    for location in dict.fromkeys(external_locations(model)):
        relative = Path(location)
        target = (folder / relative).resolve()
        if relative.is_absolute() or ".." in relative.parts or not target.is_relative_to(root):
            raise CheckpointError(f"{label} refers to external data {location!r} outside its own folder; "
                                  "spikeconv reads external data only from files beside the model")  # fmt: skip
        if not target.is_file():
            raise CheckpointError(f"{label} refers to external data file {location!r}, which is missing beside it; "
                                  "copy it next to the model or re-export with the weights inside")  # fmt: skip


def _load_path(path: Path, label: str) -> onnx.ModelProto:
    from onnx.external_data_helper import load_external_data_for_model

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError, RuntimeWarning-like errors, OSError
        reason = first_line(exc, limit=None)
        raise CheckpointError(f"{label} is not a readable ONNX model ({reason}); re-export it with torch.onnx.export") from None
    _check_locations(model, path.parent, label)
    try:
        load_external_data_for_model(model, str(path.parent))
    except Exception as exc:  # offsets past the end, unreadable files
        raise CheckpointError(f"{label}: its external data cannot be read ({first_line(exc, limit=None)}); re-export the model") from None
    return model


def load_onnx(source: str | os.PathLike | onnx.ModelProto, *, label: str | None = None) -> tuple[onnx.ModelProto, str]:
    """Load ``source`` (a path or a ``ModelProto``) and run ``onnx.checker.check_model`` on it.

    Args:
        source: The ``.onnx`` file, or a model already parsed (which must be self-contained).
        label: How messages name the model (default: the path, or ``ModelProto <graph name>``).

    Returns:
        The model (external weight files beside a path are read in, see the module docstring) and
        the label naming it in messages.

    Raises:
        CheckpointError: the file is missing, is not ONNX, refers to external data it may not,
            or fails the ONNX checker.
    """
    if isinstance(source, onnx.ModelProto):
        model, label = source, label or f"ModelProto {source.graph.name or '<unnamed>'}"
        if external_locations(model):
            raise CheckpointError(f"{label} refers to external data ({external_locations(model)[0]!r}) but has no folder to read it "
                                  "from; inline it (onnx.save_model(..., save_as_external_data=False))")  # fmt: skip
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = label or str(path)
        if not path.exists():
            raise CheckpointError(f"ONNX file {label} does not exist; check the path")
        if not path.is_file():
            raise CheckpointError(f"ONNX path {label} is not a file; pass the .onnx file itself")
        model = _load_path(path, label)
    else:
        raise CheckpointError(f"expected an ONNX file path or onnx.ModelProto, got {type(source).__name__}")
    if not model.graph.node:
        raise CheckpointError(f"{label} holds no ONNX graph nodes; re-export the model with torch.onnx.export")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx.checker.ValidationError and C++ errors surface as several types
        raise CheckpointError(f"{label} fails the ONNX checker ({first_line(exc, limit=None)}); re-export the model") from None
    return model, label
