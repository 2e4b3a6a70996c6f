"""Thresholds, spike values and biases fitted for a hard-reset neuron by simulating it (``convert --target``).

The layer-by-layer corrections (:mod:`spikeconv.convert.corrections`) assume the rate code of a soft-reset
neuron: its spike count over T steps is its input charge divided by θ, so a spike is worth θ and a mean
bias cancels what is left. A neuron that resets to 0 (snnTorch, SpikingJelly and Norse run no other) loses
the charge above θ at every spike: for a constant input z it fires every ⌈θ/z⌉ steps, and each spike
stands for θ plus what the reset threw away. Its count is a coarse, almost logarithmic function of z, and
its spikes are worth more than θ.

So, from the first site to the last, each site is fitted by simulating the target's own neuron on the
currents that actually reach it (every earlier site already fitted) over the correction samples. Per
channel (or per layer, where the plan has one threshold per layer) it takes::

    θ' = m·θ                    m ∈ MULTIPLIERS, θ the calibrated threshold (the neuron fires at θ')
    b  = f·θ'/T per step        f ∈ FRACTIONS (the start shift included: the layer bias in all)
    a  = Σ y·n / Σ n²           the spike value, least squares for the counts n

minimising ``Σ (a·n/T − y)²`` over samples and positions, ``n`` the spike count after T steps and ``y`` the
ANN's activation. The plan records θ' as the threshold and, per site, ``bias`` (what the layer bias needs
beyond ``ConvertConfig.start_shift``) and ``spike_value`` (a); conversion makes the layers that read the
spikes take ``a`` instead of θ (:func:`~spikeconv.convert.fold.spike_values_`), and the fold divides the
current by θ' — weights and biases only, which every target runs. On the shipped CNN at T = 8 the spike
values come out 1.3-1.9 θ. Positions are subsampled (``POSITIONS`` per sample and channel, seeded) to bound
the work; the batches are planned for the memory budget.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, fx, nn

from spikeconv.calibration import OBSERVERS_KEY, PLAN_KEY, plan_of
from spikeconv.convert.config import ConvertConfig
from spikeconv.convert.corrections import CorrectionConfig, _Samples
from spikeconv.convert.fold import unfold_thresholds_
from spikeconv.convert.rewrite import convert
from spikeconv.errors import CalibrationError
from spikeconv.neurons import Reset, SpikingNetwork
from spikeconv.runtime.memory import WORKING_SET, MemoryBudget, measure_batch_cost, plan_batch, resolve_budget

__all__ = ["FRACTIONS", "MULTIPLIERS", "POSITIONS", "fit_hard_reset"]

MULTIPLIERS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25)
"""The firing thresholds tried, as multiples of the calibrated θ."""

FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
"""The bias tried, as ``f·θ'/T`` per step (0.5: the charge of a θ/2 start by step T)."""

POSITIONS = 128
"""Spatial positions per sample and channel the fit simulates (a seeded subset where a map has more)."""


class _Stop(Exception):
    """Ends a forward once the value wanted has been seen."""


def _seen_by(module: nn.Module, run: Callable[[], Any], *, inputs: bool) -> Tensor:
    """The input (``inputs``) or output of ``module`` while ``run()`` executes; the forward stops there."""
    seen: list[Tensor] = []

    def keep(value: Tensor) -> None:
        seen.append(value.detach())
        raise _Stop

    handle = (module.register_forward_pre_hook(lambda _m, args: keep(args[0])) if inputs
              else module.register_forward_hook(lambda _m, _a, out: keep(out)))  # fmt: skip
    try:
        run()
    except _Stop:
        pass
    finally:
        handle.remove()
    return seen[0]


def _ann_only(calibrated: fx.GraphModule) -> fx.GraphModule:
    model = copy.deepcopy(calibrated).eval()
    for name in calibrated.meta[OBSERVERS_KEY].values():
        model.add_submodule(name, nn.Identity())
    return model


