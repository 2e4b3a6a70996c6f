"""Give every module of one exact type another bound ``forward``, keeping its type, weights and state dict.

Why: converted networks route plain layers through faster, bit-identical implementations (average
pools in C++, convolutions in row chunks) while exporters and op counters that look layers up by
type still see ``nn.AvgPool2d`` and ``nn.Conv2d``.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MethodType

from torch import nn


def reroute_forward_(module: nn.Module, kind: type[nn.Module], forward: Callable) -> int:
    """Bind ``forward`` as the ``forward`` of every submodule whose type is exactly ``kind`` (in place); how many."""
    count = 0
    for sub in module.modules():
        if type(sub) is kind:
            sub.forward = MethodType(forward, sub)
            count += 1
    return count
