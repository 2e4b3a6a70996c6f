"""ONNX model -> canonical ANN graph, the same form :func:`~spikeconv.ingest.ingest_module` returns."""

from __future__ import annotations

import os

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import fx

from spikeconv.errors import CheckpointError, SpikeconvError, UnsupportedLayerError, first_line
from spikeconv.ingest.canonical import make_canonical_
from spikeconv.ingest.onnx.graph_passes import canonicalize_nodes_, fold_constants_, record_shapes_, rename_modules_
from spikeconv.ingest.onnx.layer_norm import fuse_layer_norms
from spikeconv.ingest.onnx.load import load_onnx
from spikeconv.ingest.onnx.scan import check_onnx_supported
from spikeconv.ingest.onnx.tidy import lower_opset, tidy_model
from spikeconv.ingest.onnx.transformer import prepare_transformer_
from spikeconv.ingest.onnx.verify import CHECK_KEY, check_against_onnxruntime, make_probe


def _check_finite(model: onnx.ModelProto, label: str) -> None:
    for tensor in model.graph.initializer:
        values = numpy_helper.to_array(tensor)
        if np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
            raise CheckpointError(f"initializer {tensor.name!r} of {label} contains NaN or Inf values; re-export trained weights")


def _onnx2torch(model: onnx.ModelProto, label: str) -> tuple[fx.GraphModule, dict[str, str]]:
    """onnx2torch's graph, and its module names -> ONNX op types."""
    import onnx2torch  # imported here: it takes seconds and only ONNX ingest needs it
    from onnx2torch.onnx_graph import OnnxGraph

    try:
        gm = onnx2torch.convert(model)
    except Exception as exc:  # onnx2torch raises NotImplementedError, KeyError, ValueError, ...
        reason = first_line(exc, limit=None)
        raise UnsupportedLayerError(f"onnx2torch cannot convert {label} ({reason}); see docs/supported_layers.md") from None
    op_types = {name: node.operation_type for name, node in OnnxGraph(model.graph).nodes.items()}
    return gm.eval(), op_types


def ingest_onnx(
    source: str | os.PathLike | onnx.ModelProto,
    *,
    probe_input: torch.Tensor | None = None,
    rtol: float = 1e-4,
    label: str | None = None,
) -> fx.GraphModule:
    """Import an ONNX model as spikeconv's canonical ANN graph (as :func:`ingest_module` makes).

    Steps: load and run the ONNX checker; tidy a copy (:mod:`~spikeconv.ingest.onnx.tidy`); scan
    every node and list all unsupported ones in one error, before converting anything; convert
    with onnx2torch; fold constants; rewrite onnx2torch's own modules into standard torch ops
    (:mod:`~spikeconv.ingest.onnx.canonicalizers`); run the canonical passes shared with torch
    models (BatchNorm folding, one module per activation site); finally compare with onnxruntime
    on a probe batch. Accepts both ``torch.onnx.export`` exporters (TorchScript and dynamo).

    Args:
        source: Path of an ``.onnx`` file (external weight files beside it are read) or a ModelProto.
        probe_input: Batch for the check; by default seeded standard-normal noise shaped like the
            ONNX input, with batch 2 for a symbolic batch dimension.
        rtol: Largest accepted ``max|torch − onnxruntime|`` relative to ``max|onnxruntime|``.
        label: How messages name the model (default: the path, or ``ModelProto <graph name>``).

    Returns:
        The canonical graph; ``gm.meta["spikeconv_onnx_check"]`` holds the measured difference.

    Raises:
        CheckpointError: the file is missing, unreadable, invalid, or has NaN/Inf weights.
        UnsupportedLayerError: listing every node that cannot be converted.
        ConversionError: the imported graph does not match onnxruntime within ``rtol``.
    """
    model, label = load_onnx(source, label=label)
    try:
        _check_finite(model, label)
        tidy = fuse_layer_norms(tidy_model(model))  # a LayerNorm written out (opset < 17) as one node
        probe = make_probe(model, label, probe_input)
        prepare_transformer_(tidy, probe.numpy())  # transformers: GELU spelled out, attention batch first (onnx/transformer.py)
        check_onnx_supported(tidy, label)
        gm, op_types = _onnx2torch(lower_opset(tidy, label), label)
        fold_constants_(gm)
        record_shapes_(gm, probe)
        canonicalize_nodes_(gm, op_types)
        rename_modules_(gm)
        gm = make_canonical_(gm, where=label)
        gm.meta[CHECK_KEY] = check_against_onnxruntime(gm, model, probe, rtol=rtol, label=label)
    except SpikeconvError:
        raise
    except Exception as exc:  # a damaged model passes the checker and fails later: its tensors, the probe run, onnxruntime
        raise CheckpointError(f"{label} is not a readable ONNX model ({type(exc).__name__}: {first_line(exc)}); "
                              "re-export it with torch.onnx.export") from None  # fmt: skip
    return gm
