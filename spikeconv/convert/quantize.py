"""Symmetric integer weights for hardware targets (``convert --weight-bits N``).

After the thresholds are folded (every θ = 1, :mod:`spikeconv.convert.fold`), each neuron's input
current is a sum of layers (a convolution, a shortcut's layer, a shortcut scale). All layers that
feed the same neurons share one scale per output channel, ``s_c = max |w_c| / (2^(N−1) − 1)``
over those layers, so that their integer weights add up in one membrane::

    w_int = clamp(round(w / s_c), −(2^(N−1) − 1), 2^(N−1) − 1)      w ← s_c · w_int

spikeconv simulates the dequantised weights ``s_c·w_int`` against θ = 1; an exported graph carries
``w_int`` with the threshold and bias divided by ``s_c`` (the same membrane, measured in units of
``s_c``). Targets with one threshold per layer (snnTorch, SpikingJelly) get one scale per layer, and
so does the readout layer, whose argmax a per-class scale would change. Each quantised layer keeps
its scales in a ``weight_scale`` buffer (``[C_out]``), which the exporter divides by.
"""

from __future__ import annotations

import torch
from torch import Tensor, fx, nn

from spikeconv.convert.fold import ChannelScale, producers_of
from spikeconv.errors import ConversionError
from spikeconv.neurons import IFNeuron

__all__ = ["SCALE_BUFFER", "quantize_weights_", "weight_scale_of"]

SCALE_BUFFER = "weight_scale"
"""The buffer of each quantised layer holding its per-output-channel scale ``s_c``."""


def _module(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    return gm.get_submodule(str(node.target)) if node.op == "call_module" else None


def _weight(gm: fx.GraphModule, node: fx.Node) -> Tensor:
    """The weight of a producer, as ``[C_out, ...]`` (a shortcut scale's factors as ``[C]``)."""
    module = _module(gm, node)
    return module.scale if isinstance(module, ChannelScale) else module.weight.data


def weight_scale_of(module: nn.Module) -> Tensor | None:
    """The per-channel scale ``s_c`` of a quantised layer or shortcut scale, or None."""
    return getattr(module, SCALE_BUFFER, None)


def _groups(gm: fx.GraphModule) -> list[tuple[fx.Node, list[fx.Node], bool]]:
    """(consumer, the producers of its current, is the readout) for every neuron and the output."""
    groups = []
    for node in gm.graph.nodes:
        if isinstance(_module(gm, node), IFNeuron):
            groups.append((node, producers_of(gm, node), False))
        elif node.op == "output":
            groups.append((node, producers_of(gm, node), True))
    return groups


def quantize_weights_(gm: fx.GraphModule, bits: int, *, per_layer: bool, clip: dict[str, float] | None = None) -> int:
    """Round every weight of ``gm`` to ``bits``-bit symmetric integers times a shared scale (in place).

    Args:
        gm: A converted network's body whose thresholds are folded (all 1).
        bits: Integer width N (weights in ``±(2^(N−1) − 1)``).
        per_layer: One scale per layer (targets with one threshold per layer) instead of per channel.
        clip: Optional fraction of ``max |w|`` per consumer name (chosen on calibration data; default 1).

    Returns:
        How many layers were quantised.

    Raises:
        ConversionError: A neuron's current comes from no layer, or a threshold is not folded.
    """
    qmax = float(2 ** (bits - 1) - 1)
    count = 0
    for consumer, producers, readout in _groups(gm):
        if not producers:
            raise ConversionError(f"node {consumer.name}: its current comes from no layer, so it has no weights to quantise")
        module = _module(gm, consumer)
        if module is not None and not torch.all(module.threshold == 1.0):
            raise ConversionError(f"node {consumer.name}: --weight-bits needs folded thresholds (convert with --target)")
        per_producer = [_weight(gm, p).abs().reshape(_weight(gm, p).shape[0], -1).amax(1) for p in producers]
        channels = max(v.numel() for v in per_producer)
        absmax = torch.stack([v.expand(channels) for v in per_producer]).amax(0)
        if per_layer or readout:
            absmax = absmax.amax().expand_as(absmax)
        absmax = absmax * (1.0 if clip is None else float(clip.get(consumer.name, 1.0)))
        scale = torch.where(absmax > 0, absmax / qmax, torch.ones_like(absmax))
        for producer in producers:
            _quantise_one_(gm, producer, scale, qmax)
            count += 1
    return count


def _quantise_one_(gm: fx.GraphModule, producer: fx.Node, scale: Tensor, qmax: float) -> None:
    weight = _weight(gm, producer)
    view = scale.reshape(-1, *([1] * (weight.dim() - 1)))
    quantised = torch.clamp(torch.round(weight / view), -qmax, qmax) * view
    module = _module(gm, producer)
    if isinstance(module, ChannelScale):
        module.scale = quantised.reshape(-1).clone()
    else:
        module.weight.data.copy_(quantised)
    module.register_buffer(SCALE_BUFFER, scale.clone())
