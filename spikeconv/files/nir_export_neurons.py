"""The neurons of the exact NIR file: soft reset as an ``I``/``Threshold``/``Scale(−θ)`` loop, hard reset as ``IF``/``LIF``.

See :mod:`spikeconv.files.nir_export` for the construction and docs/export_nir.md for the tables.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import fx

from spikeconv.errors import ConversionError
from spikeconv.files.nir_build import _Builder, _constant_add, _full, _np, _per_channel
from spikeconv.files.nir_common import below, record, soft_thresholds
from spikeconv.neurons import (
    BinarySpikingNeuron,
    BistableIFNeuron,
    Charge,
    IFNeuron,
    MultiThresholdLIF,
    Reset,
    SinCorrection,
)
from spikeconv.neurons.multi_threshold import ResetDecay

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

