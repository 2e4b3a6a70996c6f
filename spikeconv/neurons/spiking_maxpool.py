"""Spiking max-pooling: each window passes the spikes of its currently most active input.

A plain max-pool applied to spikes at every step takes the max of 0/θ values, i.e. it emits a
spike whenever *any* input of the window spikes, so its rate approaches the OR of the inputs, not
the max of their rates. The gate below keeps, per input position, the cumulative input so far,
and per window the cumulative output, and makes the cumulative output equal the largest
cumulative input at every step (LIPooling, Li & Zeng, IJCAI 2022, arXiv:2204.13271;
methods.md §5.5)::

    C[t] = C[t−1] + x[t]                       (per input position; C[0] = 0)
    w[t] = argmax over the window of C[t]      (the currently most active input; padding is −∞)
    M[t] = C_w[t] = maxpool(C[t])
    out[t] = M[t] − M[t−1] = x_w[t] + (C_w[t−1] − M[t−1])

While one position keeps the lead, the bracket is exactly 0 and the gate passes ``x_w[t]``, the
input of the position whose count so far (including this step) is largest. When the lead changes
hands the bracket subtracts the lead the new winner lacked, so the output never over-counts: the
rate after ``t`` steps equals the max-pool of the input rates at every ``t``. The output is
computed in the second form, and set to exactly 0 when ``M`` did not grow, so for inputs that are
weighted spikes ``θ·S`` with one θ per channel (IF neuron outputs) every output is exactly 0 or θ.

Shapes: input ``[K·N, C, H, W]`` (time-flattened) or static ``[N, C, H, W]``; output
``[K·N, C, H', W']``, the output size of ``nn.MaxPool2d`` with the same arguments.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from spikeconv.errors import ConfigError, ConversionError
from spikeconv.neurons.if_neuron import SpikingNeuron
from spikeconv.neurons.native import native_ops_for
from spikeconv.neurons.strategies import Kernel
from spikeconv.neurons.workspace import reusable_empty


def _pair(value: int | tuple[int, ...], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise ConfigError(f"max-pool {name} must be an int or a pair of ints, got {value!r}")
    return pair  # type: ignore[return-value]


def _at(values: Tensor, index: Tensor) -> Tensor:
    """``values[n, c, index[n, c, i, j]]`` over the flattened spatial dimensions."""
    return values.flatten(2).gather(2, index.flatten(2)).view_as(index)


def max_pool_gate_step(x: Tensor, cumulative: Tensor, emitted: Tensor, pool: dict) -> tuple[Tensor, Tensor, Tensor]:
    """One step of the spiking max-pool gate: ``(x, C[t−1], M[t−1], pool) -> (out, C[t], M[t])``.

    Args:
        x: This step's input ``[N, C, H, W]``.
        cumulative: ``C[t−1]``, the summed input so far, shaped like ``x``.
        emitted: ``M[t−1]``, the summed output so far ``[N, C, H', W']``.
        pool: Keyword arguments of ``F.max_pool2d`` (kernel_size, stride, padding, dilation,
            ceil_mode).

    Returns:
        ``(out, C[t], M[t])`` with ``out = x_w + (C_w[t−1] − M[t−1])``, 0 where ``M`` stayed.
    """
    updated = cumulative + x
    running_max, winner = F.max_pool2d(updated, **pool, return_indices=True)
    grown = _at(x, winner) + (_at(cumulative, winner) - emitted)
    out = torch.where(running_max == emitted, torch.zeros_like(grown), grown)
    return out, updated, running_max


class SpikingMaxPool2d(SpikingNeuron):
    """Max-pooling over spike trains whose rate equals the max-pool of the input rates.

    Stateful like a neuron (the cumulative input and output of one simulation), so it derives
    from :class:`SpikingNeuron`: :class:`SpikingNetwork` clears it at every forward, and the
    state carries across time chunks. Dynamics: :func:`max_pool_gate_step`.

    Args:
        kernel_size: Window size, as ``nn.MaxPool2d``.
        stride: Window stride (``None``: the kernel size).
        padding: Implicit −∞ padding on each side.
        dilation: Spacing between window elements.
        ceil_mode: Use ceil instead of floor for the output size.
        kernel: ``Kernel.REFERENCE`` loops :func:`max_pool_gate_step`; any other runs the C++ loop
            of :mod:`spikeconv.neurons.native` where it applies (float32 on CPU), else the same loop.
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        ceil_mode: bool = False,
        *,
        kernel: Kernel = Kernel.INPLACE,
    ) -> None:
        super().__init__()
        self.kernel = kernel
        kernel = _pair(kernel_size, "kernel_size")
        self.pool = {
            "kernel_size": kernel,
            "stride": kernel if stride is None or stride == () or stride == [] else _pair(stride, "stride"),
            "padding": _pair(padding, "padding"),
            "dilation": _pair(dilation, "dilation"),
            "ceil_mode": bool(ceil_mode),
        }
        if min(kernel) < 1 or min(self.pool["stride"]) < 1 or min(self.pool["dilation"]) < 1 or min(self.pool["padding"]) < 0:
            raise ConfigError(f"max-pool kernel, stride and dilation must be >= 1 and padding >= 0, got {self.pool}")
        self._cumulative: Tensor | None = None
        self._emitted: Tensor | None = None

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={value}" for key, value in self.pool.items())

    def reset_state(self) -> None:
        self._cumulative = None
        self._emitted = None

    def forward(self, x: Tensor, num_steps: int, static: bool = False) -> Tensor:
        if static:
            sequence = x.unsqueeze(0).expand(num_steps, *x.shape)
        elif x.shape[0] % num_steps:
            raise ConversionError(f"max-pool input batch {x.shape[0]} is not a multiple of num_steps={num_steps}")
        else:
            sequence = x.reshape(num_steps, x.shape[0] // num_steps, *x.shape[1:])
        if sequence.dim() != 5:
            raise ConversionError(f"spiking max-pool expects [N, C, H, W] per step, got {tuple(sequence.shape[1:])}")
        self._ensure_state(sequence.shape[1:], sequence)
        fast = None if self.kernel is Kernel.REFERENCE else self._native(x, sequence, num_steps, static)
        if fast is not None:
            return fast
        outputs = []
        for t in range(num_steps):
            out, self._cumulative, self._emitted = max_pool_gate_step(sequence[t], self._cumulative, self._emitted, self.pool)
            outputs.append(out)
        return torch.cat(outputs)

    def fusable_geometry(self) -> bool:
        """Whether the gate is the 2x2, stride-2 one the fused neuron kernels run (:mod:`spikeconv.neurons.fusion`)."""
        pool = self.pool
        return (self.kernel is not Kernel.REFERENCE and pool["kernel_size"] == (2, 2) and pool["stride"] == (2, 2)
                and pool["padding"] == (0, 0) and pool["dilation"] == (1, 1) and not pool["ceil_mode"])  # fmt: skip

    def _ensure_state(self, step_shape: torch.Size, like: Tensor) -> None:
        """Fresh (C, M) = (0, maxpool(0)) for a new step shape; kept otherwise (the state carries across chunks)."""
        if self._cumulative is None or self._cumulative.shape != step_shape:
            self._cumulative = like.new_zeros(step_shape)
            self._emitted = F.max_pool2d(self._cumulative, **self.pool)

    def flat_state(self, step_shape: torch.Size, like: Tensor) -> tuple[Tensor, Tensor]:
        """Copies of (C, M) as flat ``[N·C, H, W]`` and ``[N·C, OH, OW]`` float32 tensors, fresh at a new shape."""
        self._ensure_state(step_shape, like)
        n, c, h, w = step_shape
        return self._cumulative.reshape(n * c, h, w).clone(), self._emitted.reshape(n * c, *self._emitted.shape[2:]).clone()

    def set_flat_state(self, cumulative: Tensor, emitted: Tensor, step_shape: torch.Size) -> None:
        """Store the state :meth:`flat_state` handed out, after the fused kernel advanced it."""
        self._cumulative = cumulative.view(step_shape)
        self._emitted = emitted.view(*step_shape[:2], *emitted.shape[1:])

    def _native(self, x: Tensor, sequence: Tensor, num_steps: int, static: bool) -> Tensor | None:
        """The C++ gate loop (bit-identical to :func:`max_pool_gate_step`), or None where it does not apply."""
        cumulative, emitted = self._cumulative, self._emitted
        ops = native_ops_for(x, cumulative, emitted) if x.dtype == torch.float32 and cumulative.numel() else None
        if ops is None or emitted.dtype != torch.float32:
            return None
        step_shape = cumulative.shape
        cumulative, emitted = self.flat_state(step_shape, x)
        xs = (x if static else sequence).contiguous()
        out = reusable_empty(self, "out", (num_steps, *step_shape[:2], *emitted.shape[1:]), x)
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (self.pool[k] for k in ("kernel_size", "stride", "padding", "dilation"))
        ops.maxpool_gate_run(xs, cumulative, emitted, out, num_steps, static, kh, kw, sh, sw, ph, pw, dh, dw)
        self.set_flat_state(cumulative, emitted, step_shape)
        return out.flatten(0, 1)
