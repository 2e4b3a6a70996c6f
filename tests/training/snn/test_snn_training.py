"""Direct SNN training on real data, evaluation at other T, checkpoints and exact resume."""

import json

import pytest
import torch

from spikeconv.data import Split, dataset_info, load_dataset
from spikeconv.errors import CheckpointError, ConfigError
from spikeconv.evaluation import timestep_accuracy_curve
from spikeconv.models import build_from_notation
from spikeconv.neurons import trainable_neuron_config
from spikeconv.training import (
    Augment,
    Optimizer,
    Schedule,
    SnnLoss,
    SnnTrainConfig,
    SnnTrainOutputs,
    evaluate_snn,
    load_snn_checkpoint,
    save_ann_checkpoint,
    snn_from_checkpoint,
    train_snn,
)

INFO = dataset_info("digits")
ARCH = {"notation": "128", "input_shape": [1, 8, 8], "num_classes": 10}



def small_mlp(seed=0, notation="128"):
    torch.manual_seed(seed)
    return build_from_notation(notation, input_shape=(1, 8, 8), num_classes=10, mean=INFO.mean, std=INFO.std)


def test_srif_mpr_learns_digits_and_runs_at_any_timestep():
    train = load_dataset("digits", split=Split.TRAIN)
    test = load_dataset("digits", split=Split.TEST)
    model = small_mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config = SnnTrainConfig(timesteps=2, epochs=3, batch_size=64, lr=0.1)  # SRIF + MPR, SGD, cosine
    result = train_snn(model, train, config=config, eval_data=test, progress=False)
    records = result.history.records
    assert [r.epoch for r in records] == [1, 2, 3]
    assert records[-1].eval_accuracy > 80.0  # chance is 10 %; measured ~97 %
    assert records[-1].train_loss < records[0].train_loss
    assert records[-1].lr == pytest.approx(0.0, abs=1e-12)  # cosine decays to 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the user's model is untouched
    snn = result.snn
    assert not snn.training
    # Trained at T = 2, evaluated by the conversion pipeline's curve at T = 1..6 unchanged.
    curve = timestep_accuracy_curve(snn, test, timesteps=6, progress=False)
    assert curve.timesteps == (1, 2, 3, 4, 5, 6)
    assert curve.accuracy_at(2) == pytest.approx(evaluate_snn(snn, test, timesteps=2))
    assert curve.accuracy_at(2) == pytest.approx(records[-1].eval_accuracy)
    assert min(curve.accuracy[1:]) > 80.0


def test_multi_threshold_lif_with_per_step_mse_learns_digits():
    train = load_dataset("digits", split=Split.TRAIN)
    test = load_dataset("digits", split=Split.TEST)
    config = SnnTrainConfig(
        neuron=trainable_neuron_config("mtlif"), timesteps=2, epochs=3, batch_size=64, lr=0.005,
        optimizer=Optimizer.ADAM, loss=SnnLoss.PER_STEP_MSE, tdbn=True,
    )  # fmt: skip
    result = train_snn(small_mlp(), train, config=config, eval_data=test, progress=False)
    assert result.history.final_eval_accuracy > 80.0  # measured ~96 %
    counts = []
    (name, neuron), = result.snn.neurons()
    handle = neuron.register_forward_hook(lambda module, args, out: counts.append(out))
    try:
        result.snn(torch.stack([test[i][0] for i in range(64)]), 2)
    finally:
        handle.remove()
    assert name == "relu1" and torch.equal(counts[0], counts[0].round())
    assert 1 < counts[0].max().item() <= 15  # several spikes in one step do occur


class Interrupt(Exception):
    pass


def stop_after_first_epoch(record):
    if record.epoch == 1:
        raise Interrupt


