"""Integrate-and-fire neuron modules used by conversion."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from spikeconv.errors import ConfigError, ConversionError
from spikeconv.neurons.kernels import neuron_kernel
from spikeconv.neurons.kernels_native import pooled_shape
from spikeconv.neurons.sin_correction import IsiState
from spikeconv.neurons.strategies import Kernel, Reset, SinCorrection
from spikeconv.neurons.workspace import reusable_empty


class SpikingNeuron(nn.Module):
    """Base class of every neuron module: holds parameters and the membrane of one simulation.

    Neurons are called as ``neuron(x, num_steps, static=False)`` on a time-flattened input
    ``[K·N, ...]`` (``K = num_steps``), or on one ``[N, ...]`` tensor when ``static`` says the input
    is the same at every step. They return ``[K·N, ...]``. The membrane carries over between calls
    so that a long run can be simulated in time chunks; only :class:`SpikingNetwork` clears it,
    at the start of every forward.
    """

    def reset_state(self) -> None:
        """Forget the membrane (called by SpikingNetwork before each new simulation)."""
        raise NotImplementedError


class IFNeuron(SpikingNeuron):
    """Integrate-and-fire neuron with a calibrated threshold, per layer or per channel.

    Dynamics: :func:`spikeconv.neurons.dynamics.if_step` (``H = V + X``, ``S = Θ(H − θ)``,
    soft reset ``V = H − θS`` or hard reset ``V = H(1 − S)``, output ``θS``). The initial
    membrane is ``V[0] = v_init·θ``; ``v_init = 0.5`` is the half-threshold shift of QCFS and SNN
    calibration (Bu et al. 2022; Li et al. 2021) that centres the rounding error of rate coding.

    Burst spikes (Li & Zeng, IJCAI 2022): with ``max_spikes = Γ > 1`` a neuron may emit up to Γ
    spikes in one step (:func:`spikeconv.neurons.dynamics.multi_spike_if_step`), releasing charge
    an ordinary IF neuron would carry into later steps.

    Low-latency corrections (SNN calibration, Li et al. ICML 2021) are two buffers: ``bias``, a
    current added to the input at every step (per channel), and ``v_offset``, a charge added to
    the initial membrane (per neuron). Both are zero unless :func:`spikeconv.convert.correct`
    measured them against the ANN.

    Spikes of inactivated neurons (SpiCalib, Li et al. 2022): ``sin_correction`` lets a neuron
    take back spikes its later input contradicts (negative spikes, see
    :mod:`spikeconv.neurons.sin_correction`), so that deep networks whose units see large
    cancelling inputs do not accumulate early wrong spikes.

    Shapes: input ``[K·N, C, ...]`` or static ``[N, C, ...]``; output ``[K·N, C, ...]``.

    Args:
        threshold: θ, one value (per layer) or one per channel (dimension 1 of the input).
        v_init: Initial membrane as a fraction of θ.
        reset: Reset rule.
        kernel: Which registered multi-step kernel runs the time loop.
        max_spikes: Γ, the most spikes per step (1 = ordinary IF; > 1 needs soft reset).
        sin_correction: Retraction of spikes of inactivated neurons (needs soft reset, Γ = 1).
        isi_allowance: Extra silent steps the ``ISI`` rule waits beyond the mean interval.
    """

    def __init__(
        self,
        threshold: float | Sequence[float] | Tensor,
        *,
        v_init: float = 0.5,
        reset: Reset = Reset.SUBTRACT,
        kernel: Kernel = Kernel.INPLACE,
        max_spikes: int = 1,
        sin_correction: SinCorrection = SinCorrection.NONE,
        isi_allowance: float = 1.0,
    ) -> None:
        super().__init__()
        if not isinstance(sin_correction, SinCorrection):
            raise ConfigError("sin_correction must be a SinCorrection member")
        if sin_correction is not SinCorrection.NONE and (max_spikes > 1 or reset is not Reset.SUBTRACT):
            raise ConfigError("SIN correction needs reset by subtraction and one spike per step")
        if isinstance(max_spikes, bool) or not isinstance(max_spikes, int) or max_spikes < 1:
            raise ConfigError(f"max_spikes must be an integer >= 1, got {max_spikes!r}")
        if max_spikes > 1 and reset is not Reset.SUBTRACT:
            raise ConfigError("burst spikes (max_spikes > 1) need reset by subtraction")
        th = torch.as_tensor(threshold, dtype=torch.float32).reshape(-1).clone()
        if th.numel() == 0 or not torch.isfinite(th).all() or (th <= 0).any():
            raise ConfigError(f"neuron thresholds must be finite and > 0, got {th.tolist()[:8]}")
        if not isinstance(reset, Reset) or not isinstance(kernel, Kernel):
            raise ConfigError("reset and kernel must be Reset and Kernel members")
        self.register_buffer("threshold", th)
        self.register_buffer("v_init", torch.tensor(float(v_init)))
        self.register_buffer("bias", torch.zeros(()))
        self.register_buffer("v_offset", torch.zeros(()))
        self.reset = reset
        self.kernel = kernel
        self.max_spikes = max_spikes
        self.sin_correction = sin_correction
        self.isi_allowance = float(isi_allowance)
        self._v: Tensor | None = None
        self._sin_state: Tensor | IsiState | None = None
        self._step = 0

    def set_corrections(self, *, bias: Tensor | None = None, v_offset: Tensor | None = None) -> None:
        """Install measured corrections: ``bias`` broadcastable to one step's ``[C, ...]`` input
        (without the batch dimension), ``v_offset`` likewise (usually the full ``[C, H, W]``)."""
        if bias is not None:
            self.bias = torch.as_tensor(bias, dtype=torch.float32).clone()
        if v_offset is not None:
            self.v_offset = torch.as_tensor(v_offset, dtype=torch.float32).clone()

    def extra_repr(self) -> str:
        kind = "per-channel" if self.threshold.numel() > 1 else f"θ={self.threshold.item():.4g}"
        extra = f", max_spikes={self.max_spikes}" if self.max_spikes > 1 else ""
        extra += f", sin={self.sin_correction.value}" if self.sin_correction is not SinCorrection.NONE else ""
        extra += ", corrected" if self.bias.dim() or self.v_offset.dim() or self.bias.item() or self.v_offset.item() else ""
        return f"{kind}, v_init={self.v_init.item():g}, reset={self.reset.value}{extra}"

    def reset_state(self) -> None:
        self._v = None
        self._sin_state = None
        self._step = 0

    def broadcast_threshold(self, step_input: Tensor) -> Tensor:
        """θ shaped to broadcast against one step's input ``[N, C, ...]``."""
        th = self.threshold.to(step_input.dtype)
        if th.numel() == 1:
            return th.reshape(())
        if step_input.dim() < 2 or step_input.shape[1] != th.numel():
            raise ConversionError(
                f"neuron has {th.numel()} per-channel thresholds but its input has shape "
                f"{tuple(step_input.shape)}"
            )
        return th.reshape(1, -1, *([1] * (step_input.dim() - 2)))

    def spike_counts(self, step_output: Tensor) -> Tensor:
        """|k| per unit of one step's output ``θ·k`` (:class:`~spikeconv.neurons.SpikeRecorder`;
        a retracted, negative spike of a SIN-corrected neuron is a spike too)."""
        return torch.round(step_output / self.broadcast_threshold(step_output)).abs_()

    def forward(self, x: Tensor, num_steps: int, static: bool = False) -> Tensor:
        return self._simulate(x, num_steps, static, None).flatten(0, 1)

    def forward_pooled(self, x: Tensor, num_steps: int, static: bool, pool: tuple[int, int, int, int],
                       gate: tuple[Tensor, Tensor] | None = None) -> Tensor:  # fmt: skip
        """``avg_pool2d(self(x), (kh, kw), (sh, sw))`` for ``pool = (kh, kw, sh, sw)``, or with ``gate`` the 2x2
        spiking max-pool gate of that state, without writing the unpooled spike map
        (:mod:`spikeconv.neurons.fusion`); same values and the same membrane afterwards."""
        return self._simulate(x, num_steps, static, pool, gate).flatten(0, 1)

    def _simulate(self, x: Tensor, num_steps: int, static: bool, pool: tuple[int, int, int, int] | None,
                  gate: tuple[Tensor, Tensor] | None = None) -> Tensor:  # fmt: skip
        """``[K, N, ...]`` outputs of ``num_steps`` steps (pooled per step with ``pool``), advancing the membrane."""
        if static:
            step_input, sequence = x, x
        else:
            if x.shape[0] % num_steps:
                raise ConversionError(
                    f"input batch {x.shape[0]} is not a multiple of num_steps={num_steps}"
                )
            sequence = x.reshape(num_steps, x.shape[0] // num_steps, *x.shape[1:])
            step_input = sequence[0]
        th = self.broadcast_threshold(step_input)
        # the bias is fused into the kernels (V + (X + bias)) instead of materialising X + bias
        bias = self.bias.to(x.dtype) if self.bias.dim() or self.bias.item() != 0.0 else None
        if self._v is None or self._v.shape != step_input.shape:
            start = self.v_init.to(x.dtype) * th + self.v_offset.to(x.dtype)
            self._v = start.expand(step_input.shape).contiguous()
            self._sin_state, self._step = None, 0
        out = None
        if self.kernel is not Kernel.REFERENCE:
            shape = step_input.shape if pool is None else pooled_shape(step_input.shape, pool)
            out = reusable_empty(self, "out" if pool is None else "pooled", (num_steps, *shape), step_input)
        extra = {} if pool is None else {"pool": pool, "gate": gate}
        if self.sin_correction is not SinCorrection.NONE:
            return self._run_sin_corrected(sequence, th, bias, num_steps, static, out, extra)
        if self.max_spikes > 1:
            outputs, self._v = neuron_kernel("burst", self.kernel)(sequence, self._v, th, self.max_spikes, num_steps, static, bias,
                                                                   out, **extra)  # fmt: skip
        else:
            outputs, self._v = neuron_kernel("if", self.kernel)(sequence, self._v, th, self.reset, num_steps, static, bias, out,
                                                                **extra)  # fmt: skip
        return outputs

    def _run_sin_corrected(self, sequence: Tensor, th: Tensor, bias: Tensor | None, num_steps: int, static: bool,
                           out: Tensor | None, extra: dict) -> Tensor:  # fmt: skip
        if self.sin_correction is SinCorrection.SIGNED:
            count = torch.zeros_like(self._v) if self._sin_state is None else self._sin_state
            low = (2.0 * self.v_init.to(th.dtype) - 1.0) * th
            outputs, self._v, self._sin_state = neuron_kernel("signed", self.kernel)(sequence, self._v, count, th, low, num_steps,
                                                                                     static, bias, out, **extra)  # fmt: skip
        else:
            state = IsiState.zeros_like(self._v) if self._sin_state is None else self._sin_state
            outputs, self._v, self._sin_state = neuron_kernel("isi", self.kernel)(sequence, self._v, state, th, self._step,
                                                                                  self.isi_allowance, num_steps, static, bias,
                                                                                  out, **extra)  # fmt: skip
        self._step += num_steps
        return outputs
