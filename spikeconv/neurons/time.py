"""Graph-level time helpers that converted graphs call as plain functions."""

from __future__ import annotations

from torch import Tensor


def repeat_over_time(x: Tensor, num_steps: int) -> Tensor:
    """Turn a time-invariant ``[N, ...]`` tensor into the time-flattened ``[K·N, ...]`` form.

    Converted graphs compute everything that does not depend on time (e.g. the first conv of a
    direct-encoded image) once, and call this where such a value meets per-step values.
    """
    return x.unsqueeze(0).expand(num_steps, *x.shape).reshape(num_steps * x.shape[0], *x.shape[1:])
