"""Read a NIR graph back into a SpikingNetwork (``spikeconv curve net.nir``, ``load_snn``).

The reader finds each neuron by its construction (see :mod:`spikeconv.files.nir_export`): an
integrator (``I``/``LI``) whose ``Threshold`` outputs return through a ``Scale`` into it is a
soft-reset neuron; an ``IF``/``LIF`` node is a hard-reset one; an ``I`` feeding the output
alone is the readout accumulator (spikeconv's readout sums the currents itself). Every other
node is a layer, and edges into one node are summed. Neurons and constant layers carry the
spikeconv record they were written from; the reader rebuilds them from it after checking that
the NIR parameters are exactly what the record implies, so a file read back simulates to the
identical curve. Files from other tools are read where their nodes are uniform IF/LIF neurons
and the layers above; anything else is refused with one line naming the node.
"""

from __future__ import annotations

import json
import operator
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from spikeconv.errors import CheckpointError, ConversionError, SpikeconvError, first_line
from spikeconv.files.nir_common import NIR_KEY, above, check_hdf5_safe, is_hdf5, read_record, soft_thresholds
from spikeconv.files.nir_export import if_arrays
from spikeconv.neurons import (
    BinaryNeuronConfig,
    Charge,
    DirectEncoding,
    IFNeuron,
    Kernel,
    MultiThresholdConfig,
    Reset,
    SpikingNetwork,
    encoding_from_dict,
)
from spikeconv.neurons.time_layout import lay_out_time_

__all__ = ["is_nir_file", "load_nir_network", "nir_to_snn", "read_nir"]


def is_nir_file(path: str | Path) -> bool:
    """Whether ``path`` is an HDF5 file (what NIR files are)."""
    return is_hdf5(Path(path))


def read_nir(path: str | Path) -> Any:
    """The ``nir.NIRGraph`` in ``path``, after the HDF5 safety check; one line on any failure."""
    import nir

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"NIR file {path} does not exist; check the path")
    check_hdf5_safe(path)
    try:
        graph = nir.read(path)
    except Exception as exc:  # nir raises KeyError/AssertionError/ValueError on anything it does not expect
        raise CheckpointError(f"{path} is not a NIR graph nir can read ({type(exc).__name__}: {first_line(exc)})") from None
    if not isinstance(graph, nir.NIRGraph):
        raise CheckpointError(f"{path} holds a single NIR {type(graph).__name__}, not a graph")
    return graph


@dataclass
class _Neuron:
    """One neuron of the file: its core node, the thresholds, the reset and output scales (by name)."""

    core: str
    thresholds: list[str] = field(default_factory=list)
    reset: str | None = None
    out: str | None = None

    def members(self) -> list[str]:
        return [self.core, *self.thresholds, *([self.reset] if self.reset else []), *([self.out] if self.out else [])]


