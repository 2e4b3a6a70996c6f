"""Pure single-step neuron dynamics: ``(x, v, params) -> (output, v)``.

Each function is the one definition of its neuron; modules only hold parameters and state, and
faster kernels (see :mod:`spikeconv.neurons.kernels`) are tested against these.
"""

from __future__ import annotations

import torch
from torch import Tensor

from spikeconv.neurons.strategies import Reset


def if_step(x: Tensor, v: Tensor, threshold: Tensor, reset: Reset) -> tuple[Tensor, Tensor]:
    """One integrate-and-fire step with spikes of amplitude ``threshold``.

    Equations (charge / fire / reset; Rueckauer et al. 2017 for the soft reset)::

        H = V + X
        S = Θ(H − θ)                      (Θ(z) = 1 if z ≥ 0)
        V = H − θ·S      (Reset.SUBTRACT)   or   V = H·(1 − S)   (Reset.ZERO)
        output = θ·S

    The output carries the threshold so that the next layer's ANN weights stay unchanged.

    Args:
        x: Input current for this step, any shape ``[N, ...]``.
        v: Membrane potential after the previous step, same shape as ``x``.
        threshold: θ, broadcastable to ``x`` (a scalar or per-channel ``[1, C, 1, 1]``).
        reset: The reset rule.

    Returns:
        ``(output, v)``: the emitted ``θ·S`` and the membrane after reset, both shaped like ``x``.
    """
    h = v + x
    spikes = (h >= threshold).to(x.dtype)
    out = spikes * threshold
    if reset is Reset.SUBTRACT:
        return out, h - out
    return out, h * (1.0 - spikes)


def multi_spike_if_step(
    x: Tensor, v: Tensor, threshold: Tensor, max_spikes: int
) -> tuple[Tensor, Tensor]:
    """One IF step that may emit up to ``max_spikes`` spikes (burst spikes, Li & Zeng 2022).

    Equations::

        H = V + X
        S = clip(⌊H / θ⌋, 0, Γ)           Γ = max_spikes; Γ = 1 is the ordinary soft-reset IF
        V = H − θ·S
        output = θ·S
    """
    h = v + x
    spikes = torch.clamp(torch.floor(h / threshold), 0, max_spikes)
    out = spikes * threshold
    return out, h - out
