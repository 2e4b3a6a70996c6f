"""Trainable neurons: hand-computed sequences, MPR invariance, multi-threshold counts, gradients."""

import dataclasses

import pytest
import torch

from spikeconv.errors import ConfigError, DataError
from spikeconv.neurons import (
    Atan,
    BinaryNeuronConfig,
    Charge,
    CombMax,
    MultiThresholdConfig,
    Rectangular,
    Reset,
    ResetDecay,
    TrainableNeuron,
    available_trainable_neurons,
    if_step,
    mpr,
    mpr_derivative,
    neuron_config_from_dict,
    register_trainable_neuron,
    trainable_neuron_config,
)

# InfLoR Fig. 2: weighted inputs 1.5, 1.2, 1.5, 0.9, 1.4 (x V_th) over five steps.
INFLOR_INPUTS = [1.5, 1.2, 1.5, 0.9, 1.4]


def run(config, inputs, num_steps=None):
    """Feed a [T, ...] input sequence to a fresh neuron; return [T, ...] outputs."""
    x = torch.as_tensor(inputs, dtype=torch.float64)
    x = x.reshape(x.shape[0], 1, *x.shape[1:]) if x.dim() == 1 else x
    neuron = config.build().double()
    out = neuron(x.flatten(0, 1), num_steps or x.shape[0])
    return out.reshape(x.shape), neuron


def test_inflor_worked_example_srif_three_spikes_if_four():
    threshold = 0.5
    inputs = [v * threshold for v in INFLOR_INPUTS]
    srif, _ = run(trainable_neuron_config("srif"), inputs)
    hard, _ = run(trainable_neuron_config("if"), inputs)
    assert srif.flatten().tolist() == [1, 0, 1, 1, 0]  # H: .75 | .35 | 1.1 | .55 | .25 (U = H − O)
    assert hard.flatten().tolist() == [1, 1, 1, 0, 1]  # H: .75 | .6 | .75 | .45 | 1.15 (U = 0 after a spike)
    # The paper's "three vs four" needs V_th = 0.5 with the spike VALUE 1 subtracted: subtracting
    # V_th instead (the conversion neuron's soft reset) fires at every one of the five steps.
    v, conversion_spikes = torch.zeros(1), 0
    for value in inputs:
        out, v = if_step(torch.tensor([value]), v, torch.tensor(threshold), Reset.SUBTRACT)
        conversion_spikes += int(out.item() > 0)
    assert conversion_spikes == 5


def test_srif_keeps_the_residual_membrane():
    out, neuron = run(trainable_neuron_config("srif"), [0.75, 0.25])
    assert out.flatten().tolist() == [1, 0]
    assert neuron._v.item() == pytest.approx(0.0)  # 0.75 − 1 + 0.25


def test_lif_hand_sequence():
    # τ = 2: H = U + (X − U)/2. H: 0.4 | 0.6 (spike, U = 0) | 0.4 | 0.3.
    out, neuron = run(trainable_neuron_config("lif"), [0.8, 0.8, 0.8, 0.2])
    assert out.flatten().tolist() == [0, 1, 0, 0]
    assert neuron._v.item() == pytest.approx(0.3)


@pytest.mark.parametrize("name", ["srif", "if", "lif"])
def test_mpr_changes_no_forward_spike(name):
    gen = torch.Generator().manual_seed(0)
    inputs = torch.rand(12, 64, generator=gen, dtype=torch.float64) * 1.2 - 0.3
    plain, plain_neuron = run(trainable_neuron_config(name), inputs)
    rectified, mpr_neuron = run(trainable_neuron_config(name, mpr=True), inputs)
    assert torch.equal(plain, rectified)
    assert torch.equal(plain_neuron._v, mpr_neuron._v)  # the true membrane is not rectified
    assert plain.sum() > 50 and (1 - plain).sum() > 50  # both spikes and silences occurred


def test_mpr_gradient_is_surrogate_at_phi_times_phi_prime():
    h = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.95, 1.2, -0.2], dtype=torch.float64, requires_grad=True)
    for surrogate in (Rectangular(), Atan()):
        neuron = trainable_neuron_config("srif", mpr=True, surrogate=surrogate).build().double()
        (grad,) = torch.autograd.grad(neuron(h, 1).sum(), h)
        expected = surrogate.derivative(mpr(h.detach()) - 0.5) * mpr_derivative(h.detach())
        assert torch.allclose(grad, expected)


def test_reset_gradient_flows_unless_detached():
    x = torch.tensor([0.7, 0.9], dtype=torch.float64, requires_grad=True)
    grads = {}
    for detach in (False, True):
        neuron = trainable_neuron_config("srif", detach_reset=detach).build().double()
        out = neuron(x, 2)
        (grads[detach],) = torch.autograd.grad(out[1].sum(), x)
    # H1 = 0.7 fires (U1 = −0.3), H2 = 0.6 fires; the window gives σ' = 1 at both. dO2/dX2 = 1, and
    # dO2/dX1 = σ'(H2 − θ)·(1 − σ'(H1 − θ)) = 0 through the reset, or 1 with the reset detached.
    assert grads[False].tolist() == [0.0, 1.0]
    assert grads[True].tolist() == [1.0, 1.0]


@pytest.mark.parametrize(("reset_decay", "states"), [(ResetDecay.UNDECAYED, [2.5, 4.95]), (ResetDecay.DECAYED, [4.5, 6.75])])
def test_multi_threshold_hand_sequence(reset_decay, states):
    config = MultiThresholdConfig(reset_decay=reset_decay)  # V_th 10, k 0.9, Γ 15
    neuron = config.build().double()
    outputs = []
    for value in [25.0, 3.0]:
        outputs.append(neuron(torch.tensor([value], dtype=torch.float64), 1).item())
        assert neuron._v.item() == pytest.approx(states[len(outputs) - 1])
    assert outputs == [2.0, 0.0]  # ⌊25/10⌋ = 2; then 2.5 + 3 (or 4.5 + 3) < 10
    assert neuron(torch.tensor([500.0], dtype=torch.float64), 1).item() == 15.0  # capped at Γ


