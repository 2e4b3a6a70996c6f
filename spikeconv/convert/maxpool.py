"""Max-pooling call sites in a converted graph: a spiking max-pool gate, or average pooling.

A max-pool whose input varies over time (spikes, or currents computed from spikes) cannot stay a
plain max-pool: per step it would take the max of 0/θ values and fire whenever any input fires.
Each such call site (``nn.MaxPool2d`` module, ``F.max_pool2d`` or ``torch.max_pool2d``) gets its
own stateful module, named after the node it replaces, chosen by :class:`MaxPoolMode`:

- ``SPIKING`` (default): :class:`~spikeconv.neurons.SpikingMaxPool2d`, whose rate equals the
  max-pool of its input rates, so the calibrated ANN is reproduced.
- ``AVERAGE``: ``nn.AvgPool2d`` with the same kernel, stride, padding and ceil mode (averaging
  real inputs only). The SNN then approximates the ANN *with average pooling*, which is not the
  network that was calibrated; it is the choice of QCFS/SRP, whose ANNs are trained with average
  pooling. It is logged as a warning and recorded in the network's metadata, never silent.

A max-pool on a static value (the analog image before the first neuron) is exact as it is and
stays a max-pool in both modes. Before/after (SPIKING) for ``relu -> pool``::

    relu = self.relu(conv, num_steps, static=True); pool = self.pool(relu)
    relu = self.relu(conv, num_steps, static=True); pool = self.pool_1(relu, num_steps)
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import fx, nn

from spikeconv._fx import add_submodule, module_of
from spikeconv._names import NamedEnum
from spikeconv.convert.time_layout import TimeKind
from spikeconv.errors import ConversionError
from spikeconv.neurons import SpikingMaxPool2d

logger = logging.getLogger("spikeconv")

_MAXPOOL_FUNCTIONS = (F.max_pool2d, torch.max_pool2d)
_ARG_NAMES = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
_DEFAULTS = {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False, "return_indices": False}


class MaxPoolMode(NamedEnum):
    """What conversion does with a max-pool on spike trains (see the module docstring)."""

    SPIKING = "spiking"
    AVERAGE = "average"

    __label__ = "max-pool mode"


def pool_arguments(gm: fx.GraphModule, node: fx.Node) -> dict | None:
    """``F.max_pool2d`` keyword arguments of a max-pool call site, or ``None`` for other nodes."""
    module = module_of(gm, node)
    if type(module) is nn.MaxPool2d:
        args = {name: getattr(module, name) for name in _ARG_NAMES[1:]}
    elif node.op == "call_function" and node.target in _MAXPOOL_FUNCTIONS:
        args = {**_DEFAULTS, **dict(zip(_ARG_NAMES[1:], node.args[1:], strict=False)), **node.kwargs}
    else:
        return None
    if args.pop("return_indices"):
        raise ConversionError(f"max-pool {node.name} returns indices, which have no spiking equivalent; set return_indices=False")
    if any(isinstance(value, fx.Node) for value in args.values()):
        raise ConversionError(f"max-pool {node.name} has arguments computed in the graph; use constant kernel/stride/padding")
    return args


def average_pool(node: fx.Node, args: dict) -> nn.AvgPool2d:
    """The average pool that stands in for a max-pool call site under ``MaxPoolMode.AVERAGE``."""
    if args["dilation"] not in (1, (1, 1), [1, 1]):
        raise ConversionError(
            f"max-pool {node.name} has dilation {args['dilation']}, which average pooling cannot reproduce; use MaxPoolMode.SPIKING"
        )
    stride = args["stride"] if args["stride"] not in (None, (), []) else args["kernel_size"]
    return nn.AvgPool2d(args["kernel_size"], stride=stride, padding=args["padding"], ceil_mode=args["ceil_mode"], count_include_pad=False)


def rewrite_maxpools_(gm: fx.GraphModule, kinds: dict[fx.Node, TimeKind], steps: fx.Node, mode: MaxPoolMode) -> dict:
    """Replace every time-varying max-pool call site by its own module (in place).

    Args:
        gm: The graph being converted, after :func:`lay_out_time_`.
        kinds: The time kind of every node, from :func:`lay_out_time_`.
        steps: The graph's ``num_steps`` placeholder.
        mode: Spiking gate or average pooling.

    Returns:
        A JSON-serialisable record for the network's metadata: the mode, and the node names that
        became spiking max-pools, average pools, or stayed analog max-pools.
    """
    record: dict = {"mode": mode.value, "spiking": [], "average": [], "analog": []}
    replaced = []
    for index, node in enumerate(list(gm.graph.nodes)):
        args = pool_arguments(gm, node)
        if args is None:
            continue
        if kinds.get(node) is not TimeKind.DYNAMIC:
            record["analog"].append(node.name)
            continue
        if mode is MaxPoolMode.SPIKING:
            module, new_args, kwargs = SpikingMaxPool2d(**args), (node.args[0], steps), {"static": False}
        else:
            module, new_args, kwargs = average_pool(node, args), (node.args[0],), {}
        node.op, node.target = "call_module", add_submodule(gm, f"_spikeconv_pool_{index}", module)
        node.args, node.kwargs = new_args, kwargs
        replaced.append(node)
        record[mode.value].append(node.name)
    gm.delete_all_unused_submodules()  # the replaced max-pools, so that their names become free
    for node in replaced:
        module = gm.get_submodule(node.target)
        delattr(gm, node.target)
        node.target = add_submodule(gm, node.name, module)
    if record["average"]:
        logger.warning(
            "convert: max-pool %s replaced by average pooling (MaxPoolMode.AVERAGE); the SNN approximates the ANN with "
            "average pooling, not the calibrated max-pool network; use MaxPoolMode.SPIKING to reproduce it",
            ", ".join(record["average"]),
        )
    return record
