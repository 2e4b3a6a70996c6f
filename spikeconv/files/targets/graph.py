"""Write a target-ready SNN as the NIR graph one consumer library's importer maps and runs.

The network comes from ``convert --target`` (every threshold folded to 1, spikes of size 1,
:mod:`spikeconv.convert.fold`), so each layer is a node the importers know: ``Conv2d``, ``Affine``,
``AvgPool2d`` or ``SumPool2d``, ``Flatten``, and the target's neuron node. Where the importer reads
a node differently from NIR's definition, the :class:`Dialect` says so and the writer compensates:

- a value is tracked with a *factor*, the number the target's value is of spikeconv's (1 mostly):
  a sum pool multiplies by k·k, integer weights (``--weight-bits``) divide by their scale ``s``;
  the layer after a pool takes the factor in its output, and a neuron meets it in its threshold,
  so every weight stays what spikeconv (or the integer grid) has and the membranes are the same;
- thresholds are written for the importer's test (``v > θ`` gets ``below(θ)``, ``v >= θ`` gets θ);
- where the importer's ``Flatten`` flattens the batch too, a flatten and the linear layer after it
  become one convolution whose kernel covers the whole image (``[C, H, W] -> [F, 1, 1]``), and
  later linear layers 1×1 convolutions;
- ``x / c`` and shortcut scales (:class:`~spikeconv.convert.fold.ChannelScale`) and ``x − c`` are
  diagonal 1×1 convolutions (``Affine`` on vectors), which every importer maps;
- the readout is the last layer's current at each step, straight into ``Output`` (no importer
  maps NIR's ``I``): the prediction after t steps is the argmax of the sum of the first t outputs.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from spikeconv.convert.fold import ChannelScale
from spikeconv.convert.quantize import weight_scale_of
from spikeconv.convert.target_rules import TargetRules
from spikeconv.errors import ConversionError
from spikeconv.files.nir_common import below
from spikeconv.neurons import IFNeuron, SpikingNetwork
from spikeconv.neurons.time import repeat_over_time
from spikeconv.neurons.time_layout import is_shape_query

__all__ = ["Dialect", "target_graph"]

NeuronNode = Callable[[tuple[int, ...], np.ndarray], Any]
"""``(per-sample shape, the thresholds the importer must compare with) -> the NIR neuron node``."""


@dataclass(frozen=True)
class Dialect:
    """How one importer reads NIR, as measured (docs/export_targets.md).

    Attributes:
        neuron: Builds the importer's neuron node from a shape and thresholds (as compared, see ``fires_above``).
        fires_above: The importer fires on ``v > θ`` (else on ``v >= θ``, spikeconv's own test).
        sum_pools: It maps ``SumPool2d`` but not ``AvgPool2d``.
        flatten_batch: Its ``Flatten`` passes NIR's batch-free ``start_dim`` to torch and flattens the batch too.
    """

    neuron: NeuronNode
    fires_above: bool = False
    sum_pools: bool = False
    flatten_batch: bool = False


@dataclass
class _Value:
    """The NIR nodes whose outputs sum to one fx value, and what the target's value is of spikeconv's."""

    sources: list[str]
    factor: np.ndarray  # [1] or [C]
    shape: tuple[int, ...]  # the per-sample shape in the target graph
    spatial_vector: bool = False  # a [F] value carried as [F, 1, 1] (flatten_batch targets)


def _np(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().to(torch.float32).numpy().copy()


def _pair(value: Any) -> np.ndarray:
    values = list(value) if isinstance(value, (list, tuple)) else [value, value]
    return np.array([int(v) for v in values], dtype=np.int64)


class _Writer:
    def __init__(self, snn: SpikingNetwork, rules: TargetRules, dialect: Dialect, shapes: dict[str, tuple[int, ...]]) -> None:
        import nir

        self.nir, self.gm, self.rules, self.dialect, self.shapes = nir, snn.body, rules, dialect, shapes
        self.nodes: dict[str, Any] = {}
        self.edges: list[tuple[str, str]] = []
        self.values: dict[fx.Node, _Value] = {}

    def fail(self, node: fx.Node, why: str) -> ConversionError:
        return ConversionError(f"node {node.name}: {why}, which --target {self.rules.name} ({self.rules.library}) cannot express")

    def add(self, name: str, node: Any, inputs: list[str]) -> str:
        base, index = name.replace(".", "_"), 1
        while name in self.nodes:
            index += 1
            name = f"{base}_{index}"
        self.nodes[name] = node
        self.edges.extend((source, name) for source in inputs)
        return name

    def value(self, node: Any, user: fx.Node) -> _Value:
        if not isinstance(node, fx.Node) or node not in self.values:
            raise self.fail(user, f"it reads {getattr(node, 'name', node)}, which has no NIR form here")
        return self.values[node]

    # -- layers ---------------------------------------------------------------------------------------------------------------

    def weighted(self, node: fx.Node, weight: np.ndarray, bias: np.ndarray, scale: np.ndarray | None, source: _Value,
                 make: Callable[[np.ndarray, np.ndarray], Any]) -> _Value:  # fmt: skip
        """A conv/affine layer: integer weights where quantised; the input's (scalar) factor goes to the output."""
        if source.factor.size > 1:
            raise self.fail(node, "it reads a value whose scale differs between channels")
        factor = np.asarray(source.factor, np.float32).reshape(())
        if scale is not None:
            view = scale.reshape(-1, *([1] * (weight.ndim - 1)))
            weight = np.round(weight / view).astype(np.float32)
            out_factor = (factor / scale).astype(np.float32)
        else:
            out_factor = np.full(weight.shape[0], factor, np.float32)
        bias = (bias * out_factor).astype(np.float32)
        name = self.add(node.name, make(weight, bias), source.sources)
        return _Value([name], out_factor if np.unique(out_factor).size > 1 else out_factor[:1], self.shapes[node.name],
                      source.spatial_vector)  # fmt: skip

    def conv(self, node: fx.Node, conv: nn.Conv2d, source: _Value) -> _Value:
        if isinstance(conv.padding, str) or conv.padding_mode != "zeros":
            raise self.fail(node, f"Conv2d padding {conv.padding!r} / {conv.padding_mode}")
        shape = source.shape

        def make(weight: np.ndarray, bias: np.ndarray) -> Any:
            return self.nir.Conv2d(input_shape=np.array(shape[1:]), weight=weight, stride=_pair(conv.stride),
                                   padding=_pair(conv.padding), dilation=_pair(conv.dilation), groups=conv.groups, bias=bias)  # fmt: skip

        bias = _np(conv.bias) if conv.bias is not None else np.zeros(conv.out_channels, np.float32)
        return self.weighted(node, _np(conv.weight), bias, _scale(conv), source, make)

    def linear(self, node: fx.Node, linear: nn.Linear, source: _Value) -> _Value:
        bias = _np(linear.bias) if linear.bias is not None else np.zeros(linear.out_features, np.float32)
        if not (self.dialect.flatten_batch and (source.spatial_vector or len(source.shape) == 3)):
            if len(source.shape) != 1:
                raise self.fail(node, f"a Linear layer on a {len(source.shape)}-D value")
            return self.weighted(node, _np(linear.weight), bias, _scale(linear), source,
                                 lambda w, b: self.nir.Affine(weight=w, bias=b))  # fmt: skip
        # flatten (batch-flattening importer) + Linear = one convolution over the whole [C, H, W] (or 1×1 on [F, 1, 1])
        shape = source.shape if len(source.shape) == 3 else (source.shape[0], 1, 1)
        weight = _np(linear.weight).reshape(linear.out_features, *shape)

        def make(w: np.ndarray, b: np.ndarray) -> Any:
            return self.nir.Conv2d(input_shape=np.array(shape[1:]), weight=w, stride=np.array([1, 1]), padding=np.array([0, 0]),
                                   dilation=np.array([1, 1]), groups=1, bias=b)  # fmt: skip

        made = self.weighted(node, weight, bias, _scale(linear), source, make)
        made.shape, made.spatial_vector = (linear.out_features, 1, 1), True
        return made

    def diagonal(self, node: fx.Node, diagonal: np.ndarray, bias: np.ndarray, source: _Value, scale: np.ndarray | None) -> _Value:
        """``d·x + b`` per channel as an identity-shaped 1×1 Conv2d (Affine on vectors)."""
        channels = source.shape[0]
        diagonal = np.broadcast_to(np.asarray(diagonal, np.float32).reshape(-1), (channels,)).copy()
        bias = np.broadcast_to(np.asarray(bias, np.float32).reshape(-1), (channels,)).copy()
        if len(source.shape) == 3:
            weight = np.zeros((channels, channels, 1, 1), np.float32)
            weight[np.arange(channels), np.arange(channels), 0, 0] = diagonal

            def make(w: np.ndarray, b: np.ndarray) -> Any:
                return self.nir.Conv2d(input_shape=np.array(source.shape[1:]), weight=w, stride=np.array([1, 1]),
                                       padding=np.array([0, 0]), dilation=np.array([1, 1]), groups=1, bias=b)  # fmt: skip
        elif len(source.shape) == 1:
            weight = np.diag(diagonal).astype(np.float32)

            def make(w: np.ndarray, b: np.ndarray) -> Any:
                return self.nir.Affine(weight=w, bias=b)
        else:
            raise self.fail(node, f"a per-channel scale of a {len(source.shape)}-D value")
        made = self.weighted(node, weight, bias, scale, source, make)
        made.shape = source.shape
        return made

    def pool(self, node: fx.Node, pool: nn.Module, source: _Value) -> _Value:
        shape = source.shape
        if isinstance(pool, nn.AdaptiveAvgPool2d):
            out = self.shapes[node.name][1:]
            if shape[1] % out[0] or shape[2] % out[1]:
                raise self.fail(node, f"adaptive average pooling from {shape[1:]} to {out} (unequal windows)")
            kernel = np.array([shape[1] // out[0], shape[2] // out[1]])
            stride, padding = kernel.copy(), np.array([0, 0])
        else:
            padding = _pair(pool.padding)
            if pool.ceil_mode or pool.divisor_override is not None or padding.any():
                raise self.fail(node, "average pooling with padding, ceil_mode or divisor_override")
            kernel, stride = _pair(pool.kernel_size), _pair(pool.stride if pool.stride is not None else pool.kernel_size)
        factor = source.factor
        if self.dialect.sum_pools:
            made = self.nir.SumPool2d(kernel_size=kernel, stride=stride, padding=padding)
            factor = (factor * np.float32(kernel.prod())).astype(np.float32)
        else:
            made = self.nir.AvgPool2d(kernel_size=kernel, stride=stride, padding=padding)
        name = self.add(node.name, made, source.sources)
        return _Value([name], factor, self.shapes[node.name])

    def flatten(self, node: fx.Node, source: _Value) -> _Value:
        target = self.shapes[node.name]
        if len(target) != 1 or int(np.prod(source.shape)) != target[0]:
            raise self.fail(node, f"a reshape of {source.shape} to {target}")
        if len(source.shape) == 1 or source.spatial_vector or self.dialect.flatten_batch:
            return _Value(source.sources, source.factor, source.shape, source.spatial_vector)  # the next Linear folds it in
        made = self.nir.Flatten(input_type={"input": np.array(source.shape)}, start_dim=0, end_dim=-1)
        return _Value([self.add(node.name, made, source.sources)], source.factor, target)

    def neuron(self, node: fx.Node, neuron: IFNeuron, source: _Value) -> _Value:
        if neuron.bias.dim() or float(neuron.bias) != 0.0:
            raise self.fail(node, "a bias current inside the neuron")
        if not torch.all(neuron.threshold == 1.0):
            raise self.fail(node, "a threshold not folded into the weights (convert with --target)")
        thresholds = np.broadcast_to(np.asarray(source.factor, np.float32).reshape(-1, *([1] * (len(source.shape) - 1))),
                                     source.shape).astype(np.float32)  # fmt: skip
        if self.rules.uniform_thresholds and np.unique(thresholds).size > 1:
            raise self.fail(node, "thresholds that differ within the layer")
        compared = below(thresholds) if self.dialect.fires_above else thresholds
        name = self.add(node.name, self.dialect.neuron(source.shape, compared), source.sources)
        return _Value([name], np.ones(1, np.float32), source.shape, source.spatial_vector)

    def join(self, node: fx.Node, left: _Value, right: _Value) -> _Value:
        if left.factor.shape != right.factor.shape or not np.array_equal(left.factor, right.factor):
            raise self.fail(node, "a residual join of two values of different scale")
        if set(left.sources) & set(right.sources):
            raise self.fail(node, "the same value added twice")
        return _Value(left.sources + right.sources, left.factor, left.shape, left.spatial_vector)


def _scale(module: nn.Module) -> np.ndarray | None:
    scale = weight_scale_of(module)
    return None if scale is None else _np(scale).reshape(-1)


_ADD = (operator.add, operator.iadd, torch.add)
_SUB = (operator.sub, operator.isub, torch.sub)
_PASS_MODULES = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d)


def _module_value(w: _Writer, node: fx.Node, module: nn.Module) -> _Value:
    source = w.value(node.args[0], node)
    if isinstance(module, IFNeuron):
        return w.neuron(node, module, source)
    if isinstance(module, nn.Conv2d):
        return w.conv(node, module, source)
    if isinstance(module, nn.Linear):
        return w.linear(node, module, source)
    if isinstance(module, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
        return w.pool(node, module, source)
    if isinstance(module, nn.Flatten):
        return w.flatten(node, source)
    if isinstance(module, ChannelScale):
        return w.diagonal(node, _np(module.scale), np.zeros(1, np.float32), source, _scale(module))
    if isinstance(module, _PASS_MODULES):
        return source
    raise w.fail(node, f"a {type(module).__name__} layer")


def _function_value(w: _Writer, node: fx.Node) -> _Value | None:
    target = node.target
    if target is repeat_over_time or (node.op == "call_method" and target == "contiguous"):
        return w.value(node.args[0], node)
    if is_shape_query(node):
        return None
    if target in (torch.flatten, torch.reshape) or (node.op == "call_method" and target in ("flatten", "view", "reshape")):
        return w.flatten(node, w.value(node.args[0], node))
    if target in _ADD and all(isinstance(a, fx.Node) and a.op != "get_attr" for a in node.args[:2]):
        return w.join(node, w.value(node.args[0], node), w.value(node.args[1], node))
    if target in _SUB + _ADD and isinstance(node.args[1], fx.Node) and node.args[1].op == "get_attr":
        source = w.value(node.args[0], node)
        constant = w.gm.get_buffer(str(node.args[1].target)).detach().to(torch.float32).reshape(-1)
        sign = -1.0 if target in _SUB else 1.0
        return w.diagonal(node, np.ones(1, np.float32), sign * _np(constant), source, None)
    raise w.fail(node, f"the operation {getattr(target, '__name__', target)}")


def target_graph(snn: SpikingNetwork, rules: TargetRules, dialect: Dialect, *, input_shape: tuple[int, ...],
                 shapes: dict[str, tuple[int, ...]], metadata: dict[str, Any]) -> Any:  # fmt: skip
    """The ``nir.NIRGraph`` of a target-ready ``snn`` in ``dialect`` (see the module docstring).

    Raises:
        ConversionError: A node the target cannot express; one line naming it.
    """
    import nir

    w = _Writer(snn, rules, dialect, shapes)
    for node in w.gm.graph.nodes:
        if node.op == "placeholder":
            if not w.values:
                name = w.add("input", nir.Input(input_type={"input": np.array(input_shape)}), [])
                w.values[node] = _Value([name], np.ones(1, np.float32), tuple(input_shape))
        elif node.op == "call_module":
            w.values[node] = _module_value(w, node, w.gm.get_submodule(str(node.target)))
        elif node.op in ("call_function", "call_method"):
            found = _function_value(w, node)
            if found is not None:
                w.values[node] = found
        elif node.op == "output":
            result = w.value(node.args[0], node)
            if result.factor.size > 1 or float(result.factor[0]) <= 0:
                raise w.fail(node, "a readout whose scale differs between classes")
            w.add("output", nir.Output(output_type={"output": np.array(result.shape)}), result.sources)
    return nir.NIRGraph(nodes=w.nodes, edges=w.edges, metadata=metadata, type_check=False)
