"""Timestep–accuracy curves: the accuracy of a spiking network after every t = 1..T steps.

A converted SNN approaches its ANN's accuracy as it integrates more steps, so the honest way to
report it is the whole curve, not one T. One simulation of T steps per batch yields every point:
the readout layer does not spike, it accumulates, so the prediction after t steps is the argmax
of the cumulative sum of the readout current up to t.
"""

from __future__ import annotations

import json
import logging
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

import torch
from torch import Tensor, nn

from spikeconv.errors import ConfigError, DataError
from spikeconv.evaluation.batches import check_batch_size, evaluating, iter_batches
from spikeconv.evaluation.memory import (
    CURVE_BYTES_PER_STEP,
    ChunkRequest,
    MemoryBudget,
    SimulationFootprint,
    SimulationPlan,
    check_curve_memory,
    measure_footprint,
    plan_simulation,
    resolve_budget,
    time_chunk_set,
)
from spikeconv.evaluation.scoring import ann_correct, check_labels, consistent_classes, correct_per_step
from spikeconv.neurons import SpikingNetwork
from spikeconv.runtime.device import Precision, autocast
from spikeconv.runtime.distributed import all_reduce_sum
from spikeconv.runtime.memory import stage

__all__ = ["CurveResult", "ann_accuracy", "as_curve_list", "timestep_accuracy_curve"]

logger = logging.getLogger("spikeconv")

# Slack for best_within: accuracies are ratios of counts, so two mathematically equal
# percentages may differ in the last bit after subtraction.
_TOLERANCE = 1e-9


def _check_timesteps(timesteps: int) -> int:
    if isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1:
        raise ConfigError(f"timesteps must be >= 1, got {timesteps!r}")
    return timesteps