class _Reader:
    def __init__(self, graph: Any, where: str) -> None:
        import nir

        self.nir, self.graph, self.where = nir, graph, where
        self.nodes: dict[str, Any] = dict(graph.nodes)
        self.preds: dict[str, list[str]] = {name: [] for name in self.nodes}
        self.succs: dict[str, list[str]] = {name: [] for name in self.nodes}
        for source, target in graph.edges:
            if source not in self.nodes or target not in self.nodes:
                raise CheckpointError(f"{where}: edge {source} -> {target} names a node the graph lacks")
            self.preds[target].append(source)
            self.succs[source].append(target)
        for name, node in self.nodes.items():
            if isinstance(node, nir.NIRGraph):
                raise CheckpointError(f"{where}: node {name} is a nested NIR graph, which spikeconv does not read; flatten it")

    def of_type(self, *types: type) -> list[str]:
        return [name for name, node in self.nodes.items() if isinstance(node, types)]

    def fail(self, name: str, why: str) -> SpikeconvError:
        return ConversionError(f"{self.where}: node {name} ({type(self.nodes[name]).__name__}) {why}")

    # -- structure -------------------------------------------------------------------------------------------------------------

    def neurons(self) -> tuple[dict[str, _Neuron], str | None]:
        nir = self.nir
        found: dict[str, _Neuron] = {}
        readout = None
        outputs = self.of_type(nir.Output)
        for name in self.of_type(nir.I, nir.LI):
            fires = [s for s in self.succs[name] if isinstance(self.nodes[s], nir.Threshold)]
            if not fires:
                if isinstance(self.nodes[name], nir.I) and self.succs[name] and all(s in outputs for s in self.succs[name]):
                    readout = name
                    continue
                raise self.fail(name, "integrates without firing and does not feed the output; spikeconv cannot read it")
            found[name] = self._soft_neuron(name, fires)
        for name in self.of_type(nir.IF, nir.LIF):
            found[name] = _Neuron(core=name, out=self._amplitude(name, [name]))
        for name in self.of_type(nir.Threshold):
            if not any(name in n.thresholds for n in found.values()):
                raise self.fail(name, "is not fed by an integrator whose reset it drives; spikeconv reads Threshold only in a neuron")
        return found, readout

    def _soft_neuron(self, name: str, fires: list[str]) -> _Neuron:
        resets = [s for s in self.succs[fires[0]] if isinstance(self.nodes[s], self.nir.Scale) and self.succs[s] == [name]]
        if len(resets) != 1 or sorted(self.preds[resets[0]]) != sorted(fires) or any(self.preds[f] != [name] for f in fires):
            raise self.fail(name, "fires without a reset back into it (Threshold -> Scale -> the integrator); spikeconv reads soft "
                                  "reset only in that form")  # fmt: skip
        ordered = sorted(fires, key=lambda f: float(np.mean(self.nodes[f].threshold)))
        return _Neuron(core=name, thresholds=ordered, reset=resets[0], out=self._amplitude(name, fires))

    def _amplitude(self, name: str, fires: list[str]) -> str | None:
        """The ``Scale`` that carries the spike amplitude θ, if spikeconv wrote one."""
        for candidate in self.succs[fires[0]]:
            node = self.nodes[candidate]
            meta = read_record(node)
            if isinstance(node, self.nir.Scale) and meta and meta[0].get("role") == "spike-amplitude":
                if sorted(self.preds[candidate]) != sorted(fires):
                    raise self.fail(candidate, "mixes spikes of different neurons")
                return candidate
        return None

    def order(self, neurons: dict[str, _Neuron]) -> list[str]:
        """Topological order of the nodes without the neurons' reset edges; any other cycle is refused."""
        feedback = {(n.reset, n.core) for n in neurons.values() if n.reset}
        indegree = {name: 0 for name in self.nodes}
        for target, sources in self.preds.items():
            indegree[target] = sum(1 for s in sources if (s, target) not in feedback)
        queue = deque(name for name, degree in indegree.items() if degree == 0)
        ordered = []
        while queue:
            name = queue.popleft()
            ordered.append(name)
            for target in self.succs[name]:
                if (name, target) in feedback:
                    continue
                indegree[target] -= 1
                if indegree[target] == 0:
                    queue.append(target)
        if len(ordered) != len(self.nodes):
            stuck = sorted(set(self.nodes) - set(ordered))[0]
            raise self.fail(stuck, "lies on a cycle that is not a neuron's reset; spikeconv reads recurrence only as soft reset")
        return ordered


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


def _input_sources(reader: _Reader, name: str, neurons: dict[str, _Neuron], owner: dict[str, str]) -> list[str]:
    """A node's inputs, in edge order, with each neuron's spike nodes standing for the neuron (its output value)."""
    result: list[str] = []
    for source in reader.preds[name]:
        key = owner.get(source)
        if key is None:
            result.append(source)
        elif not (source == neurons[key].reset and name == key) and key not in result:  # the reset edge stays inside the neuron
            result.append(key)
    return result