@pytest.mark.parametrize(
    ("neuron", "optimizer", "schedule"),
    [("srif", Optimizer.SGD, Schedule.COSINE), ("mtlif", Optimizer.ADAM, Schedule.ONE_CYCLE)],
)
def test_interrupted_and_resumed_run_equals_uninterrupted_run(tmp_path, neuron, optimizer, schedule):
    train = load_dataset("digits", split=Split.TRAIN, limit=192)
    config = SnnTrainConfig(
        neuron=trainable_neuron_config(neuron), timesteps=2, epochs=2, batch_size=32, optimizer=optimizer,
        lr=0.05 if optimizer is Optimizer.SGD else 0.005, schedule=schedule, augment=Augment.SHIFT, seed=5, tdbn=neuron == "mtlif",
    )  # fmt: skip
    straight = train_snn(small_mlp(notation="32"), train, config=config, progress=False)

    outputs = SnnTrainOutputs(checkpoint=tmp_path / "run.pt", log=tmp_path / "log.json", arch=ARCH, metadata={"dataset": "digits"})
    with pytest.raises(Interrupt):
        train_snn(small_mlp(notation="32"), train, config=config, outputs=outputs, progress=False, on_epoch_end=stop_after_first_epoch)
    assert load_snn_checkpoint(outputs.checkpoint).epoch == 1
    torch.manual_seed(1234)  # the caller's RNG state must not matter
    resumed = train_snn(small_mlp(seed=99, notation="32"), train, config=config, outputs=outputs, resume=True, progress=False)

    expected, got = straight.snn.state_dict(), resumed.snn.state_dict()
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert [r.train_loss for r in resumed.history.records] == [r.train_loss for r in straight.history.records]
    log = json.loads(outputs.log.read_text())
    assert [e["epoch"] for e in log["epochs"]] == [1, 2] and log["arch"] == ARCH
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.json", "run.pt"]  # no temporary files left


def test_checkpoint_rebuilds_the_network_and_guards_resume(tmp_path):
    train = load_dataset("digits", split=Split.TRAIN, limit=128)
    config = SnnTrainConfig(timesteps=3, epochs=1, batch_size=32)
    outputs = SnnTrainOutputs(checkpoint=tmp_path / "snn.pt", arch=ARCH)
    trained = train_snn(small_mlp(), train, config=config, outputs=outputs, progress=False).snn
    checkpoint = load_snn_checkpoint(outputs.checkpoint)
    assert (checkpoint.arch, checkpoint.epoch, checkpoint.timesteps) == (ARCH, 1, 3)
    assert checkpoint.config == config and checkpoint.neuron == config.neuron
    assert checkpoint.metadata["torch_version"] == str(torch.__version__)
    payload = torch.load(outputs.checkpoint, weights_only=True)
    assert payload["format"] == "spikeconv-snn-trained" and payload["neuron"] == config.neuron.to_dict()

    rebuilt = snn_from_checkpoint(checkpoint, small_mlp(seed=7))
    x = torch.rand(6, 1, 8, 8)
    assert torch.equal(rebuilt(x, 5), trained(x, 5))
    assert rebuilt.timesteps == 3 and not rebuilt.training

    with pytest.raises(CheckpointError, match="does not match the checkpoint's architecture"):
        snn_from_checkpoint(checkpoint, small_mlp(notation="64"))
    with pytest.raises(CheckpointError, match="other training options"):
        train_snn(small_mlp(), train, config=SnnTrainConfig(timesteps=2, epochs=1, batch_size=32), outputs=outputs, resume=True,
                  progress=False)  # fmt: skip
    done = train_snn(small_mlp(seed=3), train, config=config, outputs=outputs, resume=True, progress=False)
    assert torch.equal(done.snn(x, 5), trained(x, 5))  # already complete: nothing retrained
    with pytest.raises(ConfigError, match="resume needs a checkpoint path"):
        train_snn(small_mlp(), train, config=config, resume=True, progress=False)


def test_foreign_or_damaged_files_are_rejected(tmp_path):
    ann_file = tmp_path / "ann.pt"
    save_ann_checkpoint(ann_file, model=small_mlp(), arch="128", input_shape=(1, 8, 8), num_classes=10, mean=None, std=None, metadata={})
    with pytest.raises(CheckpointError, match="not a spikeconv SNN training checkpoint"):
        load_snn_checkpoint(ann_file)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_snn_checkpoint(garbage)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_snn_checkpoint(tmp_path / "missing.pt")