def test_multi_threshold_counts_and_cap():
    u = torch.tensor([-3.0, 0.0, 0.99, 1.0, 2.5, 3.0, 3.99, 4.0, 100.0], dtype=torch.float64)
    for gamma in (1, 3, 15):
        out, _ = run(MultiThresholdConfig(threshold=1.0, decay=0.0, max_spikes=gamma), u.reshape(1, -1))
        expected = torch.clamp(torch.floor(u), 0, gamma)
        assert torch.equal(out.flatten(), expected)
        assert out.max().item() == gamma and out.min().item() == 0


def test_multi_threshold_without_leak_conserves_charge():
    inputs = torch.randint(-8, 40, (30, 50), generator=torch.Generator().manual_seed(2)).double() / 4
    out, neuron = run(MultiThresholdConfig(threshold=1.0, decay=1.0, max_spikes=3), inputs)
    assert torch.allclose(out.sum(0) * 1.0 + neuron._v.flatten(), inputs.sum(0))
    assert out.max() == 3  # the cap was hit, and the excess was kept for later steps


@pytest.mark.parametrize("name", available_trainable_neurons())
def test_contract_shapes_static_chunks_state_and_gradient(name):
    config = trainable_neuron_config(name)
    gen = torch.Generator().manual_seed(1)
    scale = config.threshold * 2
    x = torch.rand(2, 3, 4, generator=gen) * scale
    static_out = config.build()(x, 5, static=True)
    assert static_out.shape == (10, 3, 4)
    assert torch.equal(static_out, config.build()(x.repeat(5, 1, 1), 5))
    seq = (torch.rand(6 * 2, 3, 4, generator=gen) * scale).requires_grad_(True)
    whole = config.build()(seq, 6)
    chunked_neuron = config.build()
    chunked = torch.cat([chunked_neuron(seq[:4], 2), chunked_neuron(seq[4:], 4)])
    assert torch.equal(whole, chunked)  # the membrane carries across calls
    chunked_neuron.reset_state()
    assert chunked_neuron._v is None
    assert torch.equal(chunked_neuron(seq[:4], 2), whole[:4])
    (grad,) = torch.autograd.grad(whole.sum(), seq)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert isinstance(config.build(), TrainableNeuron)
    assert "threshold" in dict(config.build().named_buffers())
    with pytest.raises(DataError, match="multiple of num_steps=5"):
        config.build()(seq, 5)


@pytest.mark.parametrize("name", available_trainable_neurons())
def test_config_dict_round_trip(name):
    config = trainable_neuron_config(name)
    assert neuron_config_from_dict(config.to_dict()) == config
    if isinstance(config, BinaryNeuronConfig):
        other = dataclasses.replace(config, mpr=True, surrogate=Atan(alpha=3.0), detach_reset=True)
    else:
        other = dataclasses.replace(config, surrogate=CombMax(a=0.5, b=2.0), reset_decay=ResetDecay.DECAYED, max_spikes=3)
    assert neuron_config_from_dict(other.to_dict()) == other


def test_presets_are_what_their_names_say():
    assert trainable_neuron_config("if") == BinaryNeuronConfig(charge=Charge.IF, reset=Reset.ZERO)
    assert trainable_neuron_config("lif") == BinaryNeuronConfig(charge=Charge.LIF, reset=Reset.ZERO, tau=2.0)
    srif_mpr = trainable_neuron_config("SRIF", mpr=True)
    assert (srif_mpr.charge, srif_mpr.reset, srif_mpr.mpr, srif_mpr.threshold) == (Charge.IF, Reset.SUBTRACT, True, 0.5)
    mt = trainable_neuron_config("mtlif")
    assert (mt.threshold, mt.decay, mt.max_spikes, mt.surrogate) == (10.0, 0.9, 15, CombMax(a=1.0, b=20.0))


def test_invalid_configurations_raise_one_line_errors():
    with pytest.raises(ConfigError, match="MPR is defined for threshold 0.5"):
        trainable_neuron_config("srif", mpr=True, threshold=1.0)
    with pytest.raises(ConfigError, match="binary surrogate"):
        BinaryNeuronConfig(surrogate=CombMax())
    with pytest.raises(ConfigError, match="multi-spike surrogate"):
        MultiThresholdConfig(surrogate=Rectangular())
    with pytest.raises(ConfigError, match="max_spikes"):
        MultiThresholdConfig(max_spikes=0)
    with pytest.raises(ConfigError, match="decay"):
        MultiThresholdConfig(decay=1.5)
    with pytest.raises(ConfigError, match="tau must be >= 1"):
        trainable_neuron_config("lif", tau=0.5)
    with pytest.raises(ConfigError, match="Charge and Reset"):
        BinaryNeuronConfig(charge="if")
    with pytest.raises(ConfigError, match="unknown neuron 'relu'"):
        trainable_neuron_config("relu")
    with pytest.raises(ConfigError, match="no option.*max_spikes"):
        trainable_neuron_config("srif", max_spikes=3)
    with pytest.raises(ConfigError, match="already registered"):
        register_trainable_neuron("srif", BinaryNeuronConfig)
    with pytest.raises(ConfigError, match="type"):
        neuron_config_from_dict({"type": "izhikevich"})