def _if_neuron(reader: _Reader, neuron: _Neuron, settings: dict, arrays: dict, bias: torch.Tensor | None) -> nn.Module:
    """The IFNeuron of a spikeconv record, after checking the NIR numbers are the ones it implies."""
    layer = IFNeuron(_tensor(arrays["threshold"]).reshape(settings["threshold_shape"]), v_init=float(settings["v_init"]),
                     reset=Reset.from_name(settings["reset"]), kernel=Kernel(settings.get("kernel", Kernel.INPLACE.value)),
                     max_spikes=int(settings["max_spikes"]))  # fmt: skip
    layer.set_corrections(v_offset=_tensor(arrays["v_offset"]).reshape(settings["v_offset_shape"]),
                          bias=None if bias is None else bias.reshape(settings["bias_shape"]))  # fmt: skip
    core = reader.nodes[neuron.core]
    shape = tuple(np.asarray(core.r).shape)
    theta, start = if_arrays(layer, shape)
    if layer.reset is Reset.ZERO:
        ok = _equal(core.v_threshold, soft_thresholds(theta, start, 1)[0]) and _equal(core.v_reset, -start)
    else:
        expected = soft_thresholds(theta, start, layer.max_spikes)
        ok = len(expected) == len(neuron.thresholds)
        ok = ok and all(_equal(reader.nodes[f].threshold, t) for f, t in zip(neuron.thresholds, expected, strict=True))
        ok = ok and _equal(reader.nodes[neuron.reset].scale, -theta)
    ok = ok and neuron.out is not None and _equal(reader.nodes[neuron.out].scale, theta) and _equal(arrays["initial_membrane"], start)
    if not ok:
        raise reader.fail(neuron.core, "has NIR parameters that differ from the spikeconv record it carries (was the file edited?); "
                                       "export it again")  # fmt: skip
    return layer


def _recorded_neuron(reader: _Reader, neuron: _Neuron, bias: torch.Tensor | None) -> nn.Module:
    core = reader.nodes[neuron.core]
    meta = read_record(core)
    if meta is None or meta[0].get("role") != "neuron":
        return _foreign_neuron(reader, neuron)
    settings, arrays = meta
    kind = settings.get("neuron")
    if kind == "if":
        return _if_neuron(reader, neuron, settings, arrays, bias)
    if bias is not None:
        raise reader.fail(neuron.core, "has a bias node, which only converted IF neurons carry")
    if kind == "binary":
        config = BinaryNeuronConfig.from_dict(settings["config"])
        layer = config.build()
    elif kind == "multi-threshold":
        config = MultiThresholdConfig.from_dict(settings["config"])
        layer = config.build()
    else:
        raise reader.fail(neuron.core, f"carries an unknown spikeconv neuron kind {kind!r}; upgrade spikeconv")
    thresholds = [reader.nodes[f].threshold for f in neuron.thresholds] or [core.v_threshold]
    count = len(thresholds)
    shape = np.asarray(thresholds[0]).shape
    expected = soft_thresholds(np.full(shape, float(layer.threshold), np.float32), np.zeros(shape, np.float32), count)
    if not all(_equal(t, e) for t, e in zip(thresholds, expected, strict=True)):
        raise reader.fail(neuron.core, "has thresholds that differ from the spikeconv record it carries (was the file edited?)")
    return layer


def _uniform(reader: _Reader, name: str, values: Any, what: str) -> float:
    values = np.asarray(values, dtype=np.float32)
    if values.size == 0 or not np.all(values == values.reshape(-1)[0]):
        raise reader.fail(name, f"has a {what} that differs between neurons; spikeconv reads only uniform neurons from other tools")
    return float(values.reshape(-1)[0])


