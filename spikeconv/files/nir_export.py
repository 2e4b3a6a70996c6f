"""Write a SpikingNetwork as a NIR graph whose soft reset is exact, in NIR's own primitives.

NIR's ``IF`` resets *to* ``v_reset``; every converted network resets *by subtraction*. A
soft-reset neuron of threshold θ, initial membrane ``V0`` and up to Γ spikes per step becomes::

    inputs ─► I(r=1) ─► Threshold(below(j·θ − V0)), j = 1..Γ ─► Scale(θ) ─► next layer
                ▲                     │
                └──── Scale(−θ) ◄─────┘      (a cycle: it delivers the previous step's spikes)

The integrator then holds ``H − V0`` (spikeconv's pre-reset membrane minus the initial one)
at every step, in exact arithmetic (see :mod:`spikeconv.files.nir_common` for ``below`` and the
discretisation, dt = 1). Hard reset uses NIR's ``IF``/``LIF`` (reset to ``−V0`` in the same
shifted coordinates), the leaky neurons of direct training ``LI``/``LIF``, the readout an
integrator ``I`` whose value is the accumulated readout membrane. Constant additions
(per-neuron bias corrections, ``x − mean``) are identity 1×1 ``Conv2d`` (or ``Affine``) nodes
with that bias; ``x / std`` is a ``Scale``; BatchNorm of a trained SNN is a diagonal 1×1
``Conv2d``. Each node's metadata keeps spikeconv's exact parameters, so spikeconv reads the
file back to the identical network. What NIR cannot express (the spiking max-pool gate,
retracted spikes, bistable neurons, concatenation) is refused with one line naming the node
and the option that avoids it.
"""

from __future__ import annotations

import io
import json
import operator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from spikeconv._io import atomic_write
from spikeconv.convert.fold import ChannelScale
from spikeconv.errors import ConversionError
from spikeconv.files.nir_build import _ALIASES, _Builder, _constant_add, _describe, _diagonal_conv, _full, _np, _per_channel
from spikeconv.files.nir_common import DISCRETISATION, NIR_FORMAT, NIR_KEY, NIR_VERSION, record
from spikeconv.files.nir_export_neurons import _NEURONS, if_arrays
from spikeconv.files.nir_shapes import sample_shapes
from spikeconv.neurons import (
    SpikingMaxPool2d,
    SpikingNetwork,
    SpikingNeuron,
    encoding_to_dict,
)
from spikeconv.neurons.expectation import SpikeEquivalentOperator
from spikeconv.neurons.floored_if import FlooredIFNeuron
from spikeconv.neurons.time import repeat_over_time
from spikeconv.neurons.time_layout import is_shape_query

__all__ = ["export_nir", "if_arrays", "snn_to_nir"]


# --- layers ---------------------------------------------------------------------------------------------------------------------


def _pair(value: Any) -> np.ndarray:
    values = list(value) if isinstance(value, (list, tuple)) else [value, value]
    return np.array([int(v) for v in values], dtype=np.int64)


def _conv(b: _Builder, node: fx.Node, conv: nn.Conv2d, inputs: list[str]) -> list[str]:
    if isinstance(conv.padding, str) or conv.padding_mode != "zeros":
        raise ConversionError(f"node {node.name}: Conv2d padding {conv.padding!r} / {conv.padding_mode} has no NIR form; "
                              "use numeric zero padding")  # fmt: skip
    shape = b.shape(node.args[0])
    bias = _np(conv.bias) if conv.bias is not None else np.zeros(conv.out_channels, np.float32)
    return [b.add(node.name, b.nir.Conv2d(input_shape=np.array(shape[1:]), weight=_np(conv.weight), stride=_pair(conv.stride),
                                          padding=_pair(conv.padding), dilation=_pair(conv.dilation), groups=conv.groups,
                                          bias=bias), inputs)]  # fmt: skip


def _linear(b: _Builder, node: fx.Node, linear: nn.Linear, inputs: list[str]) -> list[str]:
    if len(b.shape(node.args[0])) != 1:
        raise ConversionError(f"node {node.name}: Linear on a {len(b.shape(node.args[0]))}-D value has no NIR form; flatten first")
    if linear.bias is None:
        return [b.add(node.name, b.nir.Linear(weight=_np(linear.weight)), inputs)]
    return [b.add(node.name, b.nir.Affine(weight=_np(linear.weight), bias=_np(linear.bias)), inputs)]


