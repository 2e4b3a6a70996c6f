"""Low-latency corrections measured against the ANN, layer by layer (SNN calibration).

Li, Deng, Dong, Gong, Gu, "A Free Lunch From ANN: Towards Efficient, Accurate Spiking Neural
Networks Calibration", ICML 2021. After thresholds are set, the SNN's rate at a site still differs
from the ANN's activation at a short T (quantization, and errors passed on from earlier layers).
Going from the first site to the last, simulate the SNN for T steps on calibration data, compare
each site's rate with the ANN's activation, and cancel the mean difference:

    bias      ("light"):    b_l    ← b_l    + mean_{N,H,W}(a_l − r_l)          per channel, added every step
    potential ("advanced"): V_l[0] ← V_l[0] + T · mean_N(a_l − r_l)           per neuron, added once

Each site is corrected with every earlier site already corrected, so later layers see the
improved spikes. The result is a new calibrated graph whose ThresholdPlan records the
corrections (JSON), so the conversion replays exactly without data.
"""

from __future__ import annotations

import copy
import gc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, fx, nn

from spikeconv._names import NamedEnum
from spikeconv.calibration import OBSERVERS_KEY, PLAN_KEY, STAGE_KEY, plan_of
from spikeconv.convert.config import ConvertConfig
from spikeconv.convert.fold import unfold_thresholds_
from spikeconv.convert.rewrite import apply_corrections, convert
from spikeconv.convert.segments import SegmentRunner
from spikeconv.errors import CalibrationError, ConfigError, DataError
from spikeconv.neurons import SpikingNetwork, check_timesteps
from spikeconv.runtime.memory import WORKING_SET, MemoryBudget, measure_batch_cost, plan_batch, resolve_budget, stage

EXACT_BYTES = 64 << 20
"""Differences up to this size are kept and reduced at once (the float32 mean of a single batch); larger
sets are summed in float64 as they arrive."""


class Correction(NamedEnum):
    """Which quantity cancels the rate error at each site."""

    BIAS = "bias"
    POTENTIAL = "potential"
    HARD_RESET = "hard-reset"  # a target's hard-reset neuron: θ, spike value and bias fitted by simulation (hard_reset_fit.py)

    __label__ = "correction"
    __choices_sep__ = " "


@dataclass(frozen=True)
class CorrectionConfig:
    """How to correct: the quantity, the T the SNN will run for, and the calibration budget."""

    kind: Correction = Correction.POTENTIAL
    timesteps: int = 8
    max_samples: int = 512

    def __post_init__(self) -> None:
        if not isinstance(self.kind, Correction):
            raise ConfigError("CorrectionConfig.kind must be a Correction member")
        check_timesteps(self.timesteps)
        check_timesteps(self.max_samples)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "timesteps": self.timesteps, "max_samples": self.max_samples}


class _Samples:
    """The first ``max_samples`` correction samples, iterated once per site in batches of a planned size.

    A re-iterable source (a DataLoader, a list of batches) is read again for every site, so only one
    batch is in memory at a time; it must give the same samples each time (checked). A one-shot
    iterator is read once and its samples kept.
    """

    def __init__(self, batches: Iterable[Any], max_samples: int) -> None:
        self.max_samples = max_samples
        self.source: Iterable[Any] = batches
        if iter(batches) is batches:  # a generator or iterator: it cannot be read twice
            self.source = [torch.cat(list(self._read(batches)))] if max_samples else []
        first = next(self._read(self.source), None)
        if first is None:
            raise CalibrationError("correction data is empty: need at least one sample")
        self.first, self.example = first[:1].clone(), first[:1]

    def _read(self, batches: Iterable[Any]) -> Iterator[Tensor]:
        seen = 0
        for batch in batches:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            if not isinstance(x, Tensor):
                raise DataError(f"correction batches must be tensors [N, ...], got {type(x).__name__}")
            x = x[: self.max_samples - seen].float()
            if x.shape[0]:
                yield x
            seen += x.shape[0]
            if seen >= self.max_samples:
                break

    def batches(self, size: int) -> Iterator[Tensor]:
        """The samples in batches of at most ``size``, in their order."""
        for index, x in enumerate(self._read(self.source)):
            if index == 0 and not torch.equal(x[:1], self.first):
                raise CalibrationError("correction batches changed between passes: give a DataLoader without shuffling, "
                                       "or a list of batches")  # fmt: skip
            for start in range(0, x.shape[0], size):
                yield x[start : start + size]


