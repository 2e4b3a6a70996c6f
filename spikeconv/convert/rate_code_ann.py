"""rate_code_ann(): the ANN that an ideal converted SNN computes after T steps, without simulating.

A soft-reset IF neuron with threshold θ, initial membrane v_init·θ (+ offset) and a constant input
current x (+ bias) has emitted, after T steps::

    n(T) = clip(⌊(T·(x + b) + v_offset) / θ + v_init⌋, 0, Γ·T)          (Γ = spikes per step)

so its rate θ·n(T)/T is x quantised to T levels of the clip range [0, θ] (rounded for v_init = ½).
A converted network in which every neuron fired like this, with no transient and no spikes of
inactivated neurons, computes the calibrated ANN with each activation replaced by that quantiser.
The signed (SIN-corrected) neuron reaches this count whenever its input is steady, so this graph
is what it converges to; for the plain IF neuron it is the error-free reference the SIN error is
measured against.

Uses: predict an SNN's accuracy at T from a single ANN pass (a 1000-step simulation of a deep
network costs hours on a CPU; this costs one forward), compare threshold rules for a target T, and
tell resolution error (present here) from timing error (the simulation's extra).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, fx, nn

from spikeconv._fx import add_submodule
from spikeconv.calibration import OBSERVERS_KEY, STAGE_KEY, plan_of
from spikeconv.convert.config import ConvertConfig
from spikeconv.convert.maxpool import MaxPoolMode, average_pool, pool_arguments
from spikeconv.errors import ConversionError
from spikeconv.neurons import check_timesteps


class RateCodeQuantizer(nn.Module):
    """An activation site as the spike count of an ideal IF neuron after ``timesteps`` steps.

    Shapes: ``[N, C, ...]`` in, same shape out. Thresholds are one value or one per channel (dim 1).
    """

    def __init__(self, threshold: Tensor, timesteps: int, *, v_init: float = 0.5, max_spikes: int = 1,
                 bias: Tensor | None = None, v_offset: Tensor | None = None) -> None:  # fmt: skip
        super().__init__()
        self.timesteps = check_timesteps(timesteps)
        self.v_init = float(v_init)
        self.max_spikes = int(max_spikes)
        self.register_buffer("threshold", torch.as_tensor(threshold, dtype=torch.float32).reshape(-1).clone())
        self.register_buffer("bias", torch.zeros(()) if bias is None else bias.clone())
        self.register_buffer("v_offset", torch.zeros(()) if v_offset is None else v_offset.clone())

    def extra_repr(self) -> str:
        return f"T={self.timesteps}, v_init={self.v_init:g}, max_spikes={self.max_spikes}"

    def forward(self, x: Tensor) -> Tensor:
        th = self.threshold.to(x.dtype)
        if th.numel() > 1:
            if x.dim() < 2 or x.shape[1] != th.numel():
                raise ConversionError(f"{th.numel()} per-channel thresholds do not fit input shape {tuple(x.shape)}")
            th = th.reshape(1, -1, *([1] * (x.dim() - 2)))
        steps = self.timesteps
        charge = steps * (x + self.bias.to(x.dtype)) + self.v_offset.to(x.dtype)
        count = torch.floor(charge / th + self.v_init).clamp(0, self.max_spikes * steps)
        return count * th / steps


def _correction(record: dict, key: str) -> Tensor | None:
    if key not in record:
        return None
    return torch.tensor(record[key], dtype=torch.float32).reshape(record[f"{key}_shape"])


def rate_code_ann(calibrated: fx.GraphModule, timesteps: int, config: ConvertConfig | None = None) -> fx.GraphModule:
    """The calibrated ANN with every activation site replaced by its ideal T-step rate code.

    Args:
        calibrated: A graph from :func:`spikeconv.calibrate` (or ``attach_plan``), corrections included.
        timesteps: T, the number of steps the SNN would run.
        config: The conversion settings whose neurons are modelled (``v_init``, ``max_spikes``; a target's
            ``start_shift`` gives T times its charge by step T, as ``v_init`` would);
            defaults to :class:`ConvertConfig`'s. Max-pools after a spiking layer stay max-pools
            (a spiking max-pool passes the max of its input counts) unless ``config.maxpool`` is
            ``AVERAGE``, in which case they become the same average pools the SNN gets.

    Returns:
        An ordinary module graph: call it on a batch to get the logits.
    """
    plan = plan_of(calibrated)
    if calibrated.meta.get(STAGE_KEY) != "prepared" or plan is None:
        raise ConversionError("rate_code_ann() needs a graph from calibrate() (or prepare() + attach_plan())")
    steps = check_timesteps(timesteps)
    config = config or ConvertConfig()
    gm = copy.deepcopy(calibrated)
    for site, observer_name in gm.meta[OBSERVERS_KEY].items():
        record = plan.corrections.get(site, {})
        quantizer = RateCodeQuantizer(torch.tensor(plan.thresholds[site]), steps, v_init=config.v_init + config.start_shift * steps,
                                      max_spikes=config.max_spikes, bias=_correction(record, "bias"),
                                      v_offset=_correction(record, "v_offset"))  # fmt: skip
        gm.add_submodule(site, quantizer)  # the site is the activation module itself: replaced
        gm.add_submodule(observer_name, nn.Identity())
    if config.maxpool is MaxPoolMode.AVERAGE:
        _average_spiking_maxpools_(gm, set(plan.thresholds))
    gm.meta = {STAGE_KEY: "rate-code", "timesteps": steps}
    return gm.eval()


def _average_spiking_maxpools_(gm: fx.GraphModule, sites: set[str]) -> None:
    """Replace the max-pools that see spikes (downstream of a site) by average pools, as convert does."""
    downstream: set[fx.Node] = set()
    for node in list(gm.graph.nodes):
        if (node.op == "call_module" and node.target in sites) or any(arg in downstream for arg in node.all_input_nodes):
            downstream.add(node)
        args = pool_arguments(gm, node) if node in downstream else None
        if args is not None:
            node.op, node.target = "call_module", add_submodule(gm, f"{node.name}_average", average_pool(node, args))
            node.args, node.kwargs = (node.args[0],), {}
    gm.graph.lint()
    gm.recompile()
