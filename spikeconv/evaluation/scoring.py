"""Scoring one batch: the SNN's correct predictions after every step, and the ANN's.

The readout ``[T, N, K]`` is scored in blocks of steps, so the float64 running sum and its argmax
never hold more than a block (a few MiB) beside the readout itself, at any T. The running sum is
carried across blocks as the first row of the next block's cumulative sum, so every partial sum
is formed in exactly the order of one cumulative sum over all T steps: the predictions are those
of the whole-T computation.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from spikeconv.errors import DataError

__all__ = ["BLOCK_ELEMENTS", "ann_correct", "check_labels", "consistent_classes", "correct_per_step"]

BLOCK_ELEMENTS = 1 << 20
"""Readout elements (steps × N × K) scored at once."""


def _check_readout(out: Any, timesteps: int, num: int) -> Tensor:
    if not isinstance(out, Tensor):
        raise DataError(f"the SNN must return a tensor [T, N, K], got {type(out).__name__}")
    if out.dim() != 3 or out.shape[0] != timesteps or out.shape[1] != num or out.shape[2] < 1:
        raise DataError(
            f"the SNN returned shape {tuple(out.shape)}, expected [T, N, K] = "
            f"[{timesteps}, {num}, K]; it must return the readout current at every timestep"
        )
    return out


def correct_per_step(out: Any, y: Tensor, timesteps: int) -> Tensor:
    """Check the SNN output ``[T, N, K]``; return how many of ``y`` it predicts after each step, ``[T]`` int64 on the CPU.

    The prediction after ``t`` steps is the argmax of the readout summed over steps ``1..t``. The
    sum is taken in float64 (float32 on devices without it) so that long simulations do not flip
    near-ties through rounding; its argmax equals that of the running mean. Ties go to the lowest
    class index (``torch.argmax`` returns the first maximum).

    Raises:
        DataError: The output is not ``[T, N, K]`` or holds NaN/inf.
    """
    out = _check_readout(out, timesteps, y.shape[0])
    dtype = torch.float32 if out.device.type == "mps" else torch.float64
    num, classes = out.shape[1], out.shape[2]
    block = max(1, BLOCK_ELEMENTS // (num * classes))
    running = torch.zeros(1, num, classes, dtype=dtype, device=out.device)
    correct = torch.empty(timesteps, dtype=torch.int64)
    for first in range(0, timesteps, block):
        piece = out[first : first + block]
        if not torch.isfinite(piece).all():
            raise DataError("the SNN readout contains NaN or inf; check thresholds and input scaling")
        sums = torch.cat([running, piece.to(dtype)]).cumsum(0)[1:]
        correct[first : first + piece.shape[0]] = (sums.argmax(-1) == y).sum(dim=1).cpu()
        running = sums[-1:]
    return correct


def check_labels(y: Tensor, num_classes: int) -> None:
    """Labels must index the readout's classes."""
    if int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise DataError(
            f"labels must lie in [0, {num_classes - 1}] for a {num_classes}-class readout, got values in [{int(y.min())}, {int(y.max())}]"
        )


def ann_correct(ann: nn.Module, x: Tensor, y: Tensor, num_classes: int | None) -> int:
    """Count the ANN's correct predictions on one batch, checking its output is ``[N, K]``."""
    logits = ann(x)
    k = num_classes if num_classes is not None else "K"
    if (
        not isinstance(logits, Tensor)
        or logits.dim() != 2
        or logits.shape[0] != x.shape[0]
        or (num_classes is not None and logits.shape[1] != num_classes)
    ):
        got = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise DataError(f"the ANN returned {got}, expected [N, K] = [{x.shape[0]}, {k}]")
    check_labels(y, logits.shape[1])
    return int((logits.argmax(-1) == y).sum())


def consistent_classes(known: int | None, got: int) -> int:
    """The readout width must be the same in every batch."""
    if known is not None and got != known:
        raise DataError(f"the SNN readout has {got} classes in one batch but {known} in another")
    return got
