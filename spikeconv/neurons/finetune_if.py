"""Converted IF neurons made trainable, for hybrid conversion: convert, then fine-tune at the target T.

A converted network's errors at small T are timing errors that no threshold rule removes (Rathi et
al., ICLR 2020; DIET-SNN, Rathi & Roy 2021): training the SNN itself for a short while at that T,
from the converted weights and thresholds, does. :class:`TrainableIF` runs exactly the forward of
:class:`~spikeconv.neurons.IFNeuron` (``H = V + X + b``, ``S = Θ(H − θ)``, soft or hard reset,
output ``θ·S``, ``V[0] = v_init·θ + v_offset``) with a surrogate gradient for Θ, and makes θ (and
any per-channel bias / per-neuron initial charge the conversion measured) parameters.
:func:`make_trainable_` swaps a network's IF neurons for these and :func:`make_inference_` swaps
them back, so the fine-tuned network is an ordinary converted SNN again.

The surrogate sees ``(H − θ)/θ``: a window one threshold wide whatever the layer's scale (θ is a
few units in one layer and a few tenths in the next); ``(H − θ)/θ ≥ 0`` exactly when ``H ≥ θ``, so
the forward spikes are the IF neuron's.

Neurons converted with the signed SIN correction (``SinCorrection.SIGNED``) are fine-tuned as they
are, because on deep networks (a MobileNetV2) the plain neuron simulates 15-67 points below its rate
code where the signed one stays within about 1.5 at T = 8: training from the plain one would start
from a far worse network. Their step is :func:`~spikeconv.neurons.sin_correction.signed_if_step`
(``S = Θ(H − θ) − Θ(low − H)·[count > 0]``, ``low = (2·v_init − 1)·θ``, ``count += S``); the negative
spike's gradient is the surrogate of ``(low − H)/θ`` and ``[count > 0]`` is a gate without gradient.
Other SIN rules (the ISI one) and burst neurons are refused.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from spikeconv.errors import ConfigError
from spikeconv.neurons.bistable import BistableIFNeuron
from spikeconv.neurons.if_neuron import IFNeuron, SpikingNeuron
from spikeconv.neurons.strategies import Reset, SinCorrection
from spikeconv.neurons.surrogates import BinarySurrogate, Rectangular

__all__ = ["FINETUNABLE_SIN", "MIN_THRESHOLD", "TrainableIF", "make_inference_", "make_trainable_"]

MIN_THRESHOLD = 1e-4
"""θ is kept above this during training (a threshold must stay positive)."""

FINETUNABLE_SIN = (SinCorrection.NONE, SinCorrection.SIGNED)
"""The SIN corrections a converted neuron may carry and still be fine-tuned."""

_REFUSAL = "hybrid needs IF neurons with one spike per step, no SIN correction or the signed one, not bistable"


class TrainableIF(SpikingNeuron):
    """The trainable twin of one converted :class:`IFNeuron` (one spike per step, no or the signed SIN correction).

    Shapes: input ``[K·N, C, ...]`` or static ``[N, C, ...]``; output ``[K·N, C, ...]`` (``θ·S``, S in {−1, 0, 1}).

    Args:
        neuron: The converted neuron whose threshold, initial charge and corrections start the training.
        surrogate: The binary surrogate applied to ``(H − θ)/θ``.
    """

    def __init__(self, neuron: IFNeuron, surrogate: BinarySurrogate | None = None) -> None:
        super().__init__()
        if type(neuron) is not IFNeuron:
            raise ConfigError(f"only converted IF neurons are fine-tuned, not {type(neuron).__name__}")
        if neuron.max_spikes != 1 or neuron.sin_correction not in FINETUNABLE_SIN:
            raise ConfigError(f"{_REFUSAL} (this one: {neuron.extra_repr()}); convert with --sin-correction none or signed, Γ = 1")
        self.threshold = nn.Parameter(neuron.threshold.detach().clone())
        self.register_buffer("v_init", neuron.v_init.detach().clone())
        for name in ("bias", "v_offset"):  # trained only where the conversion measured one (a shaped tensor)
            value = getattr(neuron, name).detach().clone()
            if value.dim():
                setattr(self, name, nn.Parameter(value))
            else:
                self.register_buffer(name, value)
        self.reset = neuron.reset
        self.kernel = neuron.kernel
        self.sin_correction = neuron.sin_correction
        self.surrogate = surrogate if surrogate is not None else Rectangular()
        self._v: Tensor | None = None
        self._count: Tensor | None = None  # signed: net spikes emitted so far (no gradient; it only gates)

    def reset_state(self) -> None:
        self._v = None
        self._count = None

    def _theta(self, step_input: Tensor) -> Tensor:
        th = self.threshold.clamp_min(MIN_THRESHOLD).to(step_input.dtype)
        if th.numel() == 1:
            return th.reshape(())
        return th.reshape(1, -1, *([1] * (step_input.dim() - 2)))

    def spike_counts(self, step_output: Tensor) -> Tensor:
        return torch.round(step_output / self._theta(step_output)).abs()

    def forward(self, x: Tensor, num_steps: int, static: bool = False) -> Tensor:
        inputs = (x,) * num_steps if static else x.reshape(num_steps, x.shape[0] // num_steps, *x.shape[1:]).unbind(0)
        th = self._theta(inputs[0])
        bias = self.bias.to(x.dtype)
        signed = self.sin_correction is SinCorrection.SIGNED
        v, count = self._v, self._count
        if v is None or v.shape != inputs[0].shape:
            v = (self.v_init.to(x.dtype) * th + self.v_offset.to(x.dtype)).expand(inputs[0].shape)
            count = torch.zeros(inputs[0].shape, dtype=x.dtype, device=x.device) if signed else None
        low = (2.0 * self.v_init.to(th.dtype) - 1.0) * th if signed else None  # the IF neuron's expression, bit for bit
        outputs = []
        for step_input in inputs:
            h = v + (step_input + bias)
            spikes = self.surrogate.spike((h - th) / th)
            if signed:
                spikes = spikes - self._retraction(h, low, th, count)
                count = count + spikes.detach()
            out = spikes * th
            v = h - out if self.reset is Reset.SUBTRACT else h * (1.0 - spikes)
            outputs.append(out)
        self._v, self._count = v, count
        return torch.cat(outputs)

    def _retraction(self, h: Tensor, low: Tensor, th: Tensor, count: Tensor) -> Tensor:
        """The negative spike ``Θ(low − H)·[count > 0]``: forward the IF neuron's strict ``H < low``, backward the
        surrogate of ``(low − H)/θ`` (the surrogate's ``Θ(0) = 1`` would fire at ``H = low``, where it does not)."""
        smooth = self.surrogate.spike((low - h) / th)
        exact = (h < low).to(h.dtype) + (smooth - smooth.detach())  # adds an exact 0: the value is the mask's
        return exact * (count > 0).to(h.dtype)

    def to_if_neuron(self) -> IFNeuron:
        """The inference neuron with the trained values (the fast kernels run it again)."""
        neuron = IFNeuron(self.threshold.detach().clamp_min(MIN_THRESHOLD).clone(), v_init=float(self.v_init), reset=self.reset,
                          kernel=self.kernel, sin_correction=self.sin_correction)  # fmt: skip
        neuron.set_corrections(bias=self.bias.detach().clone(), v_offset=self.v_offset.detach().clone())
        return neuron


def _swap_(root: nn.Module, make) -> list[str]:
    swapped = []
    for name, module in list(root.named_modules()):
        replacement = make(module)
        if replacement is None:
            continue
        parent, _, leaf = name.rpartition(".")
        setattr(root.get_submodule(parent) if parent else root, leaf, replacement)
        swapped.append(name)
    return swapped


def make_trainable_(root: nn.Module, surrogate: BinarySurrogate | None = None) -> list[str]:
    """Replace every converted IF neuron under ``root`` by its :class:`TrainableIF` (in place); returns their names.

    Raises:
        ConfigError: A neuron that cannot be fine-tuned (bistable, burst, ISI-corrected), named.
    """
    for name, module in root.named_modules():
        trainable = isinstance(module, IFNeuron) and module.max_spikes == 1 and module.sin_correction in FINETUNABLE_SIN
        if isinstance(module, IFNeuron) and (isinstance(module, BistableIFNeuron) or not trainable):
            raise ConfigError(f"neuron {name} ({module.extra_repr()}) cannot be fine-tuned: {_REFUSAL}")
    return _swap_(root, lambda m: TrainableIF(m, surrogate) if type(m) is IFNeuron else None)


def make_inference_(root: nn.Module) -> list[str]:
    """Replace every :class:`TrainableIF` under ``root`` by the IF neuron it trained (in place)."""
    return _swap_(root, lambda m: m.to_if_neuron() if isinstance(m, TrainableIF) else None)
