"""prepare() inserts observers at every activation site; calibrate() runs data and makes the plan.

Before and after ``prepare`` for ``conv -> relu -> fc``::

    conv = self.conv(x); relu = self.relu(conv); fc = self.fc(relu)
    conv = self.conv(x); relu = self.relu(conv); relu_observer = self.relu_observer(relu)
    fc = self.fc(relu_observer)

Each returns a new graph and leaves its input untouched.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, fx
from tqdm import tqdm

from spikeconv._fx import add_submodule, module_of
from spikeconv.calibration.config import CalibrationConfig
from spikeconv.calibration.observers import Observer
from spikeconv.calibration.plan import ThresholdPlan
from spikeconv.errors import CalibrationError, DataError, first_line
from spikeconv.runtime.memory import (
    WORKING_SET,
    MemoryBudget,
    allocated_bytes,
    measure_batch_cost,
    plan_batch,
    resolve_budget,
    stage,
)

STAGE_KEY = "spikeconv_stage"
SITES_KEY = "spikeconv_sites"
OBSERVERS_KEY = "spikeconv_observers"
PLAN_KEY = "spikeconv_plan"
MAX_BATCH = 1 << 20
"""No stage needs a larger batch: it only bounds the plan's arithmetic."""


def _site_nodes(gm: fx.GraphModule) -> dict[str, fx.Node]:
    wanted = set(gm.meta.get(SITES_KEY, ()))
    return {str(n.target): n for n in gm.graph.nodes if n.op == "call_module" and n.target in wanted}


def prepare(ann: fx.GraphModule, config: CalibrationConfig | None = None) -> fx.GraphModule:
    """Return a copy of the canonical ANN graph with an observer after every activation site."""
    if ann.meta.get(STAGE_KEY) != "ann":
        raise CalibrationError("prepare() needs the canonical graph made by ingest_module()")
    config = config or CalibrationConfig()
    gm = copy.deepcopy(ann)
    observers = {}
    rules = {}
    for site, node in _site_nodes(gm).items():
        producer = node.args[0]
        feeder = module_of(gm, producer) if isinstance(producer, fx.Node) else None
        rule = config.rule_for(site, type(feeder) if feeder is not None else None)
        observer = rule.make_observer(module_of(gm, node))
        observer.site = site
        name = add_submodule(gm, f"{site}_observer", observer)
        with gm.graph.inserting_after(node):
            watched = gm.graph.call_module(name, (node,))
        node.replace_all_uses_with(watched, delete_user_cb=lambda user, w=watched: user is not w)
        observers[site] = name
        rules[site] = rule.to_dict()
    gm.recompile()
    gm.meta.update({STAGE_KEY: "prepared", OBSERVERS_KEY: observers, "spikeconv_rules": rules})
    return gm


def _batch_input(batch: Any) -> Tensor:
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    if not isinstance(x, Tensor) or x.dim() < 1:
        raise DataError(f"calibration batches must be tensors [N, ...], got {type(x).__name__}")
    if not torch.isfinite(x).all():
        raise DataError("calibration data contains NaN or Inf values")
    return x


def _run(gm: fx.GraphModule, x: Tensor) -> None:
    try:
        gm(x)
    except (CalibrationError, DataError):
        raise
    except RuntimeError as exc:
        first = first_line(exc, limit=None)
        raise DataError(f"calibration batch of shape {tuple(x.shape)} does not fit the model: {first}") from None


def planned_batch(prepared: fx.GraphModule, x: Tensor, memory: MemoryBudget) -> int:
    """The most samples one calibration forward of ``prepared`` (observers included) may take within ``memory``
    (at most the working set of :data:`~spikeconv.runtime.memory.WORKING_SET`).

    Measured on a copy, so the probe samples are not recorded. The copy sees one sample first: observers allocate
    their statistics on first sight (per-channel histograms: channels x bins), which a probe of one and then two
    samples would otherwise read as a negative cost per sample (a 224x224 ResNet-18 was planned at 1 byte per sample
    and peaked at 6.8 GiB under a 4 GiB budget). Those statistics are counted as held. Raises ConfigError when not
    one fits.
    """
    probe = copy.deepcopy(prepared).eval()
    with torch.no_grad():
        first_sight, _ = allocated_bytes(lambda: _run(probe, x[:1]))
        cost = measure_batch_cost(functools.partial(_run, probe), x[:1])
    probe = None  # freed before the room is read
    room, source = resolve_budget(memory, x.device)
    statistics = max(first_sight - cost.bytes_for(1), 0)
    return plan_batch(cost, wanted=MAX_BATCH, room=min(room, WORKING_SET), source=source, what="calibration",
                      held=statistics)  # fmt: skip


def calibrate(
    prepared: fx.GraphModule,
    batches: Iterable[Any],
    *,
    max_samples: int | None = None,
    progress: bool = False,
    extra: dict | None = None,
    memory: MemoryBudget | None = None,
) -> fx.GraphModule:
    """Run calibration batches through a copy of ``prepared``; return it with its ThresholdPlan.

    A batch larger than ``memory`` allows is run in parts of the planned size (:func:`planned_batch`),
    so the peak does not depend on the batch size or on the number of samples; the observers keep
    fixed-size statistics. Batches that fit run whole, as given.

    Args:
        prepared: Output of :func:`prepare`.
        batches: Tensors ``[N, ...]`` or ``(x, y)`` pairs (a DataLoader works).
        max_samples: Stop after this many samples (the last batch is truncated).
        progress: Show a progress bar.
        extra: JSON-serialisable facts recorded in the plan (data set, seed, ...).
        memory: The budget (default: :class:`~spikeconv.runtime.memory.MemoryBudget`'s).

    Raises:
        ConfigError: Not even one sample fits the memory budget.
    """
    if prepared.meta.get(STAGE_KEY) != "prepared":
        raise CalibrationError("calibrate() needs a graph made by prepare()")
    gm = copy.deepcopy(prepared).eval()
    seen, size = 0, None
    with stage("calibrate"), torch.no_grad():
        for batch in tqdm(batches, desc="calibrate", unit="batch", disable=not progress):
            x = _batch_input(batch)
            if max_samples is not None:
                x = x[: max_samples - seen]
            if x.shape[0] and size is None:
                size = planned_batch(prepared, x, memory or MemoryBudget())
            for start in range(0, x.shape[0], size or 1):
                _run(gm, x[start : start + size])
            seen += x.shape[0]
            if max_samples is not None and seen >= max_samples:
                break
    if seen == 0:
        raise CalibrationError("calibration data is empty: need at least one sample")
    return _with_plan(gm, num_samples=seen, extra=extra or {})