class _MeanOverSamples:
    """The mean over samples of ``[n, ...]`` differences arriving batch by batch, in bounded memory.

    While the differences seen so far take at most ``EXACT_BYTES`` they are kept, and the mean is
    the one float32 reduction over all of them (as if all samples had run as one batch); beyond that
    they are summed in float64 as they come, and nothing that grows with the samples is kept.
    """

    def __init__(self) -> None:
        self.kept: list[Tensor] = []
        self.kept_bytes, self.total, self.count = 0, None, 0

    def add(self, diff: Tensor) -> None:
        self.count += diff.shape[0]
        if self.total is None and self.kept_bytes + diff.numel() * diff.element_size() <= EXACT_BYTES:
            self.kept.append(diff)
            self.kept_bytes += diff.numel() * diff.element_size()
            return
        if self.total is None:
            self.total = sum(piece.double().sum(dim=0) for piece in self.kept)
            self.kept = []
        self.total = self.total + diff.double().sum(dim=0)

    def all_kept(self) -> Tensor | None:
        """Every difference, when all were kept (the exact path); else None."""
        return torch.cat(self.kept) if self.total is None else None

    def per_neuron(self) -> Tensor:
        """``mean_N(diff)`` for each neuron."""
        kept = self.all_kept()
        return kept.mean(dim=0) if kept is not None else (self.total / self.count).float()

    def per_channel(self) -> Tensor:
        """``mean_{N,H,W}(diff)`` for each channel (dimension 1 of the differences), shaped to broadcast."""
        kept = self.all_kept()
        per_neuron = kept if kept is not None else (self.total / self.count).float()[None]
        dims = [d for d in range(per_neuron.dim()) if d != 1] if per_neuron.dim() > 1 else [0]
        shift = per_neuron.mean(dim=dims)
        return shift.reshape(-1, *([1] * (per_neuron.dim() - 2))) if per_neuron.dim() > 1 else shift


def _ann_only(calibrated: fx.GraphModule) -> fx.GraphModule:
    """A copy of the calibrated ANN whose observers pass values through without recording."""
    model = copy.deepcopy(calibrated).eval()
    for name in calibrated.meta[OBSERVERS_KEY].values():
        model.add_submodule(name, nn.Identity())
    return model


class _Measurement:
    """The ANN and the SNN run site by site over the correction samples, each batch continuing where it paused.

    Both networks are run by a :class:`~spikeconv.convert.segments.SegmentRunner`: for each site every batch
    advances to the site and its activation (ANN) and output (SNN, with every earlier site corrected) are
    compared; the SNN pauses *before* the site's neuron, so that the next site's segment runs it again with
    its new correction. With the frontiers kept, the corrections cost about one forward of each network; once
    they would not fit, every batch starts from the input again (the same values).
    """

    def __init__(self, ann: fx.GraphModule, snn: SpikingNetwork, samples: _Samples, steps: int, memory: MemoryBudget,
                 sites: tuple[str, ...]) -> None:  # fmt: skip
        self.ann, self.snn, self.samples, self.steps = ann, snn, samples, steps
        room, source = resolve_budget(memory, samples.example.device)
        room = min(room, WORKING_SET)
        self.ann_run = SegmentRunner(ann, lambda x: (x,), 0)
        self.snn_run = SegmentRunner(snn.body, lambda x: (snn.encoding.encode(x, steps, 0), steps), 0)
        self.ann_sites = {str(n.target): n for n in ann.graph.nodes if n.op == "call_module"}
        self.snn_sites = {str(n.target): n for n in snn.body.graph.nodes if n.op == "call_module"}
        with torch.no_grad():
            cost = measure_batch_cost(lambda x: (ann(x), snn(x, steps)), samples.example)  # the whole networks: every segment's bound
            stores = [samples.max_samples * run.frontier_bytes(samples.example, [nodes[s] for s in sites])
                      for run, nodes in ((self.ann_run, self.ann_sites), (self.snn_run, self.snn_sites))]  # fmt: skip
        what = f"the correction ({steps} steps)"
        try:  # keep the frontiers if they take at most half the room and leave room for a batch
            if sum(stores) > room // 2:
                raise ConfigError("the frontiers do not fit")
            self.size = plan_batch(cost, wanted=samples.max_samples, room=room - sum(stores), source=source, what=what, held=EXACT_BYTES)
        except ConfigError:  # each batch runs from the input for every site instead (the same values, more work)
            stores = [0, 0]
            self.size = plan_batch(cost, wanted=samples.max_samples, room=room, source=source, what=what, held=EXACT_BYTES)
        self.ann_run.limit, self.snn_run.limit = stores

    def difference(self, site: str) -> _MeanOverSamples:
        """ANN activation minus SNN rate at ``site`` over every sample."""
        mean = _MeanOverSamples()
        with torch.no_grad():
            for batch, x in enumerate(self.samples.batches(self.size)):
                env = self.ann_run.advance(batch, x, self.ann_sites[site])
                target = self.ann_run.value(self.ann_sites[site], env)
                env = self.snn_run.advance(batch, x, self.snn_sites[site])
                out = self.snn_run.value(self.snn_sites[site], env)
                mean.add(target - out.reshape(self.steps, x.shape[0], *out.shape[1:]).mean(0))
                del env, target, out
        return mean


