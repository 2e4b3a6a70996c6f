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
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from spikeconv.errors import CheckpointError, SpikeconvError, first_line
from spikeconv.files.nir_common import NIR_KEY, above, read_record, soft_thresholds
from spikeconv.files.nir_export_neurons import if_arrays
from spikeconv.files.nir_import_layers import _Builder, _equal, _layer, _tensor
from spikeconv.files.nir_read import _Neuron, _Reader, describe_nir, is_nir_file, read_nir
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

__all__ = ["describe_nir", "is_nir_file", "load_nir_network", "nir_to_snn", "read_nir"]


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



def nir_to_snn(graph: Any, *, where: str = "NIR graph") -> tuple[SpikingNetwork, dict[str, Any]]:
    """A SpikingNetwork and its info record (input shape, classes, preprocessing, provenance) from a NIR graph.

    Raises:
        ConversionError / CheckpointError: A node or structure spikeconv does not read; one line naming it.
    """
    import nir

    meta = (graph.metadata or {}).get(NIR_KEY, {}) if isinstance(graph.metadata, dict) else {}
    if meta.get("format") == "spikeconv-nir-target":
        raise CheckpointError(f"{where} was written for {meta.get('library', meta.get('target'))}, in the conventions of its importer "
                              "(docs/export_targets.md); run it there, or export the SNN file with --target nir for spikeconv")  # fmt: skip
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


