"""Spiking neurons, encoders and the SpikingNetwork that runs them over time."""

from spikeconv.neurons.bistable import BistableIFNeuron, SynchronousDelay, bistable_phase
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
from spikeconv.neurons.mpr import MPR_EPS, mpr, mpr_derivative
from spikeconv.neurons.multi_threshold import MultiThresholdConfig, MultiThresholdLIF, ResetDecay, multi_threshold_step
from spikeconv.neurons.network import SpikingNetwork, check_timesteps
from spikeconv.neurons.recording import SpikeRecorder
from spikeconv.neurons.sin_correction import isi_if_step, signed_if_step
from spikeconv.neurons.spiking_maxpool import SpikingMaxPool2d, max_pool_gate_step
from spikeconv.neurons.strategies import Charge, Kernel, Reset, SinCorrection
from spikeconv.neurons.surrogates import (
    Atan,
    BinarySurrogate,
    CombMax,
    CombRational,
    CombSum,
    MultiSpikeSurrogate,
    Rectangular,
    Sigmoid,
    Surrogate,
    SurrogateKind,
    available_surrogates,
    register_surrogate,
    surrogate_from_dict,
    surrogate_from_name,
)
from spikeconv.neurons.time import repeat_over_time
from spikeconv.neurons.trainable import BinaryNeuronConfig, BinarySpikingNeuron, binary_neuron_step
from spikeconv.neurons.trainable_base import TrainableNeuron
from spikeconv.neurons.trainable_presets import (
    NeuronConfig,
    available_trainable_neurons,
    neuron_config_from_dict,
    register_trainable_neuron,
    trainable_neuron_config,
)

__all__ = [
    "BistableIFNeuron",
    "SynchronousDelay",
    "bistable_phase",
    "Atan",
    "BinaryNeuronConfig",
    "BinarySpikingNeuron",
    "BinarySurrogate",
    "Charge",
    "CombMax",
    "CombRational",
    "CombSum",
    "DirectEncoding",
    "Encoding",
    "IFNeuron",
    "SinCorrection",
    "SpikeRecorder",
    "isi_if_step",
    "signed_if_step",
    "Kernel",
    "MPR_EPS",
    "MultiSpikeSurrogate",
    "MultiThresholdConfig",
    "MultiThresholdLIF",
    "NeuronConfig",
    "PoissonEncoding",
    "Rectangular",
    "Reset",
    "ResetDecay",
    "Sigmoid",
    "SpikingMaxPool2d",
    "SpikingNetwork",
    "SpikingNeuron",
    "Surrogate",
    "SurrogateKind",
    "TrainableNeuron",
    "available_if_kernels",
    "available_surrogates",
    "available_trainable_neurons",
    "binary_neuron_step",
    "check_timesteps",
    "encoding_from_dict",
    "encoding_from_name",
    "encoding_to_dict",
    "if_kernel",
    "if_step",
    "max_pool_gate_step",
    "mpr",
    "mpr_derivative",
    "multi_spike_if_step",
    "multi_threshold_step",
    "neuron_config_from_dict",
    "register_if_kernel",
    "register_surrogate",
    "register_trainable_neuron",
    "repeat_over_time",
    "surrogate_from_dict",
    "surrogate_from_name",
    "trainable_neuron_config",
]
