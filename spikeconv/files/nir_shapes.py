"""Per-sample shapes of every value of an SNN's graph, from one step of one sample (for the NIR writers)."""

from __future__ import annotations

import torch

from spikeconv.neurons import SpikingNetwork

__all__ = ["sample_shapes"]


def sample_shapes(snn: SpikingNetwork, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """Per-sample shape of every fx value, from one step of one sample."""
    from torch.fx.passes.shape_prop import ShapeProp

    gm = snn.body
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(torch.zeros((1, *input_shape)), 1)
    finally:
        for _, neuron in snn.neurons():
            neuron.reset_state()
    shapes = {}
    for node in gm.graph.nodes:
        meta = node.meta.get("tensor_meta")
        if meta is not None and hasattr(meta, "shape"):
            shapes[node.name] = tuple(int(s) for s in meta.shape[1:])
    return shapes
