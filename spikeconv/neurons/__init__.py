"""Spiking neurons, encoders and the SpikingNetwork that runs them over time."""

from spikeconv.neurons.dynamics import if_step, multi_spike_if_step
from spikeconv.neurons.encoding import (
    DirectEncoding,
    Encoding,
    PoissonEncoding,
    encoding_from_dict,
    encoding_from_name,
    encoding_to_dict,
)
from spikeconv.neurons.if_neuron import IFNeuron, SpikingNeuron
from spikeconv.neurons.kernels import available_if_kernels, if_kernel, register_if_kernel
from spikeconv.neurons.network import SpikingNetwork, check_timesteps
from spikeconv.neurons.strategies import Kernel, Reset
from spikeconv.neurons.time import repeat_over_time

__all__ = [
    "DirectEncoding",
    "Encoding",
    "IFNeuron",
    "Kernel",
    "PoissonEncoding",
    "Reset",
    "SpikingNetwork",
    "SpikingNeuron",
    "available_if_kernels",
    "check_timesteps",
    "encoding_from_dict",
    "encoding_from_name",
    "encoding_to_dict",
    "if_kernel",
    "if_step",
    "multi_spike_if_step",
    "register_if_kernel",
    "repeat_over_time",
]