class _SiteFit:
    """The candidates' statistics at one site: ``Σ y·n``, ``Σ n²`` per (m, f, channel) and ``Σ y²`` per channel."""

    def __init__(self, theta: Tensor, config: ConvertConfig, steps: int) -> None:
        self.theta, self.config, self.steps = theta, config, steps
        self.multipliers = torch.tensor(MULTIPLIERS, dtype=torch.float32, device=theta.device)
        self.fractions = torch.tensor(FRACTIONS, dtype=torch.float32, device=theta.device) / steps
        shape = (len(MULTIPLIERS), len(FRACTIONS), theta.numel())
        self.yn, self.nn = torch.zeros(shape, dtype=torch.float64), torch.zeros(shape, dtype=torch.float64)
        self.yy = torch.zeros(theta.numel(), dtype=torch.float64)
        self.generator = torch.Generator().manual_seed(0)
        self.positions: Tensor | None = None
        self.sample_dims = 1  # dimensions of one sample's activation ([C] or [C, H, W])

    def _subsample(self, current: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """``[T, n, C, P]`` currents and ``[n, C, P]`` activations at (at most) ``POSITIONS`` positions."""
        current = current.reshape(*current.shape[:3], -1)
        target = target.reshape(*target.shape[:2], -1)
        if current.shape[-1] > POSITIONS:
            if self.positions is None:
                self.positions = torch.randperm(current.shape[-1], generator=self.generator)[:POSITIONS].to(current.device)
            current, target = current[..., self.positions], target[..., self.positions]
        return current, target

    def add(self, current: Tensor, target: Tensor) -> None:
        """Simulate every candidate on ``current`` ``[T, n, C, ...]`` (without the layer's shift) against ``target``."""
        self.sample_dims = current.dim() - 2
        current, target = self._subsample(current, target)
        channels = self.theta.numel()
        per_channel = (lambda z: z.transpose(-3, -2).reshape(*z.shape[:-3], z.shape[-2], -1).sum(-1)) if channels > 1 else (
            lambda z: z.reshape(*z.shape[:-3], -1).sum(-1, keepdim=True))  # fmt: skip
        self.yy += per_channel(target.double() ** 2).cpu()
        fractions = self.fractions.reshape(-1, 1, 1, 1)
        for index, multiplier in enumerate(self.multipliers):
            th = (multiplier * self.theta).reshape(-1, 1)  # [C, 1] against [.., n, C, P]
            counts = self._counts(current, th, fractions * th)
            self.yn[index] += per_channel((counts * target).double() / self.steps).cpu()
            self.nn[index] += per_channel((counts.double() / self.steps) ** 2).cpu()

    def _counts(self, current: Tensor, th: Tensor, bias: Tensor) -> Tensor:
        """Spike counts after T steps ``[F, n, C, P]`` of the target's neuron, for every bias ``[F, 1, C, 1]``."""
        rules, gamma = self.config.target, self.config.max_spikes
        v = torch.zeros((bias.shape[0], *current.shape[1:]), dtype=current.dtype, device=current.device)
        count = torch.zeros_like(v)
        for step in range(current.shape[0]):
            v = v + current[step] + bias
            spikes = torch.clamp(torch.floor(v / th), 0, gamma)
            v = v - spikes * th if self.config.reset is Reset.SUBTRACT else v * (1.0 - spikes)
            if rules is not None and rules.membrane_floor is not None:
                v = torch.clamp(v, min=-rules.membrane_floor * th)
            count += spikes
        return count

    def best(self) -> tuple[Tensor, Tensor, Tensor]:
        """Per channel: θ', the total bias per step and the spike value of the candidate with the least squared error."""
        yn, nn_, yy = self.yn, self.nn, self.yy
        error = yy - torch.where(nn_ > 0, yn**2 / nn_.clamp_min(1e-300), torch.zeros_like(yn))
        flat = error.reshape(-1, error.shape[-1])
        default = MULTIPLIERS.index(1.0) * len(FRACTIONS) + int(torch.argmin((self.fractions.cpu() - self.config.start_shift).abs()))
        choice = torch.argmin(flat, dim=0)
        columns = torch.arange(flat.shape[1])
        choice = torch.where(flat[choice, columns] < flat[default], choice, torch.full_like(choice, default))  # ties keep θ
        m, f = choice // len(FRACTIONS), choice % len(FRACTIONS)
        theta = self.multipliers.cpu()[m] * self.theta.cpu()
        value = (yn / nn_.clamp_min(1e-300)).reshape(-1, flat.shape[1])[choice, columns].float()
        fired = nn_.reshape(-1, flat.shape[1])[choice, columns] > 0
        return theta, self.fractions.cpu()[f] * theta, torch.where(fired & (value > 0), value, theta)


def _with_plan(calibrated: fx.GraphModule, plan) -> fx.GraphModule:
    gm = copy.copy(calibrated)
    gm.meta = dict(calibrated.meta)
    gm.meta[PLAN_KEY] = plan
    return gm


def _measurement_network(calibrated: fx.GraphModule, plan, config: ConvertConfig, device: torch.device) -> SpikingNetwork:
    snn = convert(_with_plan(calibrated, plan), replace(config, time_chunk=None)).to(device).eval()
    if config.target is not None:
        unfold_thresholds_(snn.body, plan.thresholds, plan.corrections, config.target)
    return snn


def _fit_site(ann: fx.GraphModule, snn: SpikingNetwork, site: str, theta: Tensor, samples: _Samples, steps: int,
              convert_config: ConvertConfig, memory: MemoryBudget) -> _SiteFit:  # fmt: skip
    """Every candidate's statistics at ``site`` over the samples, in batches planned for ``memory``."""
    shift = convert_config.start_shift

    def measure(x: Tensor, fit: _SiteFit) -> None:
        target = _seen_by(ann.get_submodule(site), lambda: ann(x), inputs=False)
        current = _seen_by(snn.body.get_submodule(site), lambda: snn(x, steps), inputs=True)
        if current.shape[0] == x.shape[0]:  # a static input: the same current at every step
            current = current.expand(steps, *current.shape)
        else:
            current = current.reshape(steps, x.shape[0], *current.shape[1:])
        view = theta.reshape(-1, *([1] * (current.dim() - 3))) if theta.numel() > 1 else theta
        fit.add(current - shift * view, target)  # the layer's start shift is one of the candidates' biases

    with torch.no_grad():
        room, source = resolve_budget(memory, samples.example.device)
        cost = measure_batch_cost(lambda x: measure(x, _SiteFit(theta, convert_config, steps)), samples.example)
        size = plan_batch(cost, wanted=samples.max_samples, room=min(room, WORKING_SET), source=source,
                          what=f"the hard-reset fit at {site} ({steps} steps)")  # fmt: skip
        fit = _SiteFit(theta, convert_config, steps)
        for x in samples.batches(size):
            measure(x, fit)
    return fit


def fit_hard_reset(calibrated: fx.GraphModule, batches: Iterable[Any], config: CorrectionConfig, convert_config: ConvertConfig, *,
                   memory: MemoryBudget | None = None) -> fx.GraphModule:  # fmt: skip
    """Fit every site's θ, bias and spike value for ``convert_config``'s neuron at ``config.timesteps`` (see the module
    docstring); return a calibrated graph whose plan carries them.

    Args:
        calibrated: Output of :func:`spikeconv.calibration.calibrate` (left untouched).
        batches: Calibration inputs; the first ``config.max_samples`` are used, read once per site.
        config: The correction settings (``Correction.HARD_RESET``, T, samples).
        convert_config: The target's neuron settings.
        memory: The memory budget (default: :class:`~spikeconv.runtime.memory.MemoryBudget`'s).

    Raises:
        CalibrationError: No calibration data, or a graph calibrate() did not make.
        ConfigError: Not even one sample fits the memory budget.
    """
    plan = plan_of(calibrated)
    if plan is None:
        raise CalibrationError("the hard-reset fit needs a graph from calibrate()")
    samples = _Samples(batches, config.max_samples)
    device = samples.example.device
    ann = _ann_only(calibrated).to(device)
    for site in plan.sites:
        snn = _measurement_network(calibrated, plan, convert_config, device)
        theta = torch.tensor(plan.thresholds[site], dtype=torch.float32, device=device)
        fit = _fit_site(ann, snn, site, theta, samples, config.timesteps, convert_config, memory or MemoryBudget())
        new_theta, bias, value = fit.best()
        shape = [new_theta.numel(), *([1] * (fit.sample_dims - 1))] if new_theta.numel() > 1 else []
        extra = (bias - convert_config.start_shift * new_theta).reshape(shape)
        record = {**plan.corrections.get(site, {}), "bias": extra.flatten().tolist(), "bias_shape": list(extra.shape),
                  "spike_value": value.tolist(), "spike_value_shape": [value.numel()]}  # fmt: skip
        plan = replace(plan, thresholds={**plan.thresholds, site: new_theta.tolist()}, corrections={**plan.corrections, site: record})
    plan = replace(plan, extra={**plan.extra, "correction": config.to_dict()})
    return _with_plan(copy.deepcopy(calibrated), plan)
