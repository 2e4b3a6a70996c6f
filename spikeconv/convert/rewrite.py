"""convert(): a calibrated ANN graph -> SpikingNetwork.

Each activation site becomes the neuron of ``config.neuron`` (built by the converted-neuron registry,
:mod:`spikeconv.convert.neurons`) named after it, with the plan's threshold; observers
are removed; the graph gains a ``num_steps`` input and runs on time-flattened tensors. Before and
after, for ``conv -> relu -> fc``::

    conv = self.conv(x); relu = self.relu(conv); relu_observer = self.relu_observer(relu)
    fc = self.fc(relu_observer)
    conv = self.conv(x); relu = self.relu(conv, num_steps, static=True); fc = self.fc(relu)

Max-pools on spike trains become spiking max-pools (or average pools, by :class:`MaxPoolMode`;
see :mod:`spikeconv.convert.maxpool`). The last layer is not followed by a neuron, so the
network's output is the readout current at each step (accumulated by the caller as the readout
membrane).
"""

from __future__ import annotations

import copy

import torch
from torch import fx

from spikeconv.calibration import OBSERVERS_KEY, STAGE_KEY, plan_of
from spikeconv.convert.config import ConvertConfig
from spikeconv.convert.fold import fold_thresholds_, shift_start_, spike_values_
from spikeconv.convert.maxpool import rewrite_maxpools_
from spikeconv.convert.neurons import converted_neuron
from spikeconv.convert.operators import OPERATORS_KEY, spike_equivalent_operators_
from spikeconv.convert.quantize import quantize_weights_
from spikeconv.convert.target_check import check_config_fits
from spikeconv.convert.time_layout import lay_out_time_
from spikeconv.errors import ConversionError
from spikeconv.neurons import SpikingNetwork, SpikingNeuron
from spikeconv.neurons.conv_chunks import chunk_convolutions_
from spikeconv.neurons.pooling import accelerate_avg_pools_


def _remove_observers_(gm: fx.GraphModule) -> None:
    observer_names = set(gm.meta[OBSERVERS_KEY].values())
    for node in list(gm.graph.nodes):
        if node.op == "call_module" and node.target in observer_names:
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)


def _add_steps_input(gm: fx.GraphModule) -> fx.Node:
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise ConversionError(f"the model must take exactly one input, it takes {len(placeholders)}")
    with gm.graph.inserting_after(placeholders[0]):
        return gm.graph.placeholder("num_steps")


def _check_single_output(gm: fx.GraphModule) -> None:
    output = next(n for n in gm.graph.nodes if n.op == "output")
    if not isinstance(output.args[0], fx.Node):
        raise ConversionError("the model must return a single tensor of class scores")


def apply_corrections(neuron: SpikingNeuron, record: dict) -> None:
    """Install the plan's measured bias / initial-potential corrections on one neuron."""
    tensors = {}
    for key in ("bias", "v_offset"):
        if key in record:
            tensors[key] = torch.tensor(record[key], dtype=torch.float32).reshape(record[f"{key}_shape"])
    neuron.set_corrections(**tensors)


def convert(calibrated: fx.GraphModule, config: ConvertConfig | None = None) -> SpikingNetwork:
    """Turn a calibrated graph (from :func:`calibrate` or :func:`attach_plan`) into an SNN.

    Raises:
        ConversionError: if the graph was not prepared and calibrated by spikeconv.
    """
    plan = plan_of(calibrated)
    if calibrated.meta.get(STAGE_KEY) != "prepared" or plan is None:
        raise ConversionError(
            "convert() needs a graph from calibrate() (or prepare() + attach_plan()); "
            "run spikeconv.prepare and spikeconv.calibrate first"
        )
    config = config or ConvertConfig()
    check_config_fits(config)
    gm = copy.deepcopy(calibrated)
    _check_single_output(gm)
    _remove_observers_(gm)
    steps = _add_steps_input(gm)
    kind = converted_neuron(config.neuron)
    neurons = set()
    for node in gm.graph.nodes:
        if node.op == "call_module" and node.target in plan.thresholds:
            neuron = kind.build(plan.thresholds[node.target], config)
            apply_corrections(neuron, plan.corrections.get(str(node.target), {}))
            setattr(gm, str(node.target), neuron)
            node.args = (node.args[0], steps)
            neurons.add(node)
    kinds = lay_out_time_(gm, neurons, steps, input_static=config.encoding.is_static)
    operators = spike_equivalent_operators_(gm, gm.meta.get(OPERATORS_KEY, {}), kinds, steps)  # transformers (convert/operators.py)
    maxpools = rewrite_maxpools_(gm, kinds, steps, config.maxpool)
    finished = kind.finish(gm, neurons, kinds, steps, config) if kind.finish is not None else None
    if config.start_shift:  # a target's membranes start at 0: V[0] as a bias per step (convert/fold.py)
        shift_start_(gm, config.start_shift)
    if config.target is not None:  # convert --target: fitted spike values, every θ = 1, then integer weights (fold.py, quantize.py)
        spike_values_(gm, plan.corrections, config.target)
        fold_thresholds_(gm, config.target)
    if config.weight_bits is not None:
        quantize_weights_(gm, config.weight_bits, per_layer=config.target.uniform_thresholds)
    gm.delete_all_unused_submodules()
    gm.graph.lint()
    gm.recompile()
    accelerate_avg_pools_(gm)  # bit-identical average pools without aten's slow NCHW path (neurons/pooling.py)
    chunk_convolutions_(gm)  # bit-identical convolutions in cache-sized row chunks (neurons/conv_chunks.py)
    gm.meta = {STAGE_KEY: "spiking"}
    metadata = {"plan": plan.to_dict(), "convert": config.to_dict(), "maxpool": maxpools}
    if operators["spiking"] or operators["static"]:
        metadata["operators"] = operators
    if finished is not None:
        metadata[config.neuron.value] = finished
    return SpikingNetwork(gm, encoding=config.encoding, timesteps=config.timesteps,
                          time_chunk=config.time_chunk, metadata=metadata)  # fmt: skip
