"""spikify, tdBN, readout losses and SnnTrainConfig."""

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spikeconv.errors import ConfigError, UnsupportedLayerError
from spikeconv.models import build_model
from spikeconv.neurons import SpikingNetwork, TrainableNeuron, trainable_neuron_config
from spikeconv.training import (
    Optimizer,
    Schedule,
    SnnLoss,
    SnnTrainConfig,
    apply_tdbn_,
    mean_readout_cross_entropy,
    per_step_mse,
    spikify,
)

SRIF_MPR = trainable_neuron_config("srif", mpr=True)


def fmnist_cnn():
    torch.manual_seed(0)
    return build_model("fmnist-cnn", input_shape=(1, 28, 28), num_classes=10, mean=(0.286,), std=(0.353,))


def test_fmnist_cnn_becomes_one_neuron_per_relu_and_is_not_modified():
    model = fmnist_cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    snn = spikify(model, SRIF_MPR, timesteps=3)
    assert isinstance(snn, SpikingNetwork) and snn.timesteps == 3
    assert not any(isinstance(m, nn.ReLU) for m in snn.modules())
    assert [name for name, _ in snn.neurons()] == ["relu1", "relu2", "relu3"]
    assert all(isinstance(n, TrainableNeuron) for _, n in snn.neurons())
    calls = [n for n in snn.body.graph.nodes if n.op == "call_module" and n.target.startswith("relu")]
    assert [c.kwargs["static"] for c in calls] == [True, False, False]  # the conv1 prefix runs once per sample
    out = snn(torch.rand(4, 1, 28, 28), 5)
    assert out.shape == (5, 4, 10)
    assert isinstance(model.relu1, nn.ReLU) and model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert snn.metadata["neuron"] == SRIF_MPR.to_dict()


class Residual(nn.Module):
    """A shared in-place ReLU called twice, a functional ReLU and a static residual join."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        y = self.act(self.c1(x))
        z = self.act(self.c2(y)) + F.relu(y) + self.c1(x)
        return self.fc(torch.flatten(z, 1))


def test_each_call_site_gets_its_own_neuron():
    snn = spikify(Residual(), trainable_neuron_config("mtlif"), timesteps=2)
    names = [name for name, _ in snn.neurons()]
    assert len(names) == 3 and len({id(n) for _, n in snn.neurons()}) == 3
    assert names[0] == "act"  # the first call site keeps the module's path
    assert snn(torch.rand(2, 1, 8, 8), 4).shape == (4, 2, 3)


class Flat(nn.Module):
    def __init__(self, shape_query: bool):
        super().__init__()
        self.shape_query = shape_query
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.fc1 = nn.Linear(3 * 8 * 8, 16)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x):
        h = F.relu(self.conv(x))
        h = h.view(h.size(0), -1) if self.shape_query else torch.flatten(h, 1)
        return self.fc2(F.relu(self.fc1(h)) + 0.1 * self.fc1(torch.flatten(x, 1).repeat(1, 3)))


@pytest.mark.parametrize("neuron", ["srif", "mtlif"])
def test_static_prefix_gives_the_same_result_as_running_everything_over_time(neuron):
    torch.manual_seed(3)
    fast, reference = Flat(shape_query=False), Flat(shape_query=True)
    reference.load_state_dict(fast.state_dict())
    config = trainable_neuron_config(neuron, threshold=0.2) if neuron == "mtlif" else trainable_neuron_config(neuron)
    fast_snn, ref_snn = spikify(fast, config, timesteps=3), spikify(reference, config, timesteps=3)
    assert any(n.kwargs.get("static") for n in fast_snn.body.graph.nodes if n.op == "call_module")
    assert not any(n.kwargs.get("static") for n in ref_snn.body.graph.nodes if n.op == "call_module")
    x = torch.rand(5, 1, 8, 8)
    expected = ref_snn(x, 6)
    assert torch.allclose(fast_snn(x, 6), expected, atol=1e-6)
    assert expected.std() > 0


def test_unsupported_models_raise_one_line_errors():
    with pytest.raises(UnsupportedLayerError, match=r"found module '1' \(GELU\), module '3' \(Sigmoid\)"):
        spikify(nn.Sequential(nn.Linear(4, 4), nn.GELU(), nn.Linear(4, 4), nn.Sigmoid()), SRIF_MPR, timesteps=2)

    class Branchy(nn.Module):
        def forward(self, x):
            return F.relu(x) if x.sum() > 0 else x

    with pytest.raises(UnsupportedLayerError, match="torch.fx cannot trace Branchy"):
        spikify(Branchy(), SRIF_MPR, timesteps=2)
    with pytest.raises(ConfigError, match="no ReLU"):
        spikify(nn.Sequential(nn.Linear(4, 2)), SRIF_MPR, timesteps=2)
    with pytest.raises(ConfigError, match="timesteps"):
        spikify(nn.Sequential(nn.Linear(4, 4), nn.ReLU()), SRIF_MPR, timesteps=0)


def test_tdbn_sets_bn_weights_to_alpha_times_threshold():
    snn = spikify(fmnist_cnn(), trainable_neuron_config("mtlif"), timesteps=2)
    assert apply_tdbn_(snn, threshold=10.0, alpha=0.5) == 3
    for name in ("bn1", "bn2", "bn3"):
        bn = getattr(snn.body, name)
        assert torch.all(bn.weight == 5.0) and torch.all(bn.bias == 0.0)
    with pytest.raises(ConfigError, match="no affine BatchNorm"):
        apply_tdbn_(nn.Sequential(nn.Linear(2, 2)), threshold=1.0)


def test_losses_by_hand():
    readout = torch.tensor([[[2.0, 0.0, 1.0]], [[0.0, 0.0, 3.0]]])  # [T=2, N=1, K=3]
    labels = torch.tensor([2])
    expected_ce = F.cross_entropy(torch.tensor([[1.0, 0.0, 2.0]]), labels)
    assert mean_readout_cross_entropy(readout, labels).item() == pytest.approx(expected_ce.item())
    # t=1: ½(4 + 0 + 0) = 2; t=2: ½(0 + 0 + 4) = 2 -> 4.
    assert per_step_mse(readout, labels).item() == pytest.approx(4.0)


def test_config_round_trips_through_json_and_validates():
    config = SnnTrainConfig(
        neuron=trainable_neuron_config("mtlif", max_spikes=7), timesteps=2, optimizer=Optimizer.ADAM, lr=0.005,
        schedule=Schedule.CONSTANT, loss=SnnLoss.PER_STEP_MSE, tdbn=True,
    )  # fmt: skip
    assert SnnTrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert SnnTrainConfig.from_dict({}) == SnnTrainConfig()
    assert SnnTrainConfig().neuron == SRIF_MPR
    assert SnnTrainConfig.from_dict({"loss": "per-step-mse"}).loss is SnnLoss.PER_STEP_MSE
    for bad in ({"timesteps": 0}, {"lr": -1.0}, {"momentum": 1.0}, {"epochs": 1.5}, {"tdbn": "yes"}, {"bogus": 1}):
        with pytest.raises(ConfigError):
            SnnTrainConfig.from_dict(bad)
    with pytest.raises(ConfigError, match="use SnnLoss.from_name"):
        SnnTrainConfig(loss="mse")
