"""Training batches that do not fit the memory budget run as micro-batches whose gradients add up to the batch's.

BPTT keeps every step's activations for the backward pass, so one training batch of a deep network at T
steps can need more memory than the machine has. The training step's cost is measured on a copy of the
network (forward and backward of one and of two samples, :func:`~spikeconv.runtime.memory.measure_batch_cost`),
and a batch larger than the budget allows is split: each part's loss is weighted by its share of the batch,
so the accumulated gradient is the batch-mean gradient (up to float rounding), and the optimizer steps once
per batch as before. A batch that fits runs whole, exactly as without this module. BatchNorm layers in
training mode see each micro-batch's statistics rather than the batch's (docs/scaling.md).
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Callable, Iterator

from torch import Tensor, nn

from spikeconv.neurons import SpikingNetwork
from spikeconv.runtime.memory import MemoryBudget, measure_batch_cost, plan_batch, resolve_budget

__all__ = ["micro_batches", "planned_eval_batch", "planned_micro_batch"]

logger = logging.getLogger("spikeconv")


def planned_micro_batch(snn: SpikingNetwork, example: tuple[Tensor, Tensor], timesteps: int, batch_size: int,
                        loss: Callable[[Tensor, Tensor], Tensor], memory: MemoryBudget | None = None) -> int:  # fmt: skip
    """The most samples one forward and backward of ``snn`` at ``timesteps`` may take (at most ``batch_size``).

    Measured on a deep copy in training mode, so neither the network's weights, its gradients nor its
    BatchNorm statistics change.

    Raises:
        ConfigError: Not even one sample fits (the message says what it needs).
    """
    images, labels = example
    probe = copy.deepcopy(snn).train()
    room, source = resolve_budget(memory or MemoryBudget(), images.device)

    def step(x: Tensor) -> None:
        count = x.shape[0]
        loss(probe(x, timesteps), labels[:1].repeat(count)).backward()
        probe.zero_grad(set_to_none=True)

    cost = measure_batch_cost(step, images[:1], smallest=2) if images.shape[0] else None  # BatchNorm needs two
    probe = None
    if cost is None:
        return batch_size
    size = plan_batch(cost, wanted=batch_size, room=room, source=source, what=f"a training step at {timesteps} steps")
    if size < batch_size:
        logger.info("training batches of %d run as micro-batches of %d (%d bytes per sample, budget %d: %s)",
                    batch_size, size, cost.per_sample, room, source)  # fmt: skip
    return size


def micro_batches(trained: nn.Module, images: Tensor, labels: Tensor, size: int) -> Iterator[tuple[Tensor, Tensor, float]]:
    """``(images, labels, weight)`` parts of at most ``size`` samples; ``weight`` is the part's share of the batch.

    Under DistributedDataParallel the gradients are all-reduced once, with the last part.
    """
    count = images.shape[0]
    starts = list(range(0, count, size)) if count > size else [0]
    for index, start in enumerate(starts):
        last = index == len(starts) - 1
        quiet = trained.no_sync() if not last and hasattr(trained, "no_sync") else contextlib.nullcontext()
        with quiet:
            part = slice(start, start + size) if count > size else slice(None)
            weight = 1.0 if count <= size else (min(start + size, count) - start) / count
            yield images[part], labels[part], weight


def planned_eval_batch(snn: SpikingNetwork, images: Tensor, timesteps: int, batch_size: int,
                       memory: MemoryBudget | None = None) -> int:  # fmt: skip
    """The most samples one evaluation forward (no gradients) of ``snn`` at ``timesteps`` may take, at most ``batch_size``."""
    cost = measure_batch_cost(lambda x: snn(x, timesteps), images[:1])
    room, source = resolve_budget(memory or MemoryBudget(), images.device)
    return plan_batch(cost, wanted=batch_size, room=room, source=source, what=f"evaluating at {timesteps} steps")
