"""Spike-equivalent operators: a non-linear ANN operation run on the running mean of its inputs.

LayerNorm, GELU, softmax and the product of two activations (``Q·Kᵀ``, ``attention·V``) are not
affine, so averaging over time does not commute with them and a plain rate-coded layer cannot
reproduce them. A spike-equivalent operator keeps the running sum of each input and, at every step
``t``, emits the change of ``t`` times its output on the running means, so that the running mean of
what it emits is exactly the operation applied to the running means of what it received::

    S_i[t] = S_i[t−1] + x_i[t]                  (per input i; S_i[0] = 0)
    m_i[t] = S_i[t] / t
    A[t]   = t · f(m_1[t], m_2[t], ...)          (A[0] = 0)
    y[t]   = A[t] − A[t−1]                       so that  (1/t)·Σ_{s≤t} y[s] = f(m_1[t], m_2[t], ...)

This is the expectation compensation of ECMT (Huang et al., ACM MM 2024) and, summed instead of
averaged, the "spike-equivalent" softmax, LayerNorm and matmul of SpikeZIP-TF (You et al., ICML
2024): as the inputs' running means converge to the ANN's activations (IF neurons upstream,
``θ/T`` resolution), so does the operator's output, for any continuous ``f``, with no extra error of
its own. It is not accumulate-only: ``f`` is evaluated densely at every step, and the evaluation
counters charge it as multiply-accumulates (``spikeconv.evaluation``), never as synaptic ACs.

Shapes: every input ``[K·N, ...]`` (time-flattened; static ``[N, ...]`` inputs are repeated to that
form by the converted graph before they arrive), output ``[K·N, ...]`` as ``f`` gives for one step.
The state (running sums, steps so far, ``A``) carries across calls, so a run may be simulated in
time chunks; :class:`~spikeconv.neurons.SpikingNetwork` clears it before each forward.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from spikeconv.errors import ConversionError
from spikeconv.neurons.if_neuron import SpikingNeuron

__all__ = ["SpikeEquivalentOperator", "expectation_step"]


def expectation_step(op: nn.Module, inputs: tuple[Tensor, ...], sums: tuple[Tensor, ...], emitted: Tensor | None,
                     step: int) -> tuple[Tensor, tuple[Tensor, ...], Tensor]:  # fmt: skip
    """One step of a spike-equivalent operator: ``(x[t], S[t−1], A[t−1], t−1) -> (y[t], S[t], A[t])``.

    The reference definition (one step at a time); :class:`SpikeEquivalentOperator` runs a whole
    chunk of steps at once and is tested against it.

    Args:
        op: The ANN operation ``f`` (a module taking the inputs positionally).
        inputs: This step's inputs ``x_i[t]``, ``[N, ...]`` each.
        sums: ``S_i[t−1]``, shaped like the inputs.
        emitted: ``A[t−1]`` (``None`` before the first step: ``A[0] = 0``).
        step: ``t − 1``, the steps already taken.

    Returns:
        ``(y[t], S[t], A[t])``.
    """
    t = step + 1
    sums = tuple(s + x for s, x in zip(sums, inputs, strict=True))
    total = t * op(*(s / t for s in sums))
    out = total if emitted is None else total - emitted
    return out, sums, total


class SpikeEquivalentOperator(SpikingNeuron):
    """A non-linear ANN operation made spike-equivalent by expectation compensation (module docstring).

    Args:
        op: The ANN operation ``f`` (``nn.LayerNorm``, ``nn.GELU``, ``nn.Softmax``, an activation
            product, ...); a copy is kept, so the ANN's module is not shared.
        kind: The operation's name in reports (``layer_norm``, ``gelu``, ``softmax``, ``product``).
    """

    def __init__(self, op: nn.Module, *, kind: str) -> None:
        super().__init__()
        self.op = copy.deepcopy(op)
        self.kind = str(kind)
        self._sums: tuple[Tensor, ...] | None = None
        self._emitted: Tensor | None = None
        self._steps = 0

    def extra_repr(self) -> str:
        return f"kind={self.kind}"

    def reset_state(self) -> None:
        self._sums, self._emitted, self._steps = None, None, 0

    def forward(self, *args: Tensor | int) -> Tensor:
        """``op(x_1, ..., x_n)`` made spike-equivalent; called as ``(x_1, ..., x_n, num_steps)``."""
        *inputs, num_steps = args
        if not inputs or not isinstance(num_steps, int) or num_steps < 1:
            raise ConversionError(f"a spike-equivalent {self.kind} takes its inputs and the number of steps")
        sequences = [self._sequence(x, num_steps) for x in inputs]
        batch = sequences[0].shape[1]
        if self._sums is None or any(s.shape != q.shape[1:] for s, q in zip(self._sums, sequences, strict=False)):
            self._sums = tuple(torch.zeros_like(q[0]) for q in sequences)
            self._emitted, self._steps = None, 0
        steps = torch.arange(self._steps + 1, self._steps + num_steps + 1, dtype=sequences[0].dtype, device=sequences[0].device)
        means, sums = [], []
        for sequence, carried in zip(sequences, self._sums, strict=True):
            running = torch.cumsum(sequence, dim=0) + carried
            sums.append(running[-1])
            means.append((running / steps.reshape(-1, *([1] * (sequence.dim() - 1)))).flatten(0, 1))
        value = self.op(*means)
        totals = value.reshape(num_steps, batch, *value.shape[1:]) * steps.reshape(-1, *([1] * value.dim()))
        if self._emitted is None:
            out = torch.cat([totals[:1], totals[1:] - totals[:-1]])
        else:
            out = totals - torch.cat([self._emitted.unsqueeze(0), totals[:-1]])
        self._sums, self._emitted, self._steps = tuple(sums), totals[-1], self._steps + num_steps
        return out.flatten(0, 1)

    @staticmethod
    def _sequence(x: Tensor, num_steps: int) -> Tensor:
        if not isinstance(x, Tensor) or x.dim() < 1 or x.shape[0] % num_steps:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ConversionError(f"input {shape} of a spike-equivalent operator is not time-flattened over {num_steps} steps")
        return x.reshape(num_steps, x.shape[0] // num_steps, *x.shape[1:])
