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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from spikeconv._io import atomic_write
from spikeconv.errors import ConversionError
from spikeconv.files.nir_common import DISCRETISATION, NIR_FORMAT, NIR_KEY, NIR_VERSION, below, record, soft_thresholds
from spikeconv.files.nir_shapes import sample_shapes
from spikeconv.neurons import (
    BinarySpikingNeuron,
    BistableIFNeuron,
    Charge,
    IFNeuron,
    MultiThresholdLIF,
    Reset,
    SinCorrection,
    SpikingMaxPool2d,
    SpikingNetwork,
    SpikingNeuron,
    encoding_to_dict,
)
from spikeconv.neurons.multi_threshold import ResetDecay
from spikeconv.neurons.time import repeat_over_time
from spikeconv.neurons.time_layout import is_shape_query

__all__ = ["export_nir", "snn_to_nir"]

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


# --- neurons --------------------------------------------------------------------------------------------------------------------


def if_arrays(neuron: IFNeuron, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """θ and the initial membrane ``V0 = v_init·θ + v_offset`` of one neuron, per unit of one sample's ``shape``,
    computed as the neuron computes them (the writer's arrays and the reader's check both come from here)."""
    probe = torch.zeros((1, *shape))
    theta_b = neuron.broadcast_threshold(probe)
    start = (neuron.v_init * theta_b + neuron.v_offset).expand(probe.shape)[0]
    return _full(theta_b[0] if theta_b.dim() else theta_b, shape), _np(start)


def _if_neuron(b: _Builder, node: fx.Node, neuron: IFNeuron, inputs: list[str]) -> list[str]:
    nir, shape, name = b.nir, b.shape(node), node.name
    if isinstance(neuron, BistableIFNeuron):
        raise ConversionError(f"node {name} is a bistable neuron (BSNN), whose phases NIR cannot express; convert with another "
                              "--method (e.g. calibrated)")  # fmt: skip
    if neuron.sin_correction is not SinCorrection.NONE:
        raise ConversionError(f"node {name} retracts spikes ({neuron.sin_correction.value} SIN correction), which NIR cannot "
                              "express; convert with --sin-correction none")  # fmt: skip
    theta, v0 = if_arrays(neuron, shape)
    settings = {"neuron": "if", "reset": neuron.reset.value, "max_spikes": neuron.max_spikes, "v_init": float(neuron.v_init),
                "threshold_shape": list(neuron.threshold.shape), "bias_shape": list(neuron.bias.shape),
                "v_offset_shape": list(neuron.v_offset.shape), "kernel": neuron.kernel.value}  # fmt: skip
    arrays = {"threshold": _np(neuron.threshold), "v_offset": _np(neuron.v_offset).reshape(-1), "initial_membrane": v0}
    if neuron.bias.dim() or float(neuron.bias) != 0.0:
        bias = _per_channel(neuron.bias, shape)
        if bias is None:
            raise ConversionError(f"node {name}: its bias correction varies within a channel, which has no NIR form here")
        inputs = [_constant_add(b, f"{name}_bias", bias, shape, inputs, record(role="neuron-bias", bias=_np(neuron.bias).reshape(-1)))]
    meta = record(role="neuron", **settings, **arrays)
    if neuron.reset is Reset.ZERO:
        fire = b.add(name, nir.IF(r=np.ones(shape, np.float32), v_threshold=soft_thresholds(theta, v0, 1)[0], v_reset=-v0,
                                  metadata=meta), inputs)  # fmt: skip
        fired = [fire]
    else:
        integrator = b.add(name, nir.I(r=np.ones(shape, np.float32), metadata=meta), inputs)
        fired = [b.add(f"{name}_fire{j + 1}" if neuron.max_spikes > 1 else f"{name}_fire",
                       nir.Threshold(threshold=t, metadata=record(role="threshold", spike=j + 1)), [integrator])
                 for j, t in enumerate(soft_thresholds(theta, v0, neuron.max_spikes))]  # fmt: skip
        b.add(f"{name}_reset", nir.Scale(scale=-theta, metadata=record(role="reset")), fired)
        b.edges.append((f"{name}_reset", integrator))
    return [b.add(f"{name}_out", nir.Scale(scale=theta, metadata=record(role="spike-amplitude")), fired)]


def _soft_loop(b: _Builder, name: str, core: Any, thresholds: list[np.ndarray], feedback: np.ndarray, inputs: list[str]) -> list[str]:
    integrator = b.add(name, core, inputs)
    fired = [b.add(f"{name}_fire{j + 1}" if len(thresholds) > 1 else f"{name}_fire",
                   b.nir.Threshold(threshold=t, metadata=record(role="threshold", spike=j + 1)), [integrator])
             for j, t in enumerate(thresholds)]  # fmt: skip
    b.add(f"{name}_reset", b.nir.Scale(scale=feedback, metadata=record(role="reset")), fired)
    b.edges.append((f"{name}_reset", integrator))
    return fired


def _binary_neuron(b: _Builder, node: fx.Node, neuron: BinarySpikingNeuron, inputs: list[str]) -> list[str]:
    nir, shape, name, config = b.nir, b.shape(node), node.name, neuron.config
    ones, zeros = np.ones(shape, np.float32), np.zeros(shape, np.float32)
    threshold = below(np.full(shape, float(neuron.threshold), np.float32))
    tau = np.full(shape, config.tau, np.float32)
    meta = record(role="neuron", neuron="binary", config=config.to_dict())
    if config.reset is Reset.ZERO:
        core = (nir.IF(r=ones, v_threshold=threshold, v_reset=zeros, metadata=meta) if config.charge is Charge.IF
                else nir.LIF(tau=tau, r=ones, v_leak=zeros, v_threshold=threshold, v_reset=zeros, metadata=meta))  # fmt: skip
        return [b.add(name, core, inputs)]
    if config.charge is Charge.IF:
        return _soft_loop(b, name, nir.I(r=ones, metadata=meta), [threshold], -ones, inputs)
    # H[t] = (1 − 1/τ)·(H[t−1] − S[t−1]) + X[t]/τ: through LI's input (scaled by 1/τ) the spike is subtracted τ − 1 times
    return _soft_loop(b, name, nir.LI(tau=tau, r=ones, v_leak=zeros, metadata=meta), [threshold], -(tau - 1), inputs)


def _multi_threshold(b: _Builder, node: fx.Node, neuron: MultiThresholdLIF, inputs: list[str]) -> list[str]:
    nir, shape, name, config = b.nir, b.shape(node), node.name, neuron.config
    decay = float(neuron.decay)
    if not 0.0 <= decay < 1.0:
        raise ConversionError(f"node {name}: a multi-threshold LIF with decay k = {decay:g} has no NIR leaky integrator (needs 0 <= k < 1)")
    theta = np.full(shape, float(neuron.threshold), np.float32)
    tau = np.full(shape, 1.0 / (1.0 - decay), np.float32)
    meta = record(role="neuron", neuron="multi-threshold", config=config.to_dict())
    feedback = -theta if config.reset_decay is ResetDecay.UNDECAYED else -np.float32(decay) * theta
    # LI(τ = 1/(1 − k), r = τ): v[t] = k·v[t−1] + x[t]
    core = nir.LI(tau=tau, r=tau.copy(), v_leak=np.zeros(shape, np.float32), metadata=meta)
    return _soft_loop(b, name, core, soft_thresholds(theta, np.zeros(shape, np.float32), config.max_spikes), feedback, inputs)


_NEURONS: dict[type, Callable[[_Builder, fx.Node, Any, list[str]], list[str]]] = {
    IFNeuron: _if_neuron,
    BistableIFNeuron: _if_neuron,
    BinarySpikingNeuron: _binary_neuron,
    MultiThresholdLIF: _multi_threshold,
}


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
