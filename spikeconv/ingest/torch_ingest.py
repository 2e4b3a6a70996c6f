"""Torch module -> canonical ANN graph (``torch.fx.GraphModule``)."""

from __future__ import annotations

import copy
import logging

import torch
from torch import fx, nn

from spikeconv.errors import CheckpointError, UnsupportedLayerError
from spikeconv.ingest.passes import canonicalize_relus_, fold_batchnorm_, remove_dropout_
from spikeconv.ingest.support import check_supported

logger = logging.getLogger("spikeconv")

STAGE_KEY = "spikeconv_stage"
SITES_KEY = "spikeconv_sites"


def _trace(model: nn.Module) -> fx.GraphModule:
    try:
        return fx.symbolic_trace(model)
    except Exception as exc:  # fx raises many types for untraceable Python
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UnsupportedLayerError(
            f"cannot trace {type(model).__name__} with torch.fx ({reason}); data-dependent "
            "control flow is not convertible: export the model to ONNX or torch.export instead"
        ) from None


def _check_finite(model: nn.Module) -> None:
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"model tensor {name!r} contains NaN or Inf values")


def ingest_module(model: nn.Module) -> fx.GraphModule:
    """Trace ``model`` into spikeconv's canonical ANN graph; ``model`` itself is untouched.

    Steps: deep copy (an FX graph shares leaf modules with what it traced) in eval mode, trace,
    list every unsupported node in one error, drop dropout, fold BatchNorm, and make every ReLU
    call site its own module (the sites calibration observes and conversion replaces).

    Raises:
        UnsupportedLayerError: listing every node that cannot be converted.
        CheckpointError: if a weight is NaN/Inf.
    """
    if not isinstance(model, nn.Module):
        raise UnsupportedLayerError(f"expected a torch.nn.Module, got {type(model).__name__}")
    _check_finite(model)
    work = copy.deepcopy(model).eval()
    gm = _trace(work)
    check_supported(gm)
    remove_dropout_(gm)
    folded = fold_batchnorm_(gm)
    sites = canonicalize_relus_(gm)
    gm.graph.lint()
    gm.recompile()
    gm.meta[STAGE_KEY] = "ann"
    gm.meta[SITES_KEY] = tuple(sites)
    logger.info("ingested %s: %d activation sites, %d BatchNorm folded",
                type(model).__name__, len(sites), folded)  # fmt: skip
    return gm.eval()


def activation_sites(gm: fx.GraphModule) -> tuple[str, ...]:
    """The ReLU call-site names of a canonical graph, in graph order."""
    return tuple(gm.meta.get(SITES_KEY, ()))
