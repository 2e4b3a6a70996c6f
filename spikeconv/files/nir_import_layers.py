"""The non-neuron nodes of a NIR file as torch layers in the rebuilt fx graph (:mod:`spikeconv.files.nir_import`)."""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from spikeconv.files.nir_common import read_record
from spikeconv.files.nir_read import _Reader


def _tensor(values: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.float32).copy())


def _equal(a: Any, b: Any) -> bool:
    a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    return a.shape == b.shape and bool(np.array_equal(a, b))


class _Builder:
    """Builds the fx body: one placeholder for the input, one for ``num_steps``, then the nodes in order."""

    def __init__(self, reader: _Reader) -> None:
        self.reader = reader
        self.graph = fx.Graph()
        self.root = nn.Module()
        self.values: dict[str, fx.Node] = {}
        self.neuron_nodes: set[fx.Node] = set()
        self.steps: fx.Node | None = None
        self._constants = 0

    def module(self, name: str, module: nn.Module, value: fx.Node, *extra: Any) -> fx.Node:
        attr = name.replace(".", "_")
        self.root.add_module(attr, module)
        return self.graph.call_module(attr, (value, *extra))

    def constant(self, tensor: torch.Tensor) -> fx.Node:
        self._constants += 1
        attr = f"_nir_constant_{self._constants}"
        self.root.register_buffer(attr, tensor)
        return self.graph.get_attr(attr)

    def summed(self, name: str, sources: list[str]) -> fx.Node:
        """The sum of a node's inputs, in edge order (NIR's fan-in)."""
        if not sources:
            raise self.reader.fail(name, "has no input")
        total = self.values[sources[0]]
        for source in sources[1:]:
            total = self.graph.call_function(operator.add, (total, self.values[source]))
        return total



def _layer(builder: _Builder, name: str, node: Any, value: fx.Node) -> fx.Node:
    """One non-neuron node applied to ``value``."""
    nir, reader = builder.reader.nir, builder.reader
    meta = read_record(node)
    role = meta[0].get("role") if meta else None
    if role == "batch-norm":
        return _batchnorm(builder, name, node, meta, value)
    if isinstance(node, nir.Conv2d):
        weight = np.asarray(node.weight, dtype=np.float32)
        if role in ("add-constant", "neuron-bias") and _equal(_diagonal(node), np.ones(weight.shape[0], np.float32)):
            return builder.graph.call_function(operator.add, (value, builder.constant(_tensor(node.bias).reshape(-1, 1, 1))))
        conv = nn.Conv2d(weight.shape[1] * int(node.groups), weight.shape[0], tuple(weight.shape[2:]),
                         stride=tuple(int(s) for s in node.stride), padding=tuple(int(p) for p in node.padding),
                         dilation=tuple(int(d) for d in node.dilation),
                         groups=int(node.groups))  # fmt: skip
        conv.weight.data.copy_(_tensor(weight))
        conv.bias.data.copy_(_tensor(node.bias))
        return builder.module(name, conv, value)
    if isinstance(node, nir.Affine):
        weight = np.asarray(node.weight, dtype=np.float32)
        if role in ("add-constant", "neuron-bias") and _equal(weight, np.eye(weight.shape[0], dtype=np.float32)):
            return builder.graph.call_function(operator.add, (value, builder.constant(_tensor(node.bias))))
        linear = nn.Linear(weight.shape[1], weight.shape[0])
        linear.weight.data.copy_(_tensor(weight))
        linear.bias.data.copy_(_tensor(node.bias))
        return builder.module(name, linear, value)
    if isinstance(node, nir.Linear):
        weight = np.asarray(node.weight, dtype=np.float32)
        linear = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        linear.weight.data.copy_(_tensor(weight))
        return builder.module(name, linear, value)
    if isinstance(node, nir.AvgPool2d) and role == "adaptive-average-pool":
        return builder.module(name, nn.AdaptiveAvgPool2d(tuple(int(o) for o in meta[0]["output_size"])), value)
    if isinstance(node, nir.AvgPool2d):
        pool = nn.AvgPool2d(tuple(int(k) for k in node.kernel_size), stride=tuple(int(s) for s in node.stride),
                            padding=tuple(int(p) for p in node.padding))  # fmt: skip
        return builder.module(name, pool, value)
    if isinstance(node, nir.SumPool2d):
        kernel = tuple(int(k) for k in node.kernel_size)
        pool = nn.AvgPool2d(kernel, stride=tuple(int(s) for s in node.stride), padding=tuple(int(p) for p in node.padding),
                            divisor_override=1)
        return builder.module(name, pool, value)
    if isinstance(node, nir.Flatten):
        if int(node.start_dim) != 0 or int(node.end_dim) != -1:
            raise reader.fail(name, f"flattens dimensions {int(node.start_dim)}..{int(node.end_dim)}; spikeconv reads full flattens only")
        return builder.module(name, nn.Flatten(1), value)
    if isinstance(node, nir.Scale):
        if role == "divide" and _equal(np.reciprocal(meta[1]["divisor"]).astype(np.float32), node.scale):
            return builder.graph.call_function(operator.truediv, (value, builder.constant(_tensor(meta[1]["divisor"]))))
        return builder.graph.call_function(operator.mul, (value, builder.constant(_tensor(node.scale))))
    raise reader.fail(name, "is not a node spikeconv reads from NIR (it reads Conv2d, Affine, Linear, AvgPool2d, SumPool2d, Flatten, "
                            "Scale, I/LI/IF/LIF neurons)")  # fmt: skip


def _diagonal(node: Any) -> np.ndarray | None:
    """The diagonal of a 1×1, stride-1, unpadded Conv2d whose weight is diagonal (spikeconv's per-channel maps), else None."""
    weight = np.asarray(node.weight, dtype=np.float32)
    if weight.ndim != 4 or weight.shape[0] != weight.shape[1] or weight.shape[2:] != (1, 1) or int(node.groups) != 1:
        return None
    if np.any(np.asarray(node.padding)) or not np.all(np.asarray(node.stride) == 1):
        return None
    square = weight[:, :, 0, 0]
    diagonal = np.diag(square).copy()
    return diagonal if np.array_equal(square, np.diag(diagonal)) else None


def _batchnorm(builder: _Builder, name: str, node: Any, meta: tuple[dict, dict], value: fx.Node) -> fx.Node:
    settings, arrays = meta
    channels = arrays["running_mean"].shape[0]
    bn = (nn.BatchNorm2d if settings.get("kind") == "BatchNorm2d" else nn.BatchNorm1d)(channels, eps=float(settings["eps"]))
    bn.running_mean.copy_(_tensor(arrays["running_mean"]))
    bn.running_var.copy_(_tensor(arrays["running_var"]))
    bn.weight.data.copy_(_tensor(arrays["weight"]))
    bn.bias.data.copy_(_tensor(arrays["bias"]))
    bn.eval()
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale
    weight = np.asarray(node.weight, dtype=np.float32)
    diagonal = _diagonal(node) if weight.ndim == 4 else np.diag(weight)
    if diagonal is None or not (_equal(diagonal, scale.detach().numpy()) and _equal(node.bias, shift.detach().numpy())):
        raise builder.reader.fail(name, "has weights that differ from the BatchNorm record it carries (was the file edited?)")
    return builder.module(name, bn, value)

