"""Source records: the tensors and primitives that rebuild a loaded ANN, as SNN files embed them.

A record has a ``kind`` (``spikeconv-ann``, ``onnx``, ``torch-export``; which loader writes which is
tabled in :mod:`spikeconv.files.ann_loaders`), so an SNN file reloads with ``weights_only=True``
and no user code. Embedded ONNX and ``.pt2`` bytes go through the same strict readers as the
user's files, labelled with the SNN file that holds them. Preprocessing of ONNX and exported
models is prepended to the canonical graph (:mod:`spikeconv.ingest.preprocessing`); spikeconv
architectures carry it as their first layer.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx, nn

from spikeconv.errors import CheckpointError
from spikeconv.files.ann_finish import onnx_probe
from spikeconv.ingest import STAGE_KEY, ingest_module, ingest_onnx
from spikeconv.ingest.exported import ingest_exported
from spikeconv.ingest.preprocessing import Preprocessing, with_preprocessing
from spikeconv.models import build_model
from spikeconv.models.activations import ActivationSpec, apply_activation_

SPIKECONV_ANN = "spikeconv-ann"
ONNX_ANN = "onnx"
EXPORTED_ANN = "torch-export"


def load_weights(model: nn.Module, state_dict: dict[str, torch.Tensor], where: str) -> None:
    """``load_state_dict`` with a one-line error naming the first mismatch."""
    try:
        result = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise CheckpointError(f"{where}: {lines[1] if len(lines) > 1 else lines[0]}") from None
    problems = [f"{what} {', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''}"
                for what, keys in (("missing", result.missing_keys), ("unexpected", result.unexpected_keys)) if keys]  # fmt: skip
    if problems:
        raise CheckpointError(f"{where}: {'; '.join(problems)}")


def from_spikeconv_record(record: dict[str, Any]) -> nn.Module:
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
    load_weights(model, record["state_dict"], f"weights do not fit architecture {record['arch']!r}")
    return model.eval()


def _embedded_bytes(source: dict[str, Any], key: str, label: str) -> bytes:
    value = source.get(key)
    if not isinstance(value, torch.Tensor) or value.dtype != torch.uint8 or value.dim() != 1:
        raise CheckpointError(f"{label}: its model bytes are missing or damaged; convert the model again")
    return bytes(value.numpy().tobytes())


def _onnx_graph(source: dict[str, Any], label: str) -> fx.GraphModule:
    import onnx

    try:
        proto = onnx.load_model_from_string(_embedded_bytes(source, "onnx_bytes", label))
    except CheckpointError:
        raise
    except Exception:  # protobuf's DecodeError and friends
        raise CheckpointError(f"{label}: its ONNX bytes are damaged; convert the model again") from None
    shape = source.get("input_shape")
    return ingest_onnx(proto, probe_input=onnx_probe(proto, shape, label) if shape else None, label=label)


def _exported_graph(source: dict[str, Any], label: str) -> fx.GraphModule:
    return ingest_exported(_embedded_bytes(source, "pt2_bytes", label), input_shape=tuple(source["input_shape"]), label=label)


def rebuild_ann(source: dict[str, Any], *, label: str | None = None) -> nn.Module:
    """Rebuild the ANN a source record describes (with its preprocessing).

    Args:
        source: The record (see the module docstring).
        label: How messages name the model (e.g. ``"net.snn.pt (its ONNX model m.onnx)"``).
    """
    kind = source.get("kind")
    if kind == SPIKECONV_ANN:
        return from_spikeconv_record(source)
    graphs = {ONNX_ANN: _onnx_graph, EXPORTED_ANN: _exported_graph}
    if kind not in graphs:
        raise CheckpointError(f"unknown ANN source kind {kind!r}; upgrade spikeconv")
    graph = graphs[kind](source, label or f"the {kind} model {source.get('name', '')}".rstrip())
    rank = len(source.get("input_shape") or (1, 1, 1)) + 1
    return with_preprocessing(graph, Preprocessing.from_dict(source.get("preprocessing")), input_rank=rank)


def canonical_graph(source: dict[str, Any], model: nn.Module | None = None, *, label: str | None = None) -> fx.GraphModule:
    """The canonical ANN graph of a source record (ingest for torch models; ONNX and exported models already are)."""
    if isinstance(model, fx.GraphModule) and model.meta.get(STAGE_KEY) == "ann":
        return model
    if source.get("kind") in (ONNX_ANN, EXPORTED_ANN):
        return rebuild_ann(source, label=label)
    return ingest_module(model if model is not None else rebuild_ann(source, label=label))
