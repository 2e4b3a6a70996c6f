"""Input preprocessing is part of the model: ``(x - mean) / std`` on pixels scaled to [0, 1].

spikeconv feeds every model the data set's pixels in [0, 1]. A model trained on normalised
inputs carries its normalisation: spikeconv checkpoints inside the network
(:class:`~spikeconv.models.InputNormalization`), other models as a record that
:func:`with_preprocessing` prepends to the canonical graph. The SNN file keeps that record, so
``curve`` and ``compare`` rebuild the same network and apply the same preprocessing unasked.
Before and after, for mean 0.5 and std 0.25::

    conv = self.conv(x)
    sub = x - self._input_mean; truediv = sub / self._input_std; conv = self.conv(truediv)
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx

from spikeconv.errors import ConfigError


@dataclass(frozen=True)
class Preprocessing:
    """Per-channel normalisation ``(x - mean) / std``; one value applies to every channel.

    ``repeat_channels`` > 1 first repeats a one-channel image to that many channels, as torchvision's
    ``Grayscale(num_output_channels=3)`` does: a stock three-channel network trained on grey images fed that way."""

    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    repeat_channels: int = 1

    def __post_init__(self) -> None:
        mean, std = tuple(float(v) for v in self.mean), tuple(float(v) for v in self.std)
        if not mean or not std or not all(math.isfinite(v) for v in mean + std):
            raise ConfigError(f"--mean/--std need finite numbers, got mean {self.mean} and std {self.std}")
        if any(v <= 0 for v in std):
            raise ConfigError(f"--std must be > 0 for every channel, got {std}")
        if int(self.repeat_channels) < 1:
            raise ConfigError(f"repeat_channels must be >= 1, got {self.repeat_channels}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        object.__setattr__(self, "repeat_channels", int(self.repeat_channels))

    @property
    def is_identity(self) -> bool:
        return all(v == 0.0 for v in self.mean) and all(v == 1.0 for v in self.std) and self.repeat_channels == 1

    def check_channels(self, channels: int, where: str) -> None:
        """Raise ConfigError unless mean and std have one value or one per channel."""
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, channels):
                raise ConfigError(f"--{name} has {len(values)} values but {where} takes {channels} input channel(s); "
                                  f"give one value, or one per channel")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        repeat = {"repeat_channels": self.repeat_channels} if self.repeat_channels > 1 else {}  # older files have no key
        return {"mean": list(self.mean), "std": list(self.std), **repeat}

    @classmethod
    def from_dict(cls, record: dict[str, Any] | None) -> Preprocessing | None:
        if record is None:
            return None
        return cls(tuple(record["mean"]), tuple(record["std"]), int(record.get("repeat_channels", 1)))


def describe_preprocessing(record: dict[str, Any] | None) -> str:
    """One phrase for output lines: ``none (pixels in [0, 1])`` or ``mean 0.286, std 0.353``."""
    if record is None:
        return "none (pixels in [0, 1])"
    pre = Preprocessing.from_dict(record)
    values = ", ".join(f"{name} {'/'.join(f'{v:g}' for v in vals)}" for name, vals in (("mean", pre.mean), ("std", pre.std)))
    if pre.repeat_channels > 1:
        repeat = f"the grey channel repeated to {pre.repeat_channels}"
        unnormalised = all(v == 0.0 for v in pre.mean) and all(v == 1.0 for v in pre.std)
        return f"{repeat}, x in [0, 1]" if unnormalised else f"{repeat}, then (x - mean) / std with {values}, x in [0, 1]"
    return f"{values} (identity: pixels in [0, 1])" if pre.is_identity else f"(x - mean) / std with {values}, x in [0, 1]"


def _constant_shape(values: Sequence[float], rank: int) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).reshape(1, -1, *([1] * (rank - 2)))


def with_preprocessing(gm: fx.GraphModule, preprocessing: Preprocessing | None, *, input_rank: int = 4) -> fx.GraphModule:
    """A copy of the canonical graph ``gm`` that normalises its input first (``gm`` itself if there is nothing to do).

    The two nodes are a subtraction and a division by constants, the same graph a spikeconv
    checkpoint's :class:`~spikeconv.models.InputNormalization` traces to, so calibration and
    conversion treat them as any other layer before the first neuron.
    """
    if preprocessing is None or preprocessing.is_identity:
        return gm
    out = fx.GraphModule(gm, gm.graph, gm.__class__.__name__)  # shares modules, which nothing edits; new graph below
    out.graph = _copy_graph(gm.graph)
    out.register_buffer("_input_mean", _constant_shape(preprocessing.mean, input_rank))
    out.register_buffer("_input_std", _constant_shape(preprocessing.std, input_rank))
    graph = out.graph
    placeholder = next(n for n in graph.nodes if n.op == "placeholder")
    users = list(placeholder.users)
    source = placeholder
    if preprocessing.repeat_channels > 1:  # a concatenation along channels: converted like any other
        with graph.inserting_after(placeholder):
            source = graph.call_function(torch.cat, ([placeholder] * preprocessing.repeat_channels,), {"dim": 1})
    with graph.inserting_after(source):
        mean = graph.get_attr("_input_mean")
    with graph.inserting_after(mean):
        centred = graph.call_function(operator.sub, (source, mean))
    with graph.inserting_after(centred):
        std = graph.get_attr("_input_std")
    with graph.inserting_after(std):
        scaled = graph.call_function(operator.truediv, (centred, std))
    for user in users:
        user.replace_input_with(placeholder, scaled)
    graph.lint()
    out.recompile()
    out.meta = dict(gm.meta)
    return out.eval()


def _copy_graph(graph: fx.Graph) -> fx.Graph:
    copy = fx.Graph()
    output = copy.graph_copy(graph, {})
    copy.output(output)
    return copy
