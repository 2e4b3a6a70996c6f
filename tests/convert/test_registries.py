"""The registries of conversion: methods, threshold rules, converted neurons; and NamedEnum."""

from __future__ import annotations

import pytest

from spikeconv.calibration import THRESHOLD_RULES, available_threshold_rules, register_threshold_rule
from spikeconv.convert import (
    CONVERTED_NEURONS,
    METHODS,
    ConversionMethod,
    ConvertConfig,
    NeuronKind,
    available_methods,
    method_name,
    method_settings,
    register_converted_neuron,
    register_method,
)
from spikeconv.errors import ConfigError
from spikeconv.neurons import IFNeuron, SpikeRecorder, SpikingMaxPool2d, SynchronousDelay


def test_registries_refuse_duplicates():
    with pytest.raises(ConfigError, match="already registered"):
        register_method("rate", lambda *a, **k: None)
    with pytest.raises(ConfigError, match="already registered"):
        register_threshold_rule("max", lambda d: None)
    with pytest.raises(ConfigError, match="already registered"):
        register_converted_neuron(NeuronKind.IF, lambda t, c: None)


def test_names_come_from_the_registries():
    assert METHODS == tuple(available_methods()) == tuple(m.value for m in ConversionMethod)
    assert available_threshold_rules() == list(THRESHOLD_RULES) == ["percentile", "max", "mse", "learned"]
    assert set(CONVERTED_NEURONS) == set(NeuronKind)


def test_method_names_accept_variants():
    assert method_name("CALIBRATED_LIGHT") == method_name(ConversionMethod.CALIBRATED_LIGHT) == "calibrated-light"
    assert ConversionMethod.from_name(" Qcfs_Calibrated ") is ConversionMethod.QCFS_CALIBRATED
    with pytest.raises(ConfigError, match="unknown conversion method 'magic'; choose one of rate, "):
        method_settings("magic", ConvertConfig())


def test_spike_recorders_are_the_spiking_neurons():
    assert isinstance(IFNeuron(1.0), SpikeRecorder)
    assert not isinstance(SpikingMaxPool2d(2), SpikeRecorder) and not isinstance(SynchronousDelay(1), SpikeRecorder)
