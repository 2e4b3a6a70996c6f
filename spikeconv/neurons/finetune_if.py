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
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from spikeconv.errors import ConfigError
from spikeconv.neurons.bistable import BistableIFNeuron
from spikeconv.neurons.if_neuron import IFNeuron, SpikingNeuron
from spikeconv.neurons.strategies import Reset, SinCorrection
from spikeconv.neurons.surrogates import BinarySurrogate, Rectangular

__all__ = ["MIN_THRESHOLD", "TrainableIF", "make_inference_", "make_trainable_"]

MIN_THRESHOLD = 1e-4
"""θ is kept above this during training (a threshold must stay positive)."""


class TrainableIF(SpikingNeuron):
    """The trainable twin of one converted :class:`IFNeuron` (one spike per step, no SIN correction).

    Args:
        neuron: The converted neuron whose threshold, initial charge and corrections start the training.
        surrogate: The binary surrogate applied to ``(H − θ)/θ``.
    """

    def __init__(self, neuron: IFNeuron, surrogate: BinarySurrogate | None = None) -> None:
        super().__init__()
        if type(neuron) is not IFNeuron:
            raise ConfigError(f"only converted IF neurons are fine-tuned, not {type(neuron).__name__}")
        if neuron.max_spikes != 1 or neuron.sin_correction is not SinCorrection.NONE:
            raise ConfigError("fine-tuning needs one spike per step and no SIN correction (convert with --sin-correction none, Γ = 1)")
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
        self.surrogate = surrogate if surrogate is not None else Rectangular()
        self._v: Tensor | None = None

    def reset_state(self) -> None:
        self._v = None

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
        v = self._v
        if v is None or v.shape != inputs[0].shape:
            v = (self.v_init.to(x.dtype) * th + self.v_offset.to(x.dtype)).expand(inputs[0].shape)
        outputs = []
        for step_input in inputs:
            h = v + (step_input + bias)
            spikes = self.surrogate.spike((h - th) / th)
            out = spikes * th
            v = h - out if self.reset is Reset.SUBTRACT else h * (1.0 - spikes)
            outputs.append(out)
        self._v = v
        return torch.cat(outputs)

    def to_if_neuron(self) -> IFNeuron:
        """The inference neuron with the trained values (the fast kernels run it again)."""
        neuron = IFNeuron(self.threshold.detach().clamp_min(MIN_THRESHOLD).clone(), v_init=float(self.v_init), reset=self.reset,
                          kernel=self.kernel)  # fmt: skip
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
        ConfigError: A neuron that cannot be fine-tuned (bistable, burst, SIN-corrected), named.
    """
    for name, module in root.named_modules():
        plain = isinstance(module, IFNeuron) and module.max_spikes == 1 and module.sin_correction is SinCorrection.NONE
        if isinstance(module, IFNeuron) and (isinstance(module, BistableIFNeuron) or not plain):
            raise ConfigError(f"neuron {name} ({module.extra_repr()}) cannot be fine-tuned: hybrid needs plain IF neurons "
                              "(one spike per step, no SIN correction, not bistable)")  # fmt: skip
    return _swap_(root, lambda m: TrainableIF(m, surrogate) if type(m) is IFNeuron else None)


def make_inference_(root: nn.Module) -> list[str]:
    """Replace every :class:`TrainableIF` under ``root`` by the IF neuron it trained (in place)."""
    return _swap_(root, lambda m: m.to_if_neuron() if isinstance(m, TrainableIF) else None)