def _with_plan(gm: fx.GraphModule, *, num_samples: int, extra: dict) -> fx.GraphModule:
    thresholds = {
        site: tuple(gm.get_submodule(name).compute().tolist())
        for site, name in gm.meta[OBSERVERS_KEY].items()
    }
    plan = ThresholdPlan(thresholds, rules=gm.meta["spikeconv_rules"], num_samples=num_samples, extra=extra)
    return attach_plan(gm, plan)


def recalibrate(calibrated: fx.GraphModule, config: CalibrationConfig) -> fx.GraphModule:
    """Thresholds under ``config`` from the statistics ``calibrated`` already holds, without data.

    Each site's new rule must watch with an observer of the class that watched it: the histogram
    an MMSE or percentile observer keeps does not depend on the target T or the percentile, only
    its ``compute()`` does. So one pass over the calibration data serves every target T of a
    search (``--method auto``), and the result equals calibrating afresh with ``config``.

    Raises:
        CalibrationError: ``calibrated`` has no plan, or a rule needs another kind of statistic.
    """
    plan = plan_of(calibrated)
    if calibrated.meta.get(STAGE_KEY) != "prepared" or plan is None:
        raise CalibrationError("recalibrate() needs a graph from calibrate()")
    gm = copy.deepcopy(calibrated)
    rules = dict(gm.meta["spikeconv_rules"])
    for site, node in _site_nodes(gm).items():
        producer = node.args[0]
        feeder = module_of(gm, producer) if isinstance(producer, fx.Node) else None
        rule = config.rule_for(site, type(feeder) if feeder is not None else None)
        old = gm.get_submodule(gm.meta[OBSERVERS_KEY][site])
        new = rule.make_observer(module_of(gm, node))
        if type(new) is not type(old) or getattr(new, "per_channel", None) != getattr(old, "per_channel", None):
            raise CalibrationError(f"site {site}: rule {rule.to_dict()['kind']} needs other statistics than "
                                   f"{type(old).__name__} kept; calibrate on data instead")  # fmt: skip
        for name, buffer in old.named_buffers(recurse=False):
            setattr(new, name, buffer.clone())
        new.site = site
        setattr(gm, gm.meta[OBSERVERS_KEY][site], new)
        rules[site] = rule.to_dict()
    gm.meta["spikeconv_rules"] = rules
    return _with_plan(gm, num_samples=plan.num_samples, extra=dict(plan.extra))


def attach_plan(prepared: fx.GraphModule, plan: ThresholdPlan) -> fx.GraphModule:
    """Return a copy of ``prepared`` carrying ``plan`` (e.g. one loaded from JSON)."""
    if prepared.meta.get(STAGE_KEY) != "prepared":
        raise CalibrationError("attach_plan() needs a graph made by prepare()")
    expected = set(prepared.meta[OBSERVERS_KEY])
    if set(plan.sites) != expected:
        missing = sorted(expected - set(plan.sites))
        unknown = sorted(set(plan.sites) - expected)
        raise CalibrationError(
            f"threshold plan does not match the model: missing sites {missing}, unknown {unknown}"
        )
    gm = copy.deepcopy(prepared)
    gm.meta[PLAN_KEY] = plan
    return gm


def sharing_layers(calibrated: fx.GraphModule, plan: ThresholdPlan | None = None, *, rules: dict | None = None) -> fx.GraphModule:
    """A calibrated graph that shares ``calibrated``'s layers, carries ``plan`` (default: its own) and keeps no statistics.

    Its observers are identities: convert(), the corrections and the rate code read only the plan, and
    a per-channel histogram takes ``channels × bins × 8`` bytes per site. Sharing the layers (not copying
    them) lets a search hold one plan per candidate for the cost of the plan alone; the caller must not
    change the shared layers (every stage after calibration copies what it changes).
    """
    if calibrated.meta.get(STAGE_KEY) != "prepared" or plan_of(calibrated) is None:
        raise CalibrationError("sharing_layers() needs a graph from calibrate()")
    gm = fx.GraphModule(calibrated, copy.deepcopy(calibrated.graph), class_name=type(calibrated).__name__)
    for name in calibrated.meta[OBSERVERS_KEY].values():
        gm.add_submodule(name, torch.nn.Identity())  # the observer's own name: replaced
    gm.meta = dict(calibrated.meta)
    gm.meta[PLAN_KEY] = plan if plan is not None else plan_of(calibrated)
    if rules is not None:
        gm.meta["spikeconv_rules"] = rules
    return gm


def plan_of(prepared: fx.GraphModule) -> ThresholdPlan | None:
    """The plan a calibrated graph carries, if any."""
    return prepared.meta.get(PLAN_KEY)


def observer_of(prepared: fx.GraphModule, site: str) -> Observer:
    """The observer module watching ``site``."""
    return prepared.get_submodule(prepared.meta[OBSERVERS_KEY][site])