def _avgpool(b: _Builder, node: fx.Node, pool: nn.Module, inputs: list[str]) -> list[str]:
    shape = b.shape(node.args[0])
    if isinstance(pool, nn.AdaptiveAvgPool2d):
        out = b.shape(node)[1:]
        if shape[1] % out[0] or shape[2] % out[1]:
            raise ConversionError(f"node {node.name}: adaptive average pooling from {shape[1:]} to {out} has unequal windows, "
                                  "which NIR's AvgPool2d cannot express")  # fmt: skip
        kernel = np.array([shape[1] // out[0], shape[2] // out[1]])
        meta = record(role="adaptive-average-pool", output_size=[int(o) for o in out])  # torch sums adaptive windows in another order
        pool = b.nir.AvgPool2d(kernel_size=kernel, stride=kernel.copy(), padding=np.array([0, 0]), metadata=meta)
        return [b.add(node.name, pool, inputs)]
    padding = _pair(pool.padding)
    if pool.ceil_mode or pool.divisor_override is not None or (padding.any() and not pool.count_include_pad):
        raise ConversionError(f"node {node.name}: AvgPool2d with ceil_mode, divisor_override or count_include_pad=False has no NIR form")
    stride = pool.stride if pool.stride is not None else pool.kernel_size
    return [b.add(node.name, b.nir.AvgPool2d(kernel_size=_pair(pool.kernel_size), stride=_pair(stride), padding=padding), inputs)]


def _batchnorm(b: _Builder, node: fx.Node, bn: nn.modules.batchnorm._BatchNorm, inputs: list[str]) -> list[str]:
    if bn.training or bn.running_mean is None:
        raise ConversionError(f"node {node.name}: BatchNorm without running statistics has no NIR form")
    shape = b.shape(node)
    scale = (bn.weight if bn.weight is not None else torch.ones_like(bn.running_var)) / torch.sqrt(bn.running_var + bn.eps)
    shift = (bn.bias if bn.bias is not None else torch.zeros_like(bn.running_mean)) - bn.running_mean * scale
    meta = record(role="batch-norm", eps=float(bn.eps), kind=type(bn).__name__, running_mean=_np(bn.running_mean),
                  running_var=_np(bn.running_var), weight=_np(bn.weight) if bn.weight is not None else np.ones(shape[0], np.float32),
                  bias=_np(bn.bias) if bn.bias is not None else np.zeros(shape[0], np.float32))  # fmt: skip
    if len(shape) == 3:
        return [b.add(node.name, _diagonal_conv(shape, _np(scale), _np(shift), meta), inputs)]
    if len(shape) == 1:
        return [b.add(node.name, b.nir.Affine(weight=np.diag(_np(scale)), bias=_np(shift), metadata=meta), inputs)]
    raise ConversionError(f"node {node.name}: BatchNorm of a {len(shape)}-D value has no NIR form")


def _flatten(b: _Builder, node: fx.Node, inputs: list[str]) -> list[str]:
    source = b.shape(node.args[0])
    if b.shape(node) != (int(np.prod(source)),):
        raise ConversionError(f"node {node.name} ({_describe(node)}) reshapes {source} to {b.shape(node)}; NIR has only Flatten")
    if len(source) == 1:
        return inputs
    return [b.add(node.name, b.nir.Flatten(input_type={"input": np.array(source)}, start_dim=0, end_dim=-1), inputs)]


def _module(b: _Builder, node: fx.Node, module: nn.Module) -> list[str]:
    if isinstance(module, SpikingNeuron):
        handler = _NEURONS.get(type(module))
        if isinstance(module, FlooredIFNeuron):
            raise ConversionError(f"node {node.name} floors its membrane at −θ (sinabs' IAF, convert --target sinabs), which NIR "
                                  "cannot express; export it with --target sinabs")  # fmt: skip
        if handler is None:
            hint = " convert with --maxpool average" if isinstance(module, SpikingMaxPool2d) else ""
            raise ConversionError(f"node {node.name} is a {type(module).__name__}, which NIR cannot express;{hint or ' no NIR form'}")
        return handler(b, node, module, b.value_sources(node.args[0], node))
    if isinstance(module, _ALIASES):
        return b.value_sources(node.args[0], node)
    inputs = b.value_sources(node.args[0], node)
    if isinstance(module, nn.Conv2d):
        return _conv(b, node, module, inputs)
    if isinstance(module, nn.Linear):
        return _linear(b, node, module, inputs)
    if isinstance(module, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
        return _avgpool(b, node, module, inputs)
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return _batchnorm(b, node, module, inputs)
    if isinstance(module, nn.Flatten):
        return _flatten(b, node, inputs)
    if isinstance(module, ChannelScale):  # convert --target's x·(1/c) and shortcut scales: x·s per channel
        scale = _full(module.scale.reshape(-1, *([1] * (len(b.shape(node)) - 1))), b.shape(node))
        return [b.add(node.name, b.nir.Scale(scale=scale), inputs)]
    hint = " convert with --maxpool average" if isinstance(module, nn.MaxPool2d) else ""
    raise ConversionError(f"node {node.name} ({type(module).__name__}) has no NIR equivalent;{hint or ' export to ONNX instead'}")


_ADD = (operator.add, operator.iadd, torch.add)
_SUB = (operator.sub, operator.isub, torch.sub)
_MUL = (operator.mul, operator.imul, torch.mul)
_DIV = (operator.truediv, operator.itruediv, torch.div)
_FLATTEN_METHODS = ("flatten", "view", "reshape")


def _constant_value(b: _Builder, arg: Any) -> torch.Tensor | None:
    if isinstance(arg, fx.Node):
        return b.constants.get(arg)
    if isinstance(arg, (int, float)) and not isinstance(arg, bool):
        return torch.tensor(float(arg))
    return None


def _arithmetic(b: _Builder, node: fx.Node) -> list[str]:
    left, right = node.args[0], node.args[1]
    lc, rc = _constant_value(b, left), _constant_value(b, right)
    shape, nir = b.shape(node), b.nir
    if node.target in _ADD and lc is None and rc is None:
        return b.value_sources(left, node) + b.value_sources(right, node)
    if node.target in _SUB and lc is None and rc is None:
        negated = b.add(f"{node.name}_negate", nir.Scale(scale=-np.ones(b.shape(right), np.float32)), b.value_sources(right, node))
        return b.value_sources(left, node) + [negated]
    if node.target in _MUL and (lc is None) != (rc is None):
        value, constant = (left, rc) if rc is not None else (right, lc)
        return [b.add(node.name, nir.Scale(scale=_full(constant, shape)), b.value_sources(value, node))]
    if node.target in _DIV and lc is None and rc is not None:
        divisor = _full(rc, shape)
        scale = np.reciprocal(divisor).astype(np.float32)
        return [b.add(node.name, nir.Scale(scale=scale, metadata=record(role="divide", divisor=divisor)),
                      b.value_sources(left, node))]  # fmt: skip
    if (node.target in _ADD and (lc is None) != (rc is None)) or (node.target in _SUB and lc is None and rc is not None):
        value, constant = (left, rc) if rc is not None else (right, lc)
        bias = _per_channel(constant if node.target in _ADD else -constant, shape)
        if bias is None:
            raise ConversionError(f"node {node.name}: a constant that varies within a channel has no NIR form here")
        return [_constant_add(b, node.name, bias, shape, b.value_sources(value, node), record(role="add-constant"))]
    raise ConversionError(f"node {node.name} ({_describe(node)}) has no NIR equivalent; export to ONNX instead")


def _function(b: _Builder, node: fx.Node) -> list[str] | None:
    target = node.target
    if target is repeat_over_time:
        return b.value_sources(node.args[0], node)
    if is_shape_query(node):
        return None
    if target in _ADD + _SUB + _MUL + _DIV:
        return _arithmetic(b, node)
    if target in (torch.flatten, torch.reshape) or (node.op == "call_method" and target in _FLATTEN_METHODS):
        return _flatten(b, node, b.value_sources(node.args[0], node))
    if node.op == "call_method" and target == "contiguous":
        return b.value_sources(node.args[0], node)
    raise ConversionError(f"node {node.name} ({_describe(node)}) has no NIR equivalent; export to ONNX instead")


def snn_to_nir(snn: SpikingNetwork, *, info: dict[str, Any]) -> Any:
    """The NIR graph of ``snn`` (a ``nir.NIRGraph``), with spikeconv's exact parameters in its metadata.

    Raises:
        ConversionError: A node NIR cannot express; one line naming it and what avoids it.
    """
    import nir

    gm = snn.body
    if not isinstance(gm, fx.GraphModule):
        raise ConversionError(f"this SNN's body is a {type(gm).__name__}, not a graph spikeconv made; NIR export needs one")
    for node in gm.graph.nodes:  # transformers: refused before any reshape NIR cannot express is met
        module = gm.get_submodule(str(node.target)) if node.op == "call_module" else None
        if isinstance(module, SpikeEquivalentOperator):
            raise ConversionError(f"node {node.name} is a spike-equivalent {module.kind} (a transformer operation evaluated on "
                                  "running means every step), which NIR cannot express; export to ONNX instead (--format onnx)")
    input_shape = tuple(int(s) for s in info["input_shape"])
    b = _Builder(gm, sample_shapes(snn, input_shape))
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    b.sources[placeholders[0]] = [b.add("input", nir.Input(input_type={"input": np.array(input_shape)}), [])]
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            continue
        if node.op == "get_attr":
            b.constants[node] = _fetch(gm, str(node.target))
        elif node.op == "call_module":
            b.sources[node] = _module(b, node, gm.get_submodule(str(node.target)))
        elif node.op in ("call_function", "call_method"):
            found = _function(b, node)
            if found is not None:
                b.sources[node] = found
        elif node.op == "output":
            result = node.args[0]
            if not isinstance(result, fx.Node):
                raise ConversionError("the SNN must return one tensor of readout currents to export it to NIR")
            classes = b.shape(result)
            readout = b.add("readout", nir.I(r=np.ones(classes, np.float32), metadata=record(role="readout")),
                            b.value_sources(result, node))  # fmt: skip
            b.add("output", nir.Output(output_type={"output": np.array(classes)}), [readout])
    meta = {
        "format": NIR_FORMAT,
        "format_version": NIR_VERSION,
        "discretisation": DISCRETISATION,
        "readout": "the output is the readout integrator: the sum of the readout currents so far; the prediction after t steps "
                   "is its argmax",
        "input_shape": json.dumps(list(input_shape)),
        "num_classes": int(info["num_classes"]),
        "timesteps": int(snn.timesteps),
        "encoding": json.dumps(encoding_to_dict(snn.encoding)),
        "info": json.dumps(_portable_info(info), sort_keys=True),
    }
    return nir.NIRGraph(nodes=b.nodes, edges=b.edges, metadata={NIR_KEY: meta}, type_check=True)


def _fetch(gm: fx.GraphModule, target: str) -> torch.Tensor:
    value: Any = gm
    for part in target.split("."):
        value = getattr(value, part)
    return torch.as_tensor(value).detach().to(torch.float32)


def _portable_info(info: dict[str, Any]) -> dict[str, Any]:
    """The SNN file's info record, reduced to what JSON holds (what the network is and where it came from)."""
    try:
        return json.loads(json.dumps(info, default=str))
    except (TypeError, ValueError):
        return {k: info[k] for k in ("input_shape", "num_classes", "preprocessing") if k in info}


def export_nir(snn: SpikingNetwork, path: str | Path, *, info: dict[str, Any]) -> dict[str, Any]:
    """Write ``snn`` as a NIR file at ``path`` (atomically) and say what it holds.

    Returns:
        ``{"nodes": count, "edges": count, "neurons": count, "node_types": {type: count}}``.
    """
    import nir

    graph = snn_to_nir(snn, info=info)
    buffer = io.BytesIO()
    nir.write(buffer, graph)
    with atomic_write(path, "wb") as handle:
        handle.write(buffer.getvalue())
    types: dict[str, int] = {}
    for node in graph.nodes.values():
        types[type(node).__name__] = types.get(type(node).__name__, 0) + 1
    neurons = sum(1 for _ in snn.neurons())
    return {"nodes": len(graph.nodes), "edges": len(graph.edges), "neurons": neurons, "node_types": dict(sorted(types.items()))}
