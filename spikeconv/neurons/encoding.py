"""Input encoders: how a static sample becomes the first layer's input over time."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from spikeconv.errors import ConfigError, DataError


@dataclass(frozen=True)
class DirectEncoding:
    """The analog sample is the input current at every step ("encoding by the first layer").

    Because the input never changes, every layer before the first neuron is computed once per
    sample, not once per step.
    """

    is_static = True

    def encode(self, x: Tensor, num_steps: int, first_step: int) -> Tensor:
        return x


@dataclass(frozen=True)
class PoissonEncoding:
    """Rate coding: at each step a pixel spikes with probability equal to its intensity.

    ``s = sign(x)·Bernoulli(|x|)``, so the expected input equals ``x``; inputs must lie in
    ``[-1, 1]`` (pixels scaled to [0, 1]; the model's own normalisation is applied after).
    The random stream is seeded per simulation step so a run is reproducible and independent of
    how time is chunked.
    """

    seed: int = 0
    is_static = False

    def encode(self, x: Tensor, num_steps: int, first_step: int) -> Tensor:
        if x.numel() and x.abs().max() > 1:
            raise DataError(
                "Poisson encoding needs inputs in [-1, 1] (pixels scaled to [0, 1]); "
                f"got values up to {x.abs().max().item():.3g}"
            )
        steps = []
        for t in range(first_step, first_step + num_steps):
            generator = torch.Generator(device=x.device).manual_seed(self.seed * 1_000_003 + t)
            draws = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            steps.append((draws < x.abs()).to(x.dtype) * torch.sign(x))
        return torch.cat(steps)


Encoding = DirectEncoding | PoissonEncoding


def encoding_from_name(name: str, *, seed: int = 0) -> Encoding:
    """Map a CLI/JSON name (``direct`` or ``poisson``) to an encoder."""
    key = name.strip().lower()
    if key == "direct":
        return DirectEncoding()
    if key == "poisson":
        return PoissonEncoding(seed=seed)
    raise ConfigError(f"unknown encoding {name!r}; choose one of: direct, poisson")


def encoding_to_dict(encoding: Encoding) -> dict:
    """JSON form of an encoder (inverse of :func:`encoding_from_dict`)."""
    if isinstance(encoding, PoissonEncoding):
        return {"name": "poisson", "seed": encoding.seed}
    return {"name": "direct"}


def encoding_from_dict(data: dict) -> Encoding:
    """Rebuild an encoder from :func:`encoding_to_dict` output."""
    return encoding_from_name(str(data.get("name", "direct")), seed=int(data.get("seed", 0)))
