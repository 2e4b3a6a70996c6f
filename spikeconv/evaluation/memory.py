"""How much memory a timestep–accuracy curve needs, and the time chunk that keeps it in a budget.

A curve of ``T`` steps on a batch of ``N`` samples holds three things at once:

* the per-step curve itself (one count per step, then Python numbers for the result, its JSON and
  plot): ``T × CURVE_BYTES_PER_STEP`` bytes whatever the network and batch;
* the readout current ``[T, N, K]`` (float32) that the network returns;
* the network's intermediates for the steps simulated in one body call: ``N × (per_call + k ×
  per_step)`` for a time chunk of ``k`` steps.

``per_call`` and ``per_step`` are measured, not guessed: :func:`measure_footprint` runs the network
on one sample for 1 and for 2 steps and adds up the bytes of every tensor an operation allocates
(a ``TorchDispatchMode`` sees every aten op, also those of plain functions in the graph such as
``repeat_over_time``). That sum is an upper bound of the peak (temporaries freed in between are
counted too), so the plan errs on the safe side. Chunking does not change any result
(:class:`~spikeconv.neurons.SpikingNetwork` carries the state across chunks), so the planner picks
the largest chunk that fits, and refuses with one line saying how much is needed when even one
step, or the readout and curve alone, would not fit.

The budget is the one every stage plans with (:func:`spikeconv.runtime.memory.resolve_budget`): half of
the memory available now, or ``SPIKECONV_MEMORY_BUDGET`` (a cap on the process, bytes or a size such as
``2G``, ``512M``) minus what the process already holds.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from spikeconv.errors import ConfigError
from spikeconv.evaluation.batches import evaluating
from spikeconv.neurons import SpikingNetwork
from spikeconv.neurons.fusion import unfused
from spikeconv.runtime.memory import BUDGET_ENV, RESERVE, MemoryBudget, allocated_bytes, resolve_budget, size_text

__all__ = [
    "BUDGET_ENV",
    "CURVE_BYTES_PER_STEP",
    "MemoryBudget",
    "SimulationFootprint",
    "SimulationPlan",
    "check_curve_memory",
    "measure_simulation",
    "measure_footprint",
    "plan_simulation",
    "plan_time_chunk",
    "probing",
    "resolve_budget",
]

CURVE_BYTES_PER_STEP = 1024
"""Host bytes one step of a curve costs. Measured at T = 10⁶: 112 bytes for the result's Python numbers,
180 more while its JSON is written and 170 while it is plotted; rounded up to leave room for a few
curves held side by side (``curve A B C``)."""
SLACK = RESERVE
"""Fixed allowance for what no term counts: the input batch, the readout blocks being scored, the ANN."""

_PROBING: contextvars.ContextVar[bool] = contextvars.ContextVar("spikeconv_memory_probe", default=False)


def probing() -> bool:
    """True while :func:`measure_footprint` runs a network: operation counters ignore those forwards."""
    return _PROBING.get()


def check_curve_memory(timesteps: int, *, budget: MemoryBudget, per_step: int = CURVE_BYTES_PER_STEP) -> None:
    """Refuse at once a T whose per-step curve alone (and the caller's per-step extras) exceeds the host budget.

    Raises:
        ConfigError: ``timesteps × (per_step + budget.extra_per_step)`` does not fit.
    """
    limit, source = resolve_budget(budget, torch.device("cpu"))
    cost = per_step + budget.extra_per_step
    need = timesteps * cost + SLACK
    if need > limit:
        what = "the per-step accuracy curve and operation counts" if budget.extra_per_step else "the per-step accuracy curve"
        most = max(0, (limit - SLACK) // cost)
        raise ConfigError(f"{timesteps} timesteps need {size_text(need)} for {what} alone (about {size_text(cost)} per "
                          f"step), more than the memory budget of {size_text(limit)} ({source}); use at most {most} "
                          "timesteps")  # fmt: skip


@dataclass(frozen=True)
class SimulationFootprint:
    """Bytes one sample costs in a simulation, measured by :func:`measure_footprint`.

    Attributes:
        per_call: Allocated once per body call whatever its number of steps (layers before the
            first neuron on a direct-encoded input, neuron state).
        per_step: Allocated per simulated step.
        classes: Width ``K`` of the readout ``[T, N, K]``.
    """

    per_call: int
    per_step: int
    classes: int

    def readout_bytes(self, timesteps: int, batch: int) -> int:
        """The float32 readout ``[T, N, K]`` the network returns."""
        return timesteps * batch * self.classes * 4

    def simulation_bytes(self, timesteps: int, batch: int) -> int:
        """A whole ``timesteps`` simulation of ``batch`` samples in one body call, readout included."""
        return batch * (self.per_call + timesteps * self.per_step) + self.readout_bytes(timesteps, batch)


@contextlib.contextmanager
def time_chunk_set(snn: nn.Module, chunk: int | None) -> Iterator[None]:
    """Set a SpikingNetwork's ``time_chunk`` for the block, and restore it after (results do not depend on it)."""
    if not isinstance(snn, SpikingNetwork):
        yield
        return
    saved = snn.time_chunk
    snn.time_chunk = chunk
    try:
        yield
    finally:
        snn.time_chunk = saved


def _allocated(snn: nn.Module, sample: Tensor, steps: int) -> tuple[int, Tensor]:
    return allocated_bytes(lambda: snn(sample, steps))


def measure_footprint(snn: nn.Module, sample: Tensor) -> SimulationFootprint:
    """Run ``snn`` on one sample ``[1, ...]`` for 1 and 2 steps and derive its bytes per call and per step.

    The runs are made in eval mode (every training flag is restored after) under
    ``torch.inference_mode()``, as a curve runs; forward hooks of
    :func:`~spikeconv.evaluation.count_operations` skip them (:func:`probing`). They run unfused
    (:func:`~spikeconv.neurons.fusion.unfused`): counted and recorded runs are, and they need the most memory.
    """
    token = _PROBING.set(True)
    try:
        with evaluating(snn), torch.inference_mode(), time_chunk_set(snn, None), unfused():
            one, out = _allocated(snn, sample, 1)
            two, _ = _allocated(snn, sample, 2)
    finally:
        _PROBING.reset(token)
    per_step = max(two - one, 1)
    classes = int(out.shape[-1]) if isinstance(out, Tensor) and out.dim() >= 1 else 1
    return SimulationFootprint(per_call=max(one - per_step, 0), per_step=per_step, classes=classes)


@dataclass(frozen=True)
class ChunkRequest:
    """One batch to plan: T, N, the budget for the simulation's device, and host bytes that share it."""

    timesteps: int
    batch: int
    limit: int
    source: str
    shared_per_step: int = 0  # curve bytes per step when the simulation runs in host memory too
    explicit: int | None = None  # a time chunk the caller set
    chunkable: bool = True  # a SpikingNetwork (other modules run all T at once)


def plan_time_chunk(footprint: SimulationFootprint, request: ChunkRequest) -> int:
    """The largest number of steps per body call that keeps the simulation within the budget (T: no chunking).

    Raises:
        ConfigError: Not even one step fits next to the readout and the curve, or the explicit
            chunk does not fit, or a module that cannot be chunked does not fit at all.
    """
    t, n = request.timesteps, request.batch
    fixed = footprint.readout_bytes(t, n) + t * request.shared_per_step + n * footprint.per_call + SLACK
    fits = max(0, (request.limit - fixed) // (n * footprint.per_step))
    if request.explicit is not None:
        chunk = min(request.explicit, t)
        if chunk <= fits:
            return chunk
        raise ConfigError(f"a time chunk of {chunk} steps on a batch of {n} needs {size_text(fixed + chunk * n * footprint.per_step)}, "
                          f"more than the memory budget of {size_text(request.limit)} ({request.source}); "
                          f"{_advice(footprint, request, fits)}")  # fmt: skip
    if fits >= t:
        return t
    if fits >= 1 and request.chunkable:
        return int(fits)
    need = fixed + (1 if request.chunkable else t) * n * footprint.per_step
    parts = [f"readout [T, N, K] = [{t}, {n}, {footprint.classes}]: {size_text(footprint.readout_bytes(t, n))}",
             f"network: {size_text(n * footprint.per_call)} + {size_text(n * footprint.per_step)} per step"]  # fmt: skip
    if request.shared_per_step:
        parts.append(f"curve: {size_text(t * request.shared_per_step)}")
    parts.append(f"reserve: {size_text(SLACK)}")
    raise ConfigError(f"simulating {t} steps of a batch of {n} needs at least {size_text(need)} ({', '.join(parts)}), "
                      f"more than the memory budget of {size_text(request.limit)} ({request.source}); "
                      f"{_advice(footprint, request, fits)}")  # fmt: skip


def _advice(footprint: SimulationFootprint, request: ChunkRequest, fits: int) -> str:
    """What would fit: a smaller explicit chunk, a smaller batch, or fewer timesteps."""
    t, n, steps = request.timesteps, request.batch, 1 if request.chunkable else request.timesteps
    if request.explicit is not None and fits >= 1:
        return f"use a time chunk of at most {fits} steps, or leave it unset to choose one automatically"
    room = request.limit - SLACK - t * request.shared_per_step
    per_sample = footprint.readout_bytes(t, 1) + footprint.per_call + steps * footprint.per_step
    batch = max(0, room // per_sample)
    tips = [f"a batch size of at most {batch}" if batch >= 1 else ""]
    room_t = request.limit - SLACK - n * (footprint.per_call + footprint.per_step)
    per_t = footprint.readout_bytes(1, n) + request.shared_per_step + (0 if request.chunkable else n * footprint.per_step)
    most_t = max(0, room_t // per_t)
    tips.append(f"at most {most_t} timesteps with this batch size" if most_t >= 1 else "")
    tips = [tip for tip in tips if tip]
    if not tips:
        return f"raise {BUDGET_ENV} or use a smaller network"
    return "use " + " or ".join(tips)


@dataclass(frozen=True)
class SimulationPlan:
    """How a batch is simulated within the budget: at most ``batch`` samples at a time, ``chunk`` steps per body call."""

    batch: int
    chunk: int | None  # None: all steps in one call


def plan_simulation(footprint: SimulationFootprint, request: ChunkRequest) -> SimulationPlan:
    """The requested batch when one step of it fits (then the largest time chunk), else the largest batch that does.

    A time chunk the caller set (``request.explicit``) is kept with the requested batch, or refused. The result
    does not depend on the plan: samples are independent and state carries across chunks.

    Raises:
        ConfigError: Not even one step of one sample fits (the message says how much it needs).
    """
    t, n = request.timesteps, request.batch
    room = request.limit - SLACK - t * request.shared_per_step
    per_sample = footprint.readout_bytes(t, 1) + footprint.per_call + (1 if request.chunkable else t) * footprint.per_step
    batch = int(min(n, room // per_sample)) if room > 0 else 0
    if 1 <= batch < n and request.explicit is None:  # an explicit chunk is the caller's plan: kept, or refused
        request = replace(request, batch=batch)
    chunk = plan_time_chunk(footprint, request)  # raises with the batch of 1's needs when not even that fits
    return SimulationPlan(batch=request.batch, chunk=None if chunk >= t else chunk)


def measure_simulation(snn: nn.Module, sample: Tensor, timesteps: int, *, wanted: int, memory: MemoryBudget,
                       cap: int | None = None) -> SimulationPlan:  # fmt: skip
    """Measure ``snn`` on one sample and plan batches of up to ``wanted`` samples for ``timesteps`` steps.

    ``cap`` bounds the room below the budget (conversion stages pass ``WORKING_SET``). A module that is
    not a SpikingNetwork is measured as one call of all steps.
    """
    limit, source = resolve_budget(memory, sample.device)
    limit = min(limit, cap) if cap is not None else limit
    if isinstance(snn, SpikingNetwork):
        footprint = measure_footprint(snn, sample[:1])
        request = ChunkRequest(timesteps=timesteps, batch=wanted, limit=limit, source=source, explicit=snn.time_chunk)
    else:
        with evaluating(snn), torch.inference_mode():
            total, out = allocated_bytes(lambda: snn(sample[:1], timesteps))
        classes = int(out.shape[-1]) if isinstance(out, Tensor) and out.dim() else 1
        footprint = SimulationFootprint(per_call=0, per_step=max(1, total // timesteps), classes=classes)
        request = ChunkRequest(timesteps=timesteps, batch=wanted, limit=limit, source=source, chunkable=False)
    return plan_simulation(footprint, request)