def _record(tensor: Tensor) -> dict[str, Any]:
    return {"values": tensor.flatten().tolist(), "shape": list(tensor.shape)}


def correct(
    calibrated: fx.GraphModule,
    batches: Iterable[Any],
    config: CorrectionConfig | None = None,
    convert_config: ConvertConfig | None = None,
    *,
    memory: MemoryBudget | None = None,
) -> fx.GraphModule:
    """Measure per-site corrections on ``batches`` and return a calibrated graph that carries them.

    Each site's difference is measured in batches planned for ``memory``, each batch continuing from where
    the previous site left it (:class:`_Measurement`), so the peak does not grow with ``config.max_samples``
    and the whole costs about one forward of each network.

    Args:
        calibrated: Output of :func:`spikeconv.calibration.calibrate` (left untouched).
        batches: Calibration inputs (tensors or ``(x, y)`` pairs); ``config.max_samples`` are used.
            Read once per site: a DataLoader must not shuffle (a one-shot iterator is read once and kept).
        config: Which correction, for which T.
        convert_config: The neuron settings the SNN will be converted with (θ/2 start, Γ, ...).
        memory: The memory budget (default: :class:`~spikeconv.runtime.memory.MemoryBudget`'s).

    Raises:
        ConfigError: Not even one sample fits the memory budget.
    """
    plan = plan_of(calibrated)
    if calibrated.meta.get(STAGE_KEY) != "prepared" or plan is None:
        raise CalibrationError("correct() needs a graph from calibrate()")
    config = config or CorrectionConfig()
    convert_config = convert_config or ConvertConfig()
    if config.kind is Correction.HARD_RESET:
        from spikeconv.convert.hard_reset_fit import fit_hard_reset  # it measures with this module's samples

        with stage(f"hard-reset fit at T = {config.timesteps}"):
            return fit_hard_reset(calibrated, batches, config, convert_config, memory=memory)
    with stage(f"{config.kind.value} correction at T = {config.timesteps}"):
        plan = _measured_corrections(calibrated, plan, batches, config, convert_config, memory or MemoryBudget())
    return _with_plan(copy.deepcopy(calibrated), plan)


def _measured_corrections(calibrated: fx.GraphModule, plan, batches: Iterable[Any], config: CorrectionConfig,
                          convert_config: ConvertConfig, memory: MemoryBudget):  # fmt: skip
    """The plan with every site's correction, measured site by site (see :class:`_Measurement`)."""
    samples = _Samples(batches, config.max_samples)
    device = samples.example.device
    snn = convert(calibrated, replace(convert_config, time_chunk=None)).to(device).eval()  # thresholds where the data is
    if convert_config.target is not None:  # measured and corrected in the ANN's units, not the folded ones (convert/fold.py)
        unfold_thresholds_(snn.body, plan.thresholds, plan.corrections, convert_config.target)
    measurement = _Measurement(_ann_only(calibrated).to(device), snn, samples, config.timesteps, memory,
                               plan.sites)  # fmt: skip
    corrections: dict[str, dict[str, Any]] = {s: dict(r) for s, r in plan.corrections.items()}
    for site in plan.sites:
        mean = measurement.difference(site)
        entry = corrections.setdefault(site, {})
        if config.kind is Correction.BIAS:
            shift = mean.per_channel()
            old = torch.tensor(entry["bias"], device=shift.device).reshape(entry["bias_shape"]) if "bias" in entry else 0.0
            new = _record(shift + old)
            entry["bias"], entry["bias_shape"] = new["values"], new["shape"]
        else:
            charge = config.timesteps * mean.per_neuron()
            old = torch.tensor(entry["v_offset"], device=charge.device).reshape(entry["v_offset_shape"]) if "v_offset" in entry else 0.0
            new = _record(charge + old)
            entry["v_offset"], entry["v_offset_shape"] = new["values"], new["shape"]
        apply_corrections(snn.body.get_submodule(site), entry)  # as convert() installs them from the plan
    measurement = snn = None
    gc.collect()  # a converted graph is freed by the cycle collector: its buffers go now
    plan = replace(plan, corrections=corrections, extra={**plan.extra, "correction": config.to_dict()})
    return plan


def _with_plan(calibrated: fx.GraphModule, plan) -> fx.GraphModule:
    gm = copy.copy(calibrated)  # shares modules (read-only here); only meta differs
    gm.meta = dict(calibrated.meta)
    gm.meta[PLAN_KEY] = plan
    return gm