def _foreign_neuron(reader: _Reader, neuron: _Neuron) -> nn.Module:
    """A neuron another tool wrote: uniform IF/LIF (reset to 0, r = 1) become spikeconv's binary hard-reset neurons."""
    nir, name = reader.nir, neuron.core
    core = reader.nodes[name]
    if not isinstance(core, (nir.IF, nir.LIF)):
        raise reader.fail(name, "is a soft-reset loop without a spikeconv record; spikeconv reads other tools' IF and LIF nodes only")
    if _uniform(reader, name, core.v_reset, "v_reset") != 0.0 or _uniform(reader, name, core.r, "r") != 1.0:
        raise reader.fail(name, "resets to a non-zero v_reset or has r != 1, which spikeconv's neurons do not model")
    threshold = float(above(np.float32(_uniform(reader, name, core.v_threshold, "v_threshold"))))
    if isinstance(core, nir.LIF):
        if _uniform(reader, name, core.v_leak, "v_leak") != 0.0:
            raise reader.fail(name, "leaks towards a non-zero v_leak, which spikeconv's LIF does not model")
        config = BinaryNeuronConfig(charge=Charge.LIF, reset=Reset.ZERO, threshold=threshold, tau=_uniform(reader, name, core.tau, "tau"))
    else:
        config = BinaryNeuronConfig(charge=Charge.IF, reset=Reset.ZERO, threshold=threshold)
    return config.build()


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


def nir_to_snn(graph: Any, *, where: str = "NIR graph") -> tuple[SpikingNetwork, dict[str, Any]]:
    """A SpikingNetwork and its info record (input shape, classes, preprocessing, provenance) from a NIR graph.

    Raises:
        ConversionError / CheckpointError: A node or structure spikeconv does not read; one line naming it.
    """
    import nir

    reader = _Reader(graph, where)
    inputs, outputs = reader.of_type(nir.Input), reader.of_type(nir.Output)
    if len(inputs) != 1 or len(outputs) != 1:
        raise CheckpointError(f"{where}: spikeconv reads graphs with one Input and one Output; this one has {len(inputs)} "
                              f"and {len(outputs)}")  # fmt: skip
    neurons, readout = reader.neurons()
    owner = {member: n.core for n in neurons.values() for member in n.members()}
    builder = _Builder(reader)
    x = builder.graph.placeholder("input")
    builder.steps = builder.graph.placeholder("num_steps")
    biases = _bias_nodes(reader, neurons)
    folded = set(biases.values())
    for name in reader.order(neurons):
        node = reader.nodes[name]
        if (name in owner and owner[name] != name) or name in folded:
            continue
        sources = _input_sources(reader, name, neurons, owner)
        if isinstance(node, nir.Input):
            builder.values[name] = x
        elif isinstance(node, nir.Output) or name == readout:
            builder.values[name] = builder.summed(name, sources)
        elif name in neurons:
            builder.values[name] = _neuron_value(builder, neurons[name], biases.get(name), neurons, owner)
        else:
            builder.values[name] = _layer(builder, name, node, builder.summed(name, sources))
    builder.graph.output(builder.values[outputs[0]])
    meta = (graph.metadata or {}).get(NIR_KEY, {}) if isinstance(graph.metadata, dict) else {}
    encoding = _encoding(meta)
    gm = fx.GraphModule(builder.root, builder.graph)
    lay_out_time_(gm, builder.neuron_nodes, builder.steps, input_static=encoding.is_static)
    gm.graph.lint()
    gm.recompile()
    timesteps = int(meta.get("timesteps", 32)) if str(meta.get("timesteps", "32")).isdigit() else 32
    snn = SpikingNetwork(gm, encoding=encoding, timesteps=max(1, timesteps), metadata={"source": "nir"})
    return snn.eval(), _info(reader, meta, inputs[0], outputs[0])


def _bias_nodes(reader: _Reader, neurons: dict[str, _Neuron]) -> dict[str, str]:
    """core -> the spikeconv bias node that feeds only it (folded back into the neuron as its bias correction)."""
    found = {}
    for core, neuron in neurons.items():
        sources = [s for s in reader.preds[core] if s != neuron.reset]
        meta = read_record(reader.nodes[sources[0]]) if len(sources) == 1 else None
        if meta and meta[0].get("role") == "neuron-bias" and reader.succs[sources[0]] == [core] and "bias" in meta[1]:
            found[core] = sources[0]
    return found


