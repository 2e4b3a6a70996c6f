"""Memory planning for every stage that touches activations: the budget, a measured cost per sample, the batch that fits.

A stage (calibration, a correction, auto's screening and simulations, a fine-tune, a curve) never asks
"how many samples do I have?" but "how many samples fit?": it measures what one and two samples cost
(:func:`measure_batch_cost`: every tensor its operations allocate, counted by a ``TorchDispatchMode``,
which is an upper bound of the peak because temporaries freed in between are counted too), then runs in
batches of the largest size the budget allows (:func:`plan_batch`). Statistics that outlive a batch have
fixed sizes, so a stage's peak does not grow with the number of samples.

The budget (:func:`resolve_budget`) is what the process may hold on the device:

* ``SPIKECONV_MEMORY_BUDGET`` (bytes, or a size such as ``4G``, ``512M``) caps the process: on the CPU its
  resident memory (what ``/usr/bin/time`` reports as the maximum resident set size), on a CUDA device the
  memory torch has allocated there. A stage may use the cap minus what the process holds when it starts.
* Without it, a stage may use half of the memory available at that moment (``MemAvailable`` of
  ``/proc/meminfo``, 4 GiB where that cannot be read; a CUDA device's free memory).
* :class:`MemoryBudget` ``limit`` gives a stage's room in bytes directly (the Python API).

When not even one sample fits, the stage refuses with one line saying what it needs and what would fit.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode  # the base of torch's own FlopCounterMode

from spikeconv.errors import ConfigError

__all__ = [
    "BUDGET_ENV",
    "WORKING_SET",
    "AllocationCounter",
    "BatchCost",
    "MemoryBudget",
    "allocated_bytes",
    "current_rss",
    "measure_batch_cost",
    "peak_rss",
    "plan_batch",
    "rebatch",
    "release_free_memory",
    "resolve_budget",
    "size_text",
    "stage",
]

BUDGET_ENV = "SPIKECONV_MEMORY_BUDGET"
FALLBACK_AVAILABLE = 4 << 30
BUDGET_FRACTION = 0.5
RESERVE = 64 << 20
"""Fixed allowance for what no measurement counts: the input batch in flight, Python objects, allocator slack."""
WORKING_SET = 1 << 30
"""The most a conversion stage's batches take even when more memory is free (calibration, corrections, auto's
screening and simulations): beyond it larger batches are no faster on a CPU (docs/benchmarks.md, "Memory"),
and the peak of a whole conversion stays a few GiB on any machine."""

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
log = logging.getLogger("spikeconv")


def size_text(num_bytes: float) -> str:
    """``1.5 GiB``, ``300 MiB``, ``1010 MiB``, ``12 KiB`` or ``512 B`` (never ``1e+03``: logs are parsed)."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if num_bytes >= scale:
            value = num_bytes / scale
            return f"{value:.3g} {unit}" if value < 1000 else f"{value:.0f} {unit}"
    return f"{int(num_bytes)} B"


def parse_size(text: str, *, what: str = BUDGET_ENV) -> int:
    """Bytes from ``"2G"``, ``"512M"``, ``"1.5GiB"`` or a plain number.

    Raises:
        ConfigError: Not a positive size.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([kmgt]?)i?b?\s*", text.lower())
    if match is None or float(match.group(1)) <= 0:
        raise ConfigError(f"{what}={text!r} is not a memory size; give bytes or a size such as 2G or 512M")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


# ---------------------------------------------------------------- what the process holds
def _meminfo(key: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _status(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def current_rss() -> int:
    """Resident bytes of this process now (0 where ``/proc`` cannot be read)."""
    return _status("VmRSS") or 0


def peak_rss() -> int:
    """The most resident bytes this process has held so far (what ``/usr/bin/time -v`` reports at exit)."""
    found = _status("VmHWM")
    if found is not None:
        return found
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def host_available() -> int:
    """Bytes the kernel could give this process now (``MemAvailable``; 4 GiB where unknown)."""
    return _meminfo("MemAvailable") or FALLBACK_AVAILABLE


def release_freed_memory() -> None:
    """Hand memory that freed tensors left in the C heap back to the system (glibc ``malloc_trim``), so
    what a stage measures as held is what it holds; a no-op elsewhere."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _device_held(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.memory_allocated(device))
    return current_rss()


