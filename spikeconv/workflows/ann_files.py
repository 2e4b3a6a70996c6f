"""Trained-ANN files -> torch modules, with what is needed to rebuild them later.

A *source record* is a dict of tensors and primitives that rebuilds the same ANN; SNN files embed
it so that a converted network can be reloaded with ``weights_only=True`` and no user code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import fx, nn

from spikeconv.errors import CheckpointError
from spikeconv.ingest import ingest_module, ingest_onnx
from spikeconv.models import build_model
from spikeconv.models.activations import ActivationSpec, apply_activation_
from spikeconv.training import load_ann_checkpoint

SPIKECONV_ANN = "spikeconv-ann"
ONNX_ANN = "onnx"
ONNX_MAGIC_SUFFIXES = (".onnx",)


@dataclass(frozen=True)
class LoadedAnn:
    """A trained ANN ready to convert.

    Attributes:
        model: The module (eval mode).
        input_shape: ``(C, H, W)`` of one sample.
        num_classes: Number of outputs.
        preprocessing: ``{"mean": [...], "std": [...]}`` built into the model, or None.
        source: Record that rebuilds ``model`` (see :func:`rebuild_ann`).
        metadata: What the file says about how it was made (accuracy, command, ...).
    """

    model: nn.Module
    input_shape: tuple[int, int, int]
    num_classes: int
    preprocessing: dict | None
    source: dict[str, Any]
    metadata: dict[str, Any]


def _from_spikeconv_record(record: dict[str, Any]) -> nn.Module:
    norm = record.get("normalization")
    model = build_model(
        record["arch"],
        input_shape=tuple(record["input_shape"]),
        num_classes=int(record["num_classes"]),
        mean=None if norm is None else norm["mean"],
        std=None if norm is None else norm["std"],
        batch_norm=bool(record["batch_norm"]),
    )
    apply_activation_(model, ActivationSpec.from_dict(record.get("activation")))
    try:
        model.load_state_dict(record["state_dict"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"weights do not fit architecture {record['arch']!r}: {first}") from None
    return model.eval()


def _onnx_graph(source: dict[str, Any]) -> fx.GraphModule:
    import onnx

    proto = onnx.load_model_from_string(bytes(source["onnx_bytes"].numpy().tobytes()))
    return ingest_onnx(proto)


def rebuild_ann(source: dict[str, Any]) -> nn.Module:
    """Rebuild the ANN a source record describes."""
    kind = source.get("kind")
    if kind == SPIKECONV_ANN:
        return _from_spikeconv_record(source)
    if kind == ONNX_ANN:
        return _onnx_graph(source)
    raise CheckpointError(f"unknown ANN source kind {kind!r}; upgrade spikeconv")


def canonical_graph(source: dict[str, Any], model: nn.Module | None = None) -> fx.GraphModule:
    """The canonical ANN graph of a source record (ingest for torch models, ONNX import for ONNX)."""
    if source.get("kind") == ONNX_ANN:
        return model if isinstance(model, fx.GraphModule) and model.meta.get("spikeconv_stage") == "ann" else _onnx_graph(source)
    return ingest_module(model if model is not None else rebuild_ann(source))


def _is_onnx(path: Path) -> bool:
    if path.suffix.lower() in ONNX_MAGIC_SUFFIXES:
        return True
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError:
        return False
    return head[:1] == b"\x08"  # protobuf field 1 (ir_version); torch files start with b"PK" or a pickle opcode


def _self_contained_onnx_bytes(path: Path) -> bytes:
    """The model with any external weight files (the dynamo exporter writes ``.onnx.data``) inlined."""
    import onnx
    from onnx.external_data_helper import convert_model_from_external_data

    proto = onnx.load(str(path), load_external_data=True)
    convert_model_from_external_data(proto)
    return proto.SerializeToString()


def _load_onnx_ann(path: Path) -> LoadedAnn:
    graph = ingest_onnx(path)
    data = _self_contained_onnx_bytes(path)
    probe_shape = graph.meta["spikeconv_onnx_check"]["probe_shape"]
    input_shape = tuple(int(v) for v in probe_shape[1:])
    with torch.no_grad():
        out = graph(torch.zeros(1, *input_shape))
    if out.dim() != 2:
        raise CheckpointError(f"{path}: the model's output has shape {tuple(out.shape)}; expected [N, classes] logits")
    source = {"kind": ONNX_ANN, "name": path.name, "onnx_bytes": torch.frombuffer(bytearray(data), dtype=torch.uint8)}
    return LoadedAnn(model=graph, input_shape=input_shape, num_classes=int(out.shape[1]), preprocessing=None,
                     source=source, metadata={"onnx_check": dict(graph.meta["spikeconv_onnx_check"])})  # fmt: skip


def load_ann(path: str | Path) -> LoadedAnn:
    """Load a trained ANN file: a spikeconv checkpoint (``spikeconv train-ann``) or an ONNX file."""
    path = Path(path)
    if path.is_file() and _is_onnx(path):
        return _load_onnx_ann(path)
    return _load_spikeconv_ann(path)


def _load_spikeconv_ann(path: Path) -> LoadedAnn:
    checkpoint = load_ann_checkpoint(path)
    normalization = (
        None if checkpoint.mean is None else {"mean": list(checkpoint.mean), "std": list(checkpoint.std)}
    )
    source = {
        "kind": SPIKECONV_ANN,
        "arch": checkpoint.arch,
        "input_shape": list(checkpoint.input_shape),
        "num_classes": checkpoint.num_classes,
        "normalization": normalization,
        "batch_norm": checkpoint.batch_norm,
        "activation": checkpoint.activation,
        "state_dict": checkpoint.state_dict,
    }
    return LoadedAnn(
        model=_from_spikeconv_record(source),
        input_shape=checkpoint.input_shape,
        num_classes=checkpoint.num_classes,
        preprocessing=normalization,
        source=source,
        metadata=checkpoint.metadata,
    )