def _neuron_value(builder: _Builder, neuron: _Neuron, bias_node: str | None, neurons: dict[str, _Neuron], owner: dict[str, str]) -> fx.Node:
    """The neuron's call; a spikeconv bias node in front of it becomes the neuron's bias correction again."""
    reader = builder.reader
    bias = None
    sources = _input_sources(reader, neuron.core, neurons, owner)
    if bias_node is not None:
        bias = _tensor(read_record(reader.nodes[bias_node])[1]["bias"])
        stored = np.asarray(reader.nodes[bias_node].bias, dtype=np.float32)
        flat = bias.numpy().reshape(-1)
        if flat.size not in (1, stored.size) or not _equal(stored, np.broadcast_to(flat, stored.shape)):
            raise reader.fail(bias_node, "has a bias that differs from the spikeconv record it carries (was the file edited?)")
        sources = _input_sources(reader, bias_node, neurons, owner)
    layer = _recorded_neuron(reader, neuron, bias)
    value = builder.module(neuron.core, layer, builder.summed(neuron.core, sources), builder.steps)
    builder.neuron_nodes.add(value)
    return value


def _encoding(meta: dict) -> Any:
    raw = meta.get("encoding")
    if isinstance(raw, str):
        try:
            return encoding_from_dict(json.loads(raw))
        except (ValueError, SpikeconvError, TypeError, KeyError):
            pass
    return DirectEncoding()


def _info(reader: _Reader, meta: dict, input_name: str, output_name: str) -> dict[str, Any]:
    info: dict[str, Any] = {}
    raw = meta.get("info")
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
            info = parsed if isinstance(parsed, dict) else {}
        except ValueError:
            info = {}
    shape = [int(s) for s in np.asarray(reader.nodes[input_name].input_type["input"]).reshape(-1)]
    classes = [int(s) for s in np.asarray(reader.nodes[output_name].output_type["output"]).reshape(-1)]
    info["input_shape"] = shape
    info["num_classes"] = int(np.prod(classes)) if classes else 0
    info.setdefault("preprocessing", None)
    info["model_format"] = "NIR file"
    return info


def load_nir_network(path: str | Path) -> tuple[SpikingNetwork, dict[str, Any]]:
    """Read ``path`` (checked, then parsed by nir) into a SpikingNetwork and its info record."""
    path = Path(path)
    graph = read_nir(path)
    try:
        return nir_to_snn(graph, where=str(path))
    except SpikeconvError:
        raise
    except Exception as exc:  # a hand-made graph can fail anywhere in the rebuild
        raise CheckpointError(f"{path} is a NIR graph spikeconv cannot rebuild ({type(exc).__name__}: {first_line(exc)})") from None



def describe_nir(path: str | Path) -> dict[str, Any]:
    """What a NIR file holds, for ``spikeconv info`` (read and checked, not rebuilt or simulated)."""
    graph = read_nir(path)
    meta = (graph.metadata or {}).get(NIR_KEY, {}) if isinstance(graph.metadata, dict) else {}
    types: dict[str, int] = {}
    for node in graph.nodes.values():
        types[type(node).__name__] = types.get(type(node).__name__, 0) + 1
    neurons = sum(1 for node in graph.nodes.values() if (read_record(node) or ({},))[0].get("role") == "neuron")
    info: dict[str, Any] = {}
    if isinstance(meta.get("info"), str):
        try:
            info = json.loads(meta["info"])
        except ValueError:
            info = {}
    return {"format": "nir", "written_by": "spikeconv export" if meta.get("format") else "another tool",
            "format_version": meta.get("format_version"), "nodes": len(graph.nodes), "edges": len(graph.edges),
            "node_types": dict(sorted(types.items())), "spikeconv_neurons": neurons,
            "timesteps": meta.get("timesteps"), "method": info.get("method"), "input_shape": info.get("input_shape"),
            "num_classes": info.get("num_classes"), "preprocessing": info.get("preprocessing"),
            "discretisation": meta.get("discretisation")}  # fmt: skip
