"""The NIR writer's graph builder and the small helpers its node writers share (:mod:`spikeconv.files.nir_export`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import fx, nn

from spikeconv.errors import ConversionError

_ALIASES = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d)


def _np(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().to(torch.float32).numpy().copy()


class _Builder:
    """Collects NIR nodes and edges while walking the SNN's fx graph in order.

    ``sources[node]`` lists the NIR nodes whose outputs sum to the fx value (a residual add is
    graph fan-in, not a node); ``constants`` holds the fx values that are weights.
    """

    def __init__(self, gm: fx.GraphModule, shapes: dict[str, tuple[int, ...]]) -> None:
        import nir

        self.nir = nir
        self.gm = gm
        self.shapes = shapes
        self.nodes: dict[str, Any] = {}
        self.edges: list[tuple[str, str]] = []
        self.sources: dict[fx.Node, list[str]] = {}
        self.constants: dict[fx.Node, Any] = {}

    def name(self, base: str) -> str:
        candidate, index = base, 1
        while candidate in self.nodes:
            index += 1
            candidate = f"{base}_{index}"
        return candidate

    def add(self, base: str, node: Any, inputs: list[str]) -> str:
        name = self.name(base)
        self.nodes[name] = node
        if len(set(inputs)) != len(inputs):
            raise ConversionError(f"node {base} receives the same value twice (x + x); NIR sums edges, so scale by 2 instead")
        self.edges.extend((source, name) for source in inputs)
        return name

    def shape(self, node: fx.Node) -> tuple[int, ...]:
        return self.shapes[node.name]

    def value_sources(self, node: fx.Node, user: fx.Node) -> list[str]:
        if node in self.constants:
            raise ConversionError(f"node {user.name} ({_describe(user)}) combines a constant with a time-varying value in a way "
                                  "NIR cannot express")  # fmt: skip
        if node not in self.sources:
            raise ConversionError(f"node {user.name} ({_describe(user)}) reads {node.name}, which has no NIR equivalent")
        return self.sources[node]


def _describe(node: fx.Node) -> str:
    if node.op == "call_module":
        return type(node.graph.owning_module.get_submodule(str(node.target))).__name__
    target = node.target
    return getattr(target, "__name__", str(target))


def _sample_shaped(value: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """A constant of a per-sample value broadcast to ``shape`` (leading batch-like dimensions of size 1 dropped)."""
    value = torch.as_tensor(value, dtype=torch.float32)
    while value.dim() > len(shape) and value.shape[0] == 1:
        value = value[0]
    return torch.broadcast_to(value, shape)


def _per_channel(value: torch.Tensor, shape: tuple[int, ...]) -> np.ndarray | None:
    """``value`` as one number per channel (dimension 0 of ``shape``), or None if it varies otherwise."""
    flat = _sample_shaped(value, shape).reshape(shape[0], -1)
    if not torch.equal(flat, flat[:, :1].expand_as(flat)):
        return None
    return _np(flat[:, 0])


def _diagonal_conv(shape: tuple[int, ...], diagonal: np.ndarray, bias: np.ndarray, meta: dict) -> Any:
    """A 1×1 Conv2d with a diagonal weight: ``y_c = d_c·x_c + b_c``. Not a depthwise (grouped) conv, whose
    input channels NIR's type check misreads; the zeros off the diagonal add exactly nothing."""
    import nir

    weight = np.zeros((shape[0], shape[0], 1, 1), np.float32)
    weight[np.arange(shape[0]), np.arange(shape[0]), 0, 0] = diagonal
    return nir.Conv2d(input_shape=np.array(shape[1:]), weight=weight, stride=np.array([1, 1]), padding=np.array([0, 0]),
                      dilation=np.array([1, 1]), groups=1, bias=np.asarray(bias, np.float32), metadata=meta)


def _constant_add(b: _Builder, base: str, bias: np.ndarray, shape: tuple[int, ...], inputs: list[str], meta: dict) -> str:
    """``x + bias`` (one bias per channel) as an identity 1×1 conv (images) or identity Affine (vectors)."""
    nir = b.nir
    channels = shape[0]
    if len(shape) == 3:
        node = _diagonal_conv(shape, np.ones(channels, np.float32), bias, meta)
    elif len(shape) == 1:
        node = nir.Affine(weight=np.eye(channels, dtype=np.float32), bias=bias.astype(np.float32), metadata=meta)
    else:
        raise ConversionError(f"node {base}: a constant added to a {len(shape)}-D value has no NIR form here (only [C, H, W] or [F])")
    return b.add(base, node, inputs)


def _full(value: torch.Tensor, shape: tuple[int, ...]) -> np.ndarray:
    return np.ascontiguousarray(_np(_sample_shaped(value, shape)))

