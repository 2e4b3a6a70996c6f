"""Where and how a command computes: the device, the numeric precision, and torchrun's process group.

Low-level leaves (torch and :mod:`spikeconv.errors` only), so every part that computes can use them.
"""

from spikeconv.runtime.device import DEVICE_CHOICES, PRECISIONS, BatchesOn, Precision, autocast, check_precision, resolve_device
from spikeconv.runtime.distributed import (
    DistributedContext,
    all_gather_objects,
    all_reduce_sum,
    barrier,
    distributed,
    is_main_process,
    launched_by_torchrun,
    process_group,
    rank,
    world_size,
)

__all__ = [
    "DEVICE_CHOICES",
    "PRECISIONS",
    "BatchesOn",
    "DistributedContext",
    "Precision",
    "all_gather_objects",
    "all_reduce_sum",
    "autocast",
    "barrier",
    "check_precision",
    "distributed",
    "is_main_process",
    "launched_by_torchrun",
    "process_group",
    "rank",
    "resolve_device",
    "world_size",
]