def _device_free(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    return host_available()


@dataclass(frozen=True)
class MemoryBudget:
    """What a stage may use: a room in bytes (None: the default) and what the caller keeps per step.

    Attributes:
        limit: Bytes the stage's tensors may take; None: ``SPIKECONV_MEMORY_BUDGET`` minus what the
            process holds, else half of the memory available now.
        extra_per_step: Host bytes per simulated step that the caller keeps besides a curve (the
            per-step tallies of operation counters, for instance).
    """

    limit: int | None = None
    extra_per_step: int = 0

    def __post_init__(self) -> None:
        for name, value in (("limit", self.limit), ("extra_per_step", self.extra_per_step)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ConfigError(f"MemoryBudget.{name} must be a number of bytes >= 0, got {value!r}")


def resolve_budget(budget: MemoryBudget, device: torch.device) -> tuple[int, str]:
    """The bytes a stage may allocate on ``device`` now, and where that figure comes from (for messages)."""
    if budget.limit is not None:
        return budget.limit, "given"
    text = os.environ.get(BUDGET_ENV, "").strip()
    if text:
        cap = parse_size(text)
        held = _device_held(device)
        return max(0, cap - held), f"{BUDGET_ENV}={text}, of which the process already holds {size_text(held)}"
    where = "free GPU memory" if device.type == "cuda" else "available memory"
    return int(_device_free(device) * BUDGET_FRACTION), f"half of the {where}; set {BUDGET_ENV} to change it"


# ---------------------------------------------------------------- measuring a batch
class AllocationCounter(TorchDispatchMode):
    """Adds up the bytes of every tensor an aten op returns in new storage (views and in-place results share an input's)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        known = {_storage(t)[0] for t in _tensors((args, kwargs))}
        for tensor in _tensors(out):
            pointer, size = _storage(tensor)
            if pointer not in known:
                known.add(pointer)
                self.total += size
        return out


def _tensors(value: Any) -> Iterator[Tensor]:
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


def _storage(tensor: Tensor) -> tuple[int, int]:
    try:
        storage = tensor.untyped_storage()
        return storage.data_ptr(), storage.nbytes()
    except (RuntimeError, NotImplementedError):  # sparse or other storage-less layouts
        return id(tensor), tensor.numel() * tensor.element_size()


def allocated_bytes(run: Callable[[], Any]) -> tuple[int, Any]:
    """Bytes of every tensor ``run()`` allocates (an upper bound of its peak), and what it returned."""
    with AllocationCounter() as counter:
        out = run()
    return counter.total, out


@dataclass(frozen=True)
class BatchCost:
    """What one batch of a stage costs: ``fixed + per_sample × N`` bytes, measured on N = 1 and 2."""

    fixed: int
    per_sample: int

    def bytes_for(self, batch: int) -> int:
        return self.fixed + self.per_sample * batch


def measure_batch_cost(run: Callable[[Tensor], Any], sample: Tensor, *, smallest: int = 1) -> BatchCost:
    """Run ``run`` on ``smallest`` copies of the first sample of ``sample``, then on twice as many, and fit
    ``fixed + per_sample × N`` (``smallest = 2`` where a layer needs two samples, as BatchNorm does in training).

    ``run`` must not keep state between calls that the stage would not keep (observers record the
    probe samples otherwise: run the probe on a copy).
    """
    first = sample[:1]
    small, _ = allocated_bytes(lambda: run(first.expand(smallest, *first.shape[1:]).contiguous()))
    large, _ = allocated_bytes(lambda: run(first.expand(2 * smallest, *first.shape[1:]).contiguous()))
    per_sample = max((large - small) // smallest, 1)
    return BatchCost(fixed=max(small - smallest * per_sample, 0), per_sample=per_sample)


def plan_batch(cost: BatchCost, *, wanted: int, room: int, source: str, what: str, held: int = 0) -> int:
    """The largest batch (at most ``wanted``) whose cost, plus ``held`` bytes the stage keeps anyway, fits ``room``.

    Raises:
        ConfigError: Not even one sample fits (the message says what one needs and what would fit).
    """
    free = room - RESERVE - held - cost.fixed
    fits = free // cost.per_sample if free > 0 else 0
    if fits >= 1:
        return int(min(wanted, fits))
    need = RESERVE + held + cost.bytes_for(1)
    raise ConfigError(f"{what} needs {size_text(need)} for one sample ({size_text(cost.per_sample)} per sample, "
                      f"{size_text(cost.fixed + held)} fixed, {size_text(RESERVE)} reserve), more than the memory budget "
                      f"of {size_text(room)} ({source}); raise {BUDGET_ENV} to at least {size_text(need - room)} more, "
                      "or use smaller inputs or a smaller network")  # fmt: skip


def rebatch(batches: Iterable[Any], size: int) -> Iterator[Any]:
    """The same samples in the same order, in batches of at most ``size`` (tensors or ``(x, y, ...)`` tuples)."""
    for batch in batches:
        first = batch[0] if isinstance(batch, (tuple, list)) else batch
        count = first.shape[0] if isinstance(first, Tensor) and first.dim() else 0
        if count <= size:
            yield batch
            continue
        for start in range(0, count, size):
            if isinstance(batch, (tuple, list)):
                yield type(batch)(part[start : start + size] for part in batch)
            else:
                yield batch[start : start + size]


# ---------------------------------------------------------------- logging a stage
class _Sampler(threading.Thread):
    """Reads the resident memory every ``interval`` seconds until stopped; keeps the largest value."""

    def __init__(self, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.interval, self.peak, self._halt = interval, current_rss(), threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self.peak = max(self.peak, current_rss())

    def stop(self) -> int:
        self._halt.set()
        self.join()
        return max(self.peak, current_rss())


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Log a stage's wall time and peak resident memory at INFO (``-v``): the process's peak when the stage
    set a new one (exact), else the largest value sampled every 20 ms while it ran. Either way the stage
    ends by handing its freed memory back to the system (:func:`release_free_memory`)."""
    if not log.isEnabledFor(logging.INFO):
        try:
            yield
        finally:
            release_free_memory()
        return
    before, started, sampler = peak_rss(), time.perf_counter(), _Sampler()
    sampler.start()
    try:
        yield
    finally:
        sampled, after = sampler.stop(), peak_rss()
        peak = after if after > before else sampled
        log.info("stage %s: %.1f s, peak resident memory %s", name, time.perf_counter() - started, size_text(peak))
        release_free_memory()


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc; other C libraries return memory themselves
    except OSError:
        return None


_TRIM = _malloc_trim()


_COLLECT_GROWTH = 256 << 20
_collected_at = [0]  # the resident bytes after the last collection


def release_free_memory() -> None:
    """Collect unreachable networks and hand the C allocator's free pages back to the system.

    A converted network is an ``fx.GraphModule``, a reference cycle (graph <-> module), so with its
    weights and per-batch neuron state it outlives its last use until Python's cycle collector runs,
    which counts Python objects, not bytes; and glibc keeps freed pages for reuse. A search that
    converts candidates in turn therefore grew by what it had finished with: on a MobileNetV2 the
    auto search held 2.73 GiB resident, 1.17 GiB after collecting and trimming, and the planner, which
    sizes batches from the room left under the resident memory, saw that much less room. The cycle
    collection (a fraction of a second) runs once the resident memory has grown by
    :data:`_COLLECT_GROWTH` since the last one; the trim takes milliseconds (a no-op without glibc)."""
    if current_rss() > _collected_at[0] + _COLLECT_GROWTH:
        gc.collect()
        if _TRIM is not None:
            _TRIM(0)
        _collected_at[0] = current_rss()
    elif _TRIM is not None:
        _TRIM(0)
