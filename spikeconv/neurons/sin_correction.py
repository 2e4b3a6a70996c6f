"""Neurons that retract spikes of inactivated neurons (SIN): pure steps and their time loops.

Both rules keep an IF neuron's net output count non-negative, as a ReLU's output is, and both
return the charge of a retracted spike to the membrane, so ``Σ output + V = V[0] + Σ input``
holds at every step exactly as for the ordinary soft-reset IF neuron. See
:class:`spikeconv.neurons.strategies.SinCorrection` for when to use which.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def signed_if_step(
    x: Tensor, v: Tensor, count: Tensor, threshold: Tensor, low: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """One soft-reset IF step that may also emit a negative spike.

    Equations (``count`` is the net number of spikes emitted so far)::

        H = V + X
        S = Θ(H − θ) − Θ(low − H)·[count > 0]      low = (2·v_init − 1)·θ
        V = H − θ·S,   count = count + S,   output = θ·S

    With ``v_init = ½`` (low = 0) the count stays the running input rounded to the nearest
    multiple of θ, from above as well as from below; with ``v_init = 0`` (low = −θ) it is floored.

    Returns:
        ``(output, v, count)``.
    """
    h = v + x
    spikes = (h >= threshold).to(x.dtype) - ((h < low) & (count > 0)).to(x.dtype)
    out = spikes * threshold
    return out, h - out, count + spikes


def signed_if_loop(
    x: Tensor, v: Tensor, count: Tensor, threshold: Tensor, low: Tensor, num_steps: int, static: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """Run :func:`signed_if_step` over ``num_steps``; ``x`` is ``[K, N, ...]`` or static ``[N, ...]``."""
    outputs = []
    for t in range(num_steps):
        out, v, count = signed_if_step(x if static else x[t], v, count, threshold, low)
        outputs.append(out)
    return torch.stack(outputs), v, count


@dataclass
class IsiState:
    """Per-neuron memory of the SpiCalib rule: net count, spikes, first/last spike, last event."""

    count: Tensor
    fired: Tensor
    first: Tensor
    last: Tensor
    last_event: Tensor

    @classmethod
    def zeros_like(cls, v: Tensor) -> IsiState:
        zeros = torch.zeros_like(v)
        return cls(count=zeros.clone(), fired=zeros.clone(), first=zeros.clone(), last=zeros.clone(),
                   last_event=zeros.clone())  # fmt: skip


def isi_if_step(
    x: Tensor, v: Tensor, state: IsiState, threshold: Tensor, t: int, allowance: float
) -> tuple[Tensor, Tensor, IsiState]:
    """One soft-reset IF step with the SpiCalib inter-spike-interval retraction.

    A neuron that has fired at least twice, has positive spikes outstanding, and has been silent
    for longer than its mean inter-spike interval plus ``allowance`` steps emits −θ (and gets the
    charge back); the silence clock restarts at that event.
    """
    h = v + x
    pos = h >= threshold
    mean_isi = (state.last - state.first) / (state.fired - 1).clamp(min=1)
    neg = ~pos & (state.count > 0) & (state.fired >= 2) & ((t - state.last_event) > mean_isi + allowance)
    spikes = pos.to(x.dtype) - neg.to(x.dtype)
    out = spikes * threshold
    step = torch.full_like(v, float(t))
    first = torch.where(pos & (state.fired == 0), step, state.first)
    state = IsiState(
        count=state.count + spikes,
        fired=state.fired + pos.to(x.dtype),
        first=first,
        last=torch.where(pos, step, state.last),
        last_event=torch.where(pos | neg, step, state.last_event),
    )
    return out, h - out, state


def isi_if_loop(
    x: Tensor, v: Tensor, state: IsiState, threshold: Tensor, start: int, allowance: float, num_steps: int,
    static: bool,
) -> tuple[Tensor, Tensor, IsiState]:
    """Run :func:`isi_if_step` for steps ``start .. start + num_steps − 1``."""
    outputs = []
    for k in range(num_steps):
        out, v, state = isi_if_step(x if static else x[k], v, state, threshold, start + k, allowance)
        outputs.append(out)
    return torch.stack(outputs), v, state
