"""spikeconv.convert(model, batches, method=...) applies exactly the settings `spikeconv convert --method` applies."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

import spikeconv
from spikeconv.data import Split, calibration_subset, load_dataset
from spikeconv.errors import ConfigError
from spikeconv.models import build_model
from spikeconv.models.activations import ActivationSpec, apply_activation_
from spikeconv.neurons import SinCorrection
from spikeconv.training import FinetuneBudget, save_ann_checkpoint
from spikeconv.workflows import ConvertJob, DataSource, convert_from_options, convert_job, settings_from_options

SHAPE = (1, 8, 8)


def _model(activation: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("digits-cnn", input_shape=SHAPE, num_classes=10)
    if activation == "qcfs":
        apply_activation_(model, ActivationSpec.from_dict({"kind": "qcfs", "levels": 4}))
    return model.eval()


@pytest.mark.parametrize("method", spikeconv.METHODS)
def test_api_method_gives_the_cli_plan_and_network(method, tmp_path):
    activation = "qcfs" if method.startswith("qcfs") else "relu"
    model = _model(activation)
    ckpt = tmp_path / "ann.pt"
    save_ann_checkpoint(ckpt, model=model, arch="digits-cnn", input_shape=SHAPE, num_classes=10, mean=None, std=None, metadata={},
                        activation=None if activation == "relu" else {"kind": "qcfs", "levels": 4})  # fmt: skip
    base = convert_from_options(reset="subtract", v_init=0.5, encoding="direct", seed=0, timesteps=4)
    settings = settings_from_options(method, base, target_timesteps=4, correction_samples=128, threshold=None, percentile=None,
                                     per_channel=False, max_spikes=None)  # fmt: skip
    budget = FinetuneBudget(samples=64, batch_size=32) if settings.finetune else None  # hybrid trains: the same tiny budget in both
    job = ConvertJob(model=ckpt, out=tmp_path / "cli.snn.pt", data=DataSource("digits"), calib_samples=128, method=method,
                     calibration=settings.calibration, convert=settings.convert, correction=settings.correction,
                     finetune=budget, finetune_timesteps=4)  # fmt: skip
    cli = convert_job(job, progress=False)
    train = load_dataset("digits", split=Split.TRAIN)
    subset = calibration_subset(train, num_samples=128, seed=0)
    snn = spikeconv.convert(model, DataLoader(subset, batch_size=256), method=method, timesteps=4, correction_samples=128,
                            train_data=train, finetune=budget)  # fmt: skip
    plan = snn.metadata["plan"]
    assert plan["thresholds"] == cli.plan.to_dict()["thresholds"] and plan["corrections"] == cli.plan.to_dict()["corrections"]
    assert snn.metadata["convert"] == cli.snn.metadata["convert"]
    x = torch.rand(5, *SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(snn(x, 6), cli.snn(x, 6))


def test_api_takes_lists_generators_and_model_files(tmp_path):
    model = _model("relu")
    batches = [torch.rand(32, *SHAPE) for _ in range(3)]
    from_list = spikeconv.convert(model, batches, method="rate")
    from_generator = spikeconv.convert(model, (b for b in batches), method="calibrated-light", timesteps=4)
    onnx_path = tmp_path / "m.onnx"
    torch.onnx.export(model, (torch.rand(1, *SHAPE),), str(onnx_path), dynamo=False)
    from_file = spikeconv.convert(onnx_path, batches, method="rate")
    assert from_list.metadata["plan"]["thresholds"].keys() and from_generator.metadata["plan"]["corrections"]
    x = torch.rand(4, *SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(from_file(x, 8), from_list(x, 8), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", ["rate", "calibrated"])
def test_api_keeps_the_neuron_settings_of_the_given_config(method):
    """A method sets thresholds and corrections; a SIN correction asked for in ``config`` stays."""
    config = spikeconv.ConvertConfig(sin_correction=SinCorrection.SIGNED)
    snn = spikeconv.convert(_model("relu"), [torch.rand(32, *SHAPE)], method=method, timesteps=4, config=config)
    neurons = [n for _, n in snn.neurons()]
    assert neurons and all(n.sin_correction is SinCorrection.SIGNED for n in neurons)
    assert snn.metadata["convert"]["sin_correction"] == "signed"


@pytest.mark.parametrize("kwargs, message", [({"method": "magic"}, "unknown conversion method"), ({"timesteps": 0}, "timesteps")])
def test_api_refuses_bad_options(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        spikeconv.convert(_model("relu"), [torch.rand(4, *SHAPE)], **kwargs)


def test_hybrid_needs_labelled_training_data():
    with pytest.raises(spikeconv.ConfigError, match="train_data"):
        spikeconv.convert(_model("relu"), [torch.rand(32, *SHAPE)], method="hybrid", timesteps=2)
