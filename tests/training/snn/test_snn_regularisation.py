"""Label smoothing and weight decay in direct SNN training: the loss, the optimizer, the checkpoint and resume."""

import json

import pytest
import torch
from torch.nn import functional as F

from spikeconv.data import Split, dataset_info, load_dataset
from spikeconv.errors import CheckpointError, ConfigError
from spikeconv.models import build_from_notation
from spikeconv.neurons import trainable_neuron_config
from spikeconv.training import (
    Optimizer,
    SnnLoss,
    SnnTrainConfig,
    SnnTrainOutputs,
    load_snn_checkpoint,
    mean_readout_cross_entropy,
    per_step_mse,
    readout_loss,
    train_snn,
)

INFO = dataset_info("digits")
ARCH = {"notation": "32", "input_shape": [1, 8, 8], "num_classes": 10}



def small_mlp():
    torch.manual_seed(0)
    return build_from_notation("32", input_shape=(1, 8, 8), num_classes=10, mean=INFO.mean, std=INFO.std)


def readout_and_labels():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(3, 5, 4, generator=generator), torch.tensor([0, 3, 1, 2, 3])


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.4])
def test_label_smoothing_of_the_cross_entropy_is_torchs(epsilon):
    readout, labels = readout_and_labels()
    expected = F.cross_entropy(readout.mean(0), labels, label_smoothing=epsilon)
    assert torch.equal(mean_readout_cross_entropy(readout, labels, label_smoothing=epsilon), expected)
    assert torch.equal(readout_loss(readout, labels, SnnLoss.CROSS_ENTROPY, label_smoothing=epsilon), expected)


def test_label_smoothing_changes_the_loss_and_its_gradient():
    readout, labels = readout_and_labels()
    for kind in SnnLoss:
        plain, smooth = (readout.clone().requires_grad_() for _ in range(2))
        loss_plain = readout_loss(plain, labels, kind)
        loss_smooth = readout_loss(smooth, labels, kind, label_smoothing=0.2)
        torch.autograd.backward([loss_plain, loss_smooth])
        assert not torch.isclose(loss_plain, loss_smooth) and not torch.allclose(plain.grad, smooth.grad)


def test_per_step_mse_smooths_its_one_hot_target_as_torch_smooths_cross_entropy():
    readout, labels = readout_and_labels()
    epsilon, classes = 0.3, readout.shape[-1]
    target = torch.full((5, classes), epsilon / classes)
    target[torch.arange(5), labels] += 1 - epsilon  # the distribution torch's cross_entropy(label_smoothing) targets
    expected = 0.5 * (readout - target).pow(2).sum(dim=(0, 2)).mean()
    torch.testing.assert_close(per_step_mse(readout, labels, label_smoothing=epsilon), expected)
    assert torch.equal(per_step_mse(readout, labels, label_smoothing=0.0), per_step_mse(readout, labels))


@pytest.mark.parametrize("value", [1.0, -0.1, float("nan"), "0.1", True])
def test_label_smoothing_outside_zero_to_one_is_refused(value):
    with pytest.raises(ConfigError, match="label_smoothing must be in"):
        SnnTrainConfig(label_smoothing=value)


def test_a_config_recorded_before_label_smoothing_existed_reads_as_none():
    old = SnnTrainConfig().to_dict()
    del old["label_smoothing"]
    assert SnnTrainConfig.from_dict(old) == SnnTrainConfig()
    assert SnnTrainConfig(label_smoothing=0.05).to_dict()["label_smoothing"] == 0.05


@pytest.mark.parametrize("optimizer", [Optimizer.SGD, Optimizer.ADAM])
def test_weight_decay_and_label_smoothing_reach_the_optimizer_checkpoint_and_log(tmp_path, optimizer):
    train = load_dataset("digits", split=Split.TRAIN, limit=64)
    config = SnnTrainConfig(neuron=trainable_neuron_config("srif"), timesteps=2, epochs=1, batch_size=32, lr=0.01,
                            optimizer=optimizer, weight_decay=0.003, label_smoothing=0.1)  # fmt: skip
    outputs = SnnTrainOutputs(checkpoint=tmp_path / "snn.pt", log=tmp_path / "snn.log.json", arch=ARCH)
    train_snn(small_mlp(), train, config=config, outputs=outputs, progress=False)
    checkpoint = load_snn_checkpoint(outputs.checkpoint)
    groups = checkpoint.training_state["optimizer"]["param_groups"]
    assert groups and all(group["weight_decay"] == 0.003 for group in groups)
    assert checkpoint.config == config
    log = json.loads(outputs.log.read_text())
    assert (log["config"]["weight_decay"], log["config"]["label_smoothing"]) == (0.003, 0.1)


def test_weight_decay_changes_the_trained_weights():
    train = load_dataset("digits", split=Split.TRAIN, limit=64)
    weights = []
    for decay in (0.0, 0.5):
        config = SnnTrainConfig(timesteps=2, epochs=1, batch_size=32, lr=0.05, weight_decay=decay)
        weights.append(train_snn(small_mlp(), train, config=config, progress=False).snn.state_dict())
    name = next(k for k in weights[0] if k.endswith("weight"))
    assert weights[1][name].norm() < weights[0][name].norm()  # decay shrinks every weight towards 0


@pytest.mark.parametrize("change", [{"weight_decay": 0.001}, {"label_smoothing": 0.1}])
def test_resume_with_other_weight_decay_or_label_smoothing_is_refused(tmp_path, change):
    train = load_dataset("digits", split=Split.TRAIN, limit=64)
    config = SnnTrainConfig(timesteps=2, epochs=1, batch_size=32)
    outputs = SnnTrainOutputs(checkpoint=tmp_path / "snn.pt", arch=ARCH)
    train_snn(small_mlp(), train, config=config, outputs=outputs, progress=False)
    changed = SnnTrainConfig.from_dict({**config.to_dict(), **change})
    with pytest.raises(CheckpointError, match="other training options"):
        train_snn(small_mlp(), train, config=changed, outputs=outputs, resume=True, progress=False)