def _check_percent(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a percentage in [0, 100], got {value!r}")
    value = float(value)
    if not 0.0 <= value <= 100.0:  # also rejects NaN
        raise ConfigError(f"{name} must be a percentage in [0, 100], got {value!r}")
    return value


def _frozen_json(extra: Mapping[str, Any]) -> types.MappingProxyType:
    """A read-only, JSON-normalised copy of ``extra`` (tuples become lists, keys strings)."""
    try:
        plain = json.loads(json.dumps(dict(extra), allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"CurveResult.extra must be JSON-serialisable: {err}") from None
    return types.MappingProxyType(plain)


@dataclass(frozen=True)
class CurveResult:
    """Accuracy (percent) of one network at each recorded timestep, with its ANN reference.

    ``extra`` holds free-form JSON facts (model name, threshold plan, ...). It is stored as a
    read-only, JSON-normalised copy so the result stays immutable and round-trips exactly through
    :meth:`to_dict` / :meth:`from_dict` (and the JSON files of ``report_io``).

    Attributes:
        timesteps: Strictly increasing step counts, each >= 1 (``1..T`` from a simulation).
        accuracy: Accuracy in percent at each entry of ``timesteps``.
        ann_accuracy: The source ANN's accuracy in percent on the same samples, if measured.
        num_samples: Number of samples scored.
        label: Name of the curve in tables and plots.
        extra: Read-only JSON-serialisable metadata.
    """

    timesteps: tuple[int, ...]
    accuracy: tuple[float, ...]
    ann_accuracy: float | None
    num_samples: int
    label: str = "snn"
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        steps = tuple(self.timesteps)
        if not steps or any(isinstance(t, bool) or not isinstance(t, int) for t in steps):
            raise ConfigError(f"timesteps must be a non-empty sequence of ints, got {steps!r}")
        if steps[0] < 1 or any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
            raise ConfigError(f"timesteps must be >= 1 and strictly increasing, got {steps!r}")
        acc = tuple(_check_percent("accuracy", a) for a in self.accuracy)
        if len(acc) != len(steps):
            raise ConfigError(
                f"accuracy has {len(acc)} values but timesteps has {len(steps)}; give one each"
            )
        ann = (
            None if self.ann_accuracy is None else _check_percent("ann_accuracy", self.ann_accuracy)
        )
        n = self.num_samples
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"num_samples must be an integer >= 1, got {n!r}")
        if not isinstance(self.label, str) or not self.label:
            raise ConfigError(f"label must be a non-empty string, got {self.label!r}")
        object.__setattr__(self, "timesteps", steps)
        object.__setattr__(self, "accuracy", acc)
        object.__setattr__(self, "ann_accuracy", ann)
        object.__setattr__(self, "extra", _frozen_json(self.extra))

    def __reduce__(self) -> tuple[Any, ...]:
        # MappingProxyType cannot be pickled; rebuild through __init__ (pickle, copy, deepcopy).
        fields = (self.timesteps, self.accuracy, self.ann_accuracy, self.num_samples, self.label)
        return (type(self), (*fields, dict(self.extra)))

    @property
    def max_timesteps(self) -> int:
        """The largest recorded timestep."""
        return self.timesteps[-1]

    def accuracy_at(self, t: int) -> float:
        """Accuracy in percent after exactly ``t`` steps.

        Raises:
            ConfigError: ``t`` is not one of the recorded timesteps.
        """
        try:
            return self.accuracy[self.timesteps.index(t)]
        except ValueError:
            raise ConfigError(
                f"timestep {t!r} was not recorded for curve {self.label!r}; recorded "
                f"{self.timesteps[0]}..{self.max_timesteps} ({len(self.timesteps)} points)"
            ) from None

    def best_within(self, points: float) -> int | None:
        """The smallest timestep whose accuracy is at most ``points`` below the ANN's.

        This is the latency needed to match the ANN to within a tolerance, e.g.
        ``best_within(1.0)`` is the first T within one percentage point. Returns ``None`` if no
        recorded timestep gets that close.

        Raises:
            ConfigError: ``points`` is negative or NaN, or the curve has no ANN accuracy.
        """
        if isinstance(points, bool) or not isinstance(points, (int, float)) or not points >= 0:
            raise ConfigError(f"points must be a number >= 0, got {points!r}")
        if self.ann_accuracy is None:
            raise ConfigError(
                f"curve {self.label!r} has no ANN accuracy; pass ann= to timestep_accuracy_curve"
            )
        floor = self.ann_accuracy - float(points) - _TOLERANCE
        return next(
            (t for t, a in zip(self.timesteps, self.accuracy, strict=True) if a >= floor), None
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: plain lists and numbers, with ``extra`` under the key ``"meta"``."""
        return {
            "label": self.label,
            "timesteps": list(self.timesteps),
            "accuracy": list(self.accuracy),
            "ann_accuracy": self.ann_accuracy,
            "num_samples": self.num_samples,
            "meta": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild a result from :meth:`to_dict` output (``label`` and ``meta`` are optional).

        Raises:
            DataError: A required key is missing or holds the wrong kind of value.
        """
        if not isinstance(data, Mapping):
            raise DataError(f"a curve must be a JSON object, got {type(data).__name__}")
        missing = [
            k for k in ("timesteps", "accuracy", "ann_accuracy", "num_samples") if k not in data
        ]
        if missing:
            raise DataError(f"curve is missing the key(s) {', '.join(missing)}")
        if not isinstance(data["timesteps"], list) or not isinstance(data["accuracy"], list):
            raise DataError("curve keys 'timesteps' and 'accuracy' must be lists")
        meta = data.get("meta", {})
        if not isinstance(meta, Mapping):
            raise DataError(f"curve key 'meta' must be an object, got {type(meta).__name__}")
        try:
            return cls(
                timesteps=tuple(data["timesteps"]),
                accuracy=tuple(data["accuracy"]),
                ann_accuracy=data["ann_accuracy"],
                num_samples=data["num_samples"],
                label=data.get("label", "snn"),
                extra=meta,
            )
        except ConfigError as err:
            raise DataError(f"invalid curve: {err}") from None


def as_curve_list(results: CurveResult | Iterable[CurveResult]) -> list[CurveResult]:
    """Accept one result or several; return a non-empty list of :class:`CurveResult`.

    Raises:
        ConfigError: Nothing was given, or an item is not a :class:`CurveResult`.
    """
    items = [results] if isinstance(results, CurveResult) else list(results)
    if not items:
        raise ConfigError("no curves given; pass at least one CurveResult")
    for item in items:
        if not isinstance(item, CurveResult):
            raise ConfigError(f"expected CurveResult objects, got {type(item).__name__}")
    return items


def timestep_accuracy_curve(
    snn: nn.Module,
    data: Any,
    *,
    timesteps: int,
    ann: nn.Module | None = None,
    batch_size: int = 256,
    progress: bool = True,
    label: str = "snn",
    device: torch.device | str = "cpu",
    memory: MemoryBudget | None = None,
    precision: str | Precision = Precision.FP32,
    shard: bool = False,
) -> CurveResult:
    """Measure the SNN's accuracy after every t = 1..``timesteps`` steps in one simulation.

    Each batch is simulated once for ``timesteps`` steps; ``snn(x, timesteps)`` must return the
    readout current ``[T, N, K]``. The prediction after t steps is the argmax over K of the
    cumulative readout (ties go to the lowest class index, as with ``torch.argmax``). When
    ``ann`` is given, its accuracy is measured on the same batches in the same pass.

    Runs under ``torch.inference_mode()`` with both models in eval mode; every submodule's
    training flag is restored afterwards. The models are not moved: they must already live on
    ``device``; only the batches are moved there.

    Memory is planned before anything is allocated (:mod:`spikeconv.evaluation.memory`): a T
    whose per-step curve alone exceeds the budget is refused at once. A
    :class:`~spikeconv.neurons.SpikingNetwork` is measured on one sample of the first batch, and
    if its whole-T simulation would not fit it is simulated in the largest time chunks that do
    (the same numbers); a ``time_chunk`` already set on it is kept, and refused if it does not
    fit. Any other module is run as it is, once per batch.

    Args:
        snn: Spiking network called as ``snn(x, num_steps)``.
        data: A torch ``Dataset`` of ``(x, y)`` samples (batched sequentially here) or any
            iterable of ``(x, y)`` batches, such as a ``DataLoader``.
        timesteps: Number of steps T to simulate (>= 1).
        ann: Optional reference ANN mapping ``[N, ...]`` to ``[N, K]``.
        batch_size: Batch size when ``data`` is a ``Dataset``.
        progress: Show a tqdm bar over batches on stderr.
        label: Name of the curve.
        device: Where the batches are sent.
        memory: The memory budget (default: half of the available memory, or
            ``SPIKECONV_MEMORY_BUDGET``) and what the caller keeps per step besides the curve.
        precision: ``32`` (default), ``bf16`` or ``16``: autocast of the conv/linear layers.
        shard: Under torchrun, simulate only this rank's batches (batch ``i`` on rank ``i mod W``)
            and all-reduce the counts: every rank returns exactly the single-process curve.

    Raises:
        ConfigError: ``timesteps`` or ``batch_size`` is not an integer >= 1, ``label`` is
            empty, or the curve does not fit the memory budget even in chunks of one step (the
            message says how much it needs and what would fit).
        DataError: ``data`` is empty or malformed, or a model's output has the wrong shape or
            holds NaN/inf.
    """
    _check_timesteps(timesteps)
    check_batch_size(batch_size)
    if not isinstance(label, str) or not label:
        raise ConfigError(f"label must be a non-empty string, got {label!r}")
    device = torch.device(device)
    memory = memory if memory is not None else MemoryBudget()
    check_curve_memory(timesteps, budget=memory)
    correct = torch.zeros(timesteps, dtype=torch.int64)
    ann_hits, total, num_classes, plan = 0, 0, None, None
    batches = iter_batches(
        data, batch_size=batch_size, device=device, progress=progress, desc=label, shard=shard
    )
    with stage(f"simulate {label} for {timesteps} steps"), evaluating(snn, ann), torch.inference_mode():
        for whole_x, whole_y in batches:
            plan = plan or _MemoryPlan.measure(snn, whole_x, memory)
            simulation = plan.simulation(snn, timesteps, int(whole_x.shape[0]))
            for start in range(0, whole_x.shape[0], simulation.batch):  # a batch too large for the budget runs in parts
                x, y = whole_x[start : start + simulation.batch], whole_y[start : start + simulation.batch]
                with time_chunk_set(snn, simulation.chunk), autocast(device, precision):
                    out = snn(x, timesteps)
                hits = correct_per_step(out, y, timesteps)
                num_classes = consistent_classes(num_classes, out.shape[2])
                check_labels(y, num_classes)
                del out  # the readout [T, N, K] is the largest tensor; free it before the next batch
                correct += hits
                if ann is not None:
                    with autocast(device, precision):
                        ann_hits += ann_correct(ann, x, y, num_classes)
                total += y.shape[0]
    if shard:  # integer counts: their sum over ranks is exact, so every rank holds the single-process curve
        totals = all_reduce_sum(torch.tensor([ann_hits, total], dtype=torch.int64))
        correct = all_reduce_sum(correct)
        ann_hits, total = (int(v) for v in totals.tolist())
    if total == 0:
        raise DataError("the evaluation data holds no samples; pass a non-empty data set")
    result = CurveResult(
        timesteps=tuple(range(1, timesteps + 1)),
        accuracy=tuple(100.0 * c / total for c in correct.tolist()),
        ann_accuracy=None if ann is None else 100.0 * ann_hits / total,
        num_samples=total,
        label=label,
    )
    logger.info(
        "%s: %.2f%% after %d steps on %d samples (ANN %s)",
        label,
        result.accuracy[-1],
        timesteps,
        total,
        "n/a" if result.ann_accuracy is None else f"{result.ann_accuracy:.2f}%",
    )
    return result


@dataclass(frozen=True)
class _MemoryPlan:
    """The network's footprint and the budget, measured once per curve on its first batch.

    Only a SpikingNetwork is measured (and chunked); any other module gets no footprint and runs as it is.
    """

    footprint: SimulationFootprint | None
    limit: int
    source: str
    shared_per_step: int  # host bytes per step of the curve, when the simulation runs in host memory too

    @classmethod
    def measure(cls, snn: nn.Module, x: Tensor, memory: MemoryBudget) -> _MemoryPlan:
        limit, source = resolve_budget(memory, x.device)
        shared = 0 if x.device.type == "cuda" else CURVE_BYTES_PER_STEP + memory.extra_per_step
        footprint = measure_footprint(snn, x[:1]) if isinstance(snn, SpikingNetwork) else None
        return cls(footprint, limit, source, shared)

    def simulation(self, snn: nn.Module, timesteps: int, batch: int) -> SimulationPlan:
        """The batch and time chunk that fit a batch of ``batch`` samples (chunk None: all steps at once); see
        :func:`plan_simulation`."""
        if self.footprint is None or not isinstance(snn, SpikingNetwork):
            return SimulationPlan(batch=batch, chunk=None)
        request = ChunkRequest(timesteps=timesteps, batch=batch, limit=self.limit, source=self.source,
                               shared_per_step=self.shared_per_step, explicit=snn.time_chunk)  # fmt: skip
        return plan_simulation(self.footprint, request)


def ann_accuracy(
    ann: nn.Module,
    data: Any,
    *,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    progress: bool = True,
    shard: bool = False,
) -> float:
    """Accuracy in percent of an ordinary classifier ``[N, ...] -> [N, K]`` on ``data``.

    Same data handling, eval-mode scoping, inference mode and torchrun sharding (``shard``) as
    :func:`timestep_accuracy_curve`; ties go to the lowest class index.

    Raises:
        ConfigError: ``batch_size`` is not an integer >= 1.
        DataError: ``data`` is empty or malformed, or the output is not ``[N, K]``.
    """
    device = torch.device(device)
    hits, total = 0, 0
    batches = iter_batches(
        data, batch_size=batch_size, device=device, progress=progress, desc="ann", shard=shard
    )
    with evaluating(ann), torch.inference_mode():
        for x, y in batches:
            hits += ann_correct(ann, x, y, None)
            total += y.shape[0]
    if shard:
        hits, total = (int(v) for v in all_reduce_sum(torch.tensor([hits, total], dtype=torch.int64)).tolist())
    if total == 0:
        raise DataError("the evaluation data holds no samples; pass a non-empty data set")
    return 100.0 * hits / total
