"""Resolve ``--device`` and ``--precision`` into a torch device and an autocast context.

``auto`` is CUDA when torch sees a GPU, else the CPU. Under torchrun every process on a machine takes
the GPU of its ``LOCAL_RANK`` when given ``cuda`` or ``auto``, so one command line serves all ranks.
A device that is not there is refused with one line (a :class:`ConfigError`, exit status 2).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Iterator
from enum import StrEnum
from typing import Any

import torch

from spikeconv.errors import ConfigError

__all__ = ["DEVICE_CHOICES", "BatchesOn", "PRECISIONS", "Precision", "autocast", "check_precision", "resolve_device"]

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")
_CUDA = re.compile(r"cuda(?::(\d+))?")


class Precision(StrEnum):
    """Numeric precision of conv/linear layers: float32 (the default), bfloat16 or float16 autocast."""

    FP32 = "32"
    BF16 = "bf16"
    FP16 = "16"


PRECISIONS = tuple(p.value for p in Precision)


def _local_rank() -> int | None:
    value = os.environ.get("LOCAL_RANK")
    return int(value) if value is not None and value.isdigit() and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None


def resolve_device(spec: str | torch.device | None = "cpu") -> torch.device:
    """The torch device ``spec`` names: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (None is ``cpu``).

    Raises:
        ConfigError: An unknown name, CUDA without a usable GPU, or a GPU index beyond those present.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = (spec or "cpu").strip().lower()
    if text == "cpu":
        return torch.device("cpu")
    if text == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        text = "cuda"
    match = _CUDA.fullmatch(text)
    if match is None:
        raise ConfigError(f"--device {spec!r} is not one of auto, cpu, cuda, cuda:N")
    if not torch.cuda.is_available():
        built = "torch was built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise ConfigError(f"--device {spec}: CUDA is not available on this machine ({built}); use --device cpu or auto")
    index = int(match.group(1)) if match.group(1) is not None else _local_rank()
    count = torch.cuda.device_count()
    if index is not None and index >= count:
        raise ConfigError(f"--device {spec}: this machine has {count} CUDA device(s), cuda:0..cuda:{count - 1}")
    return torch.device("cuda", index if index is not None else torch.cuda.current_device())


def check_precision(precision: str | Precision, device: torch.device) -> Precision:
    """The precision, checked against the device: float16 autocast is refused on the CPU.

    Raises:
        ConfigError: An unknown precision, or ``16`` on the CPU (use ``bf16`` there).
    """
    try:
        value = Precision(str(precision.value if isinstance(precision, Precision) else precision))
    except ValueError:
        raise ConfigError(f"--precision {precision!r} is not one of {', '.join(PRECISIONS)}") from None
    if value is Precision.FP16 and device.type != "cuda":
        raise ConfigError("--precision 16 needs a CUDA device (CPU float16 kernels are slow or missing); use --precision bf16 on the CPU")
    return value


@contextlib.contextmanager
def autocast(device: torch.device, precision: str | Precision = Precision.FP32) -> Iterator[None]:
    """Run conv/linear layers in the chosen precision; neuron state and sums stay float32 (or float64)."""
    value = check_precision(precision, device)
    if value is Precision.FP32:
        yield
        return
    dtype = torch.bfloat16 if value is Precision.BF16 else torch.float16
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


class BatchesOn:
    """Re-iterable view of ``batches`` (tensors or ``(x, y, ...)`` tuples) moved to ``device`` one batch at a time.

    Calibration and corrections read their batches as given; this puts them where the graph is without copying
    the whole data set to the device at once.
    """

    def __init__(self, batches: Iterable[Any], device: torch.device) -> None:
        self.batches, self.device = batches, device

    def __len__(self) -> int:
        return len(self.batches)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Any]:
        for batch in self.batches:
            yield _moved(batch, self.device)


def _moved(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, (tuple, list)):
        return type(batch)(_moved(item, device) for item in batch)
    return batch
