"""Convert: calibrated ANN graphs -> SpikingNetwork, with optional low-latency corrections."""

from spikeconv.convert.bistable import BistableConfig
from spikeconv.convert.config import ConvertConfig, NeuronKind
from spikeconv.convert.corrections import Correction, CorrectionConfig, correct
from spikeconv.convert.maxpool import MaxPoolMode
from spikeconv.convert.methods import (
    CONVERSION_METHODS,
    METHODS,
    ConversionMethod,
    MethodOverrides,
    MethodSettings,
    available_methods,
    method_name,
    method_settings,
    recipe,
    register_method,
)
from spikeconv.convert.neurons import (
    CONVERTED_NEURONS,
    ConvertedNeuron,
    available_converted_neurons,
    converted_neuron,
    register_converted_neuron,
)
from spikeconv.convert.rate_code_ann import RateCodeQuantizer, rate_code_ann
from spikeconv.convert.rewrite import convert
from spikeconv.convert.time_layout import TimeKind

__all__ = [
    "CONVERSION_METHODS",
    "CONVERTED_NEURONS",
    "METHODS",
    "BistableConfig",
    "ConversionMethod",
    "ConvertedNeuron",
    "ConvertConfig",
    "Correction",
    "CorrectionConfig",
    "MaxPoolMode",
    "MethodOverrides",
    "MethodSettings",
    "NeuronKind",
    "RateCodeQuantizer",
    "TimeKind",
    "available_converted_neurons",
    "available_methods",
    "convert",
    "converted_neuron",
    "correct",
    "method_name",
    "method_settings",
    "rate_code_ann",
    "recipe",
    "register_converted_neuron",
    "register_method",
]
