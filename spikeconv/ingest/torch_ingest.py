"""Torch module -> canonical ANN graph (``torch.fx.GraphModule``)."""

from __future__ import annotations

import copy

import torch
from torch import fx, nn

from spikeconv.errors import CheckpointError, UnsupportedLayerError, first_line
from spikeconv.ingest.activations import is_declared_activation
from spikeconv.ingest.canonical import make_canonical_


class _Tracer(fx.Tracer):
    """fx's tracer, keeping declared activations (e.g. QCFS) as single leaf call sites."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return is_declared_activation(m) or super().is_leaf_module(m, module_qualified_name)


def _trace(model: nn.Module) -> fx.GraphModule:
    try:
        tracer = _Tracer()
        graph = tracer.trace(model)
        return fx.GraphModule(tracer.root, graph, type(model).__name__)
    except Exception as exc:  # fx raises many types for untraceable Python
        reason = first_line(exc, limit=None)
        raise UnsupportedLayerError(
            f"cannot trace {type(model).__name__} with torch.fx ({reason}); data-dependent "
            "control flow is not convertible: export the model to ONNX and use ingest_onnx instead"
        ) from None


def _check_finite(model: nn.Module) -> None:
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"model tensor {name!r} contains NaN or Inf values; retrain or reload the weights")


def ingest_module(model: nn.Module) -> fx.GraphModule:
    """Trace ``model`` into spikeconv's canonical ANN graph; ``model`` itself is untouched.

    Steps: deep copy (an FX graph shares leaf modules with what it traced) in eval mode, trace,
    list every unsupported node in one error, drop dropout, fold BatchNorm, and make every
    activation call site its own module (the sites calibration observes and conversion
    replaces). See :mod:`spikeconv.ingest.canonical` for the form of the result.

    Raises:
        UnsupportedLayerError: listing every node that cannot be converted.
        CheckpointError: if a weight is NaN/Inf.
    """
    if not isinstance(model, nn.Module):
        raise UnsupportedLayerError(f"expected a torch.nn.Module, got {type(model).__name__}")
    _check_finite(model)
    work = copy.deepcopy(model).eval()
    return make_canonical_(_trace(work), where=type(model).__name__)
