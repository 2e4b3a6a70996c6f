"""Stepwise ONNX export: onnxruntime looping the step graph reproduces spikeconv's simulation."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from spikeconv.calibration import CalibrationConfig, MaxThreshold, MseThreshold, PercentileThreshold, calibrate, prepare
from spikeconv.convert import BistableConfig, ConvertConfig, Correction, CorrectionConfig, NeuronKind, convert, correct, method_settings
from spikeconv.errors import ConfigError, UnsupportedLayerError
from spikeconv.files.onnx_step import export_onnx_step, run_onnx_step
from spikeconv.files.step_graph import build_step_graph, register_step_form
from spikeconv.ingest import ingest_module
from spikeconv.models import build_model
from spikeconv.neurons import (
    BinarySpikingNeuron,
    IFNeuron,
    PoissonEncoding,
    Reset,
    SinCorrection,
    SpikingNeuron,
    SynchronousDelay,
    trainable_neuron_config,
)
from spikeconv.training import save_ann_checkpoint, spikify
from spikeconv.workflows import ConvertJob, DataSource, convert_job, load_snn

INFO = {"input_shape": [1, 8, 8], "num_classes": 5, "preprocessing": {"mean": [0.5], "std": [0.3]}}
META_KEYS = ("input", "readout", "state", "timesteps", "num_classes", "input_shape", "readout_meaning", "format_version", "encoding")


class ResidualCnn(nn.Module):
    """Two conv neurons with a residual join, then a max- or average-pool and the readout."""

    def __init__(self, pool: nn.Module, batch_norm: bool = False) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4) if batch_norm else nn.Identity()
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.pool = pool
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x):
        a = torch.relu(self.bn(self.c1((x - 0.5) / 0.3)))
        b = torch.relu(self.c2(a) + a)
        return self.fc(torch.flatten(self.pool(b), 1))


def _images(n: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def _calibrated(pool: nn.Module | None = None, rule=None):
    torch.manual_seed(0)
    model = ResidualCnn(pool or nn.AvgPool2d(2)).eval()
    return calibrate(prepare(ingest_module(model), CalibrationConfig(default=rule or MaxThreshold())), [_images(64, 0)])


def _converted(config: ConvertConfig | None = None, pool: nn.Module | None = None, rule=None):
    return convert(_calibrated(pool, rule), config or ConvertConfig(timesteps=8)).eval()


def _trained(name: str, gain: float = 2.0, **options):
    torch.manual_seed(0)
    model = ResidualCnn(nn.AvgPool2d(2), batch_norm=True)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(gain)
        model.bn.running_mean.uniform_(-0.2, 0.2)
        model.bn.running_var.uniform_(0.5, 1.5)
    return spikify(model, trainable_neuron_config(name, **options), timesteps=8).eval()


def assert_matches(snn, path, x: torch.Tensor, steps: int, inputs: np.ndarray | None = None) -> None:
    """Per-step readouts within 1e-4 (relative to the largest readout) and the same prediction after every step."""
    with torch.no_grad():
        expected = snn(x, steps).numpy()
    got = run_onnx_step(path, x.numpy() if inputs is None else inputs, steps)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert (got.cumsum(0).argmax(-1) == expected.cumsum(0).argmax(-1)).all()


def export_and_check(snn, tmp_path, batches=(1, 5), steps: int = 8) -> tuple[str, dict]:
    path = tmp_path / "net.onnx"
    summary = export_onnx_step(snn, path, info=INFO)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    for n in batches:
        assert_matches(snn, path, _images(n, seed=n), steps)
    return str(path), summary


def test_converted_cnn_with_per_channel_thresholds_corrections_and_a_residual_join(tmp_path):
    calibrated = _calibrated(rule=MseThreshold(4, per_channel=True))
    calibrated = correct(calibrated, [_images(64, 0)], CorrectionConfig(Correction.POTENTIAL, timesteps=4))
    calibrated = correct(calibrated, [_images(64, 0)], CorrectionConfig(Correction.BIAS, timesteps=4))
    snn = convert(calibrated, ConvertConfig(timesteps=8)).eval()
    neurons = dict(snn.neurons())
    assert all(n.threshold.numel() == 4 and n.v_offset.dim() and n.bias.dim() for n in neurons.values())
    path, summary = export_and_check(snn, tmp_path)
    model = onnx.load(path)
    meta = {p.key: p.value for p in model.metadata_props}
    assert set(f"spikeconv.{k}" for k in META_KEYS) <= set(meta)
    assert json.loads(meta["spikeconv.state"]) == summary["state"] and len(summary["state"]) == 2
    assert json.loads(meta["spikeconv.input_shape"]) == [1, 8, 8] and json.loads(meta["spikeconv.timesteps"]) == 8
    assert json.loads(meta["spikeconv.num_classes"]) == 5 and json.loads(meta["spikeconv.format_version"]) == 1
    assert json.loads(meta["spikeconv.encoding"])["name"] == "direct"
    initial = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    for (name, _), (site, neuron) in zip(summary["state"], neurons.items(), strict=True):
        assert name == f"{site}.v"
        start = (neuron.v_init * neuron.threshold.reshape(1, -1, 1, 1) + neuron.v_offset).expand(1, 4, 8, 8)
        np.testing.assert_allclose(initial[name], start.numpy(), rtol=0, atol=1e-7)


def test_first_step_without_state_inputs_equals_feeding_the_initial_state(tmp_path):
    snn = _converted()
    path, summary = export_and_check(snn, tmp_path, batches=(3,), steps=3)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    x = _images(3).numpy()
    initial = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}
    omitted = session.run(None, {"input": x})
    fed = session.run(None, {"input": x, **{name: initial[name] for name, _ in summary["state"]}})
    for a, b in zip(omitted, fed, strict=True):
        np.testing.assert_array_equal(a, b)
    assert [i.name for i in session.get_overridable_initializers()] == [name for name, _ in summary["state"]]
    graph_inputs = [i for i in onnx.load(path).graph.input if i.name != "input"]
    assert [i.name for i in graph_inputs] == [name for name, _ in summary["state"]]
    assert all(i.type.tensor_type.shape.dim[0].dim_param for i in graph_inputs)  # a dynamic batch: 1 at the start, then N


@pytest.mark.parametrize(
    "config",
    [
        ConvertConfig(timesteps=8, reset=Reset.ZERO),
        ConvertConfig(timesteps=8, max_spikes=2),
        ConvertConfig(timesteps=8, sin_correction=SinCorrection.SIGNED),
        ConvertConfig(timesteps=8, sin_correction=SinCorrection.ISI, isi_allowance=0.0),
    ],
    ids=["hard-reset", "burst-2", "signed-sin", "isi-sin"],
)
def test_converted_neuron_variants(config, tmp_path):
    # a low percentile threshold makes neurons busy: bursts of 2 spikes and retracted spikes both occur
    export_and_check(_converted(config, rule=PercentileThreshold(90.0)), tmp_path, steps=12)


def test_spiking_max_pool_network(tmp_path):
    snn = _converted(pool=nn.MaxPool2d(2))
    _, summary = export_and_check(snn, tmp_path)
    assert "SpikingMaxPool2d" in summary["neurons"].values()
    assert [p[0].rsplit(".", 1)[1] for p in summary["state"]][-2:] == ["cumulative", "emitted"]


def test_bistable_neurons_with_a_synchronous_delay(tmp_path):
    class Shortcut(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem, self.conv1, self.conv2 = (nn.Conv2d(c, 4, 3, padding=1) for c in (1, 4, 4))
            self.fc = nn.Linear(4 * 8 * 8, 5)

        def forward(self, x):
            a = torch.relu(self.stem(x))
            return self.fc(torch.relu(self.conv2(torch.relu(self.conv1(a))) + a).flatten(1))

    torch.manual_seed(0)
    config = ConvertConfig(timesteps=8, neuron=NeuronKind.BISTABLE, bistable=BistableConfig(half_period=2))
    snn = convert(calibrate(prepare(ingest_module(Shortcut().eval())), [_images(64, 0)]), config).eval()
    assert any(isinstance(m, SynchronousDelay) for m in snn.body.modules())
    export_and_check(snn, tmp_path, steps=12)


@pytest.mark.parametrize(
    ("name", "options"),
    [("srif", {"mpr": True}), ("lif", {}), ("if", {"mpr": True}), ("mtlif", {"gain": 6.0})],
    ids=["srif-mpr", "lif", "hard-if-mpr", "multi-threshold-lif"],
)
def test_directly_trained_networks_with_batch_norm(name, options, tmp_path):
    export_and_check(_trained(name, **options), tmp_path)


def test_poisson_encoding_takes_one_encoded_step_per_call(tmp_path):
    snn = _converted(ConvertConfig(timesteps=6, encoding=PoissonEncoding(seed=3)))
    path = tmp_path / "net.onnx"
    export_onnx_step(snn, path, info=INFO)
    meta = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert json.loads(meta["spikeconv.encoding"])["name"] == "poisson"
    x = _images(4)
    encoded = snn.encoding.encode(x, 6, 0).reshape(6, 4, 1, 8, 8).numpy()
    assert_matches(snn, path, x, 6, inputs=encoded)


def test_snn_file_from_the_calibrated_method(tmp_path):
    torch.manual_seed(0)
    model = build_model("digits-cnn", input_shape=(1, 8, 8), num_classes=10, mean=(0.3,), std=(0.4,))
    ann = tmp_path / "ann.pt"
    save_ann_checkpoint(ann, model=model, arch="digits-cnn", input_shape=(1, 8, 8), num_classes=10, mean=(0.3,), std=(0.4,), metadata={})
    settings = method_settings("calibrated", ConvertConfig(timesteps=8), target_timesteps=8, correction_samples=64)
    out = tmp_path / "net.snn.pt"
    convert_job(ConvertJob(model=ann, out=out, data=DataSource("digits"), calib_samples=64, calibration=settings.calibration,
                           convert=settings.convert, correction=settings.correction, method="calibrated"), progress=False)  # fmt: skip
    loaded = load_snn(out)
    path = tmp_path / "net.onnx"
    summary = export_onnx_step(loaded.snn, path, info=loaded.info)
    assert summary["timesteps"] == 8 and summary["opset"] == 17
    from spikeconv.data.digits import Split, load_digits_split

    images = load_digits_split(split=Split.TEST).images[:64]
    assert_matches(loaded.snn.eval(), path, images, 8)


class Unknown(SpikingNeuron):
    def reset_state(self) -> None:
        pass

    def forward(self, x, num_steps, static=False):
        return x


class SubclassedIF(IFNeuron):
    """A subclass may change the dynamics, so it is not exported with its parent's form."""


@pytest.mark.parametrize("kind", [Unknown, SubclassedIF])
def test_an_unknown_neuron_is_refused_in_one_line_naming_the_node(kind, tmp_path):
    snn = _converted()
    name = next(iter(dict(snn.neurons())))
    setattr(snn.body, name, kind() if kind is Unknown else kind(1.0))
    path = tmp_path / "net.onnx"
    with pytest.raises(UnsupportedLayerError) as error:
        export_onnx_step(snn, path, info=INFO)
    message = str(error.value)
    assert "\n" not in message and name in message and kind.__name__ in message
    assert not path.exists() and not list(tmp_path.iterdir())


def test_step_graph_in_torch_is_exact_and_registry_refuses_duplicates():
    snn = _converted()
    step = build_step_graph(snn, (1, 8, 8))
    x = _images(5)
    with torch.no_grad():
        expected = snn(x, 6)
        state = [s.initial for s in step.states]
        outs = []
        for _ in range(6):
            out, *state = step.module(x, *state)
            outs.append(out)
    torch.testing.assert_close(torch.stack(outs), expected, rtol=0, atol=0)
    with pytest.raises(ConfigError):
        register_step_form(BinarySpikingNeuron, lambda module, shape: None)


def test_info_without_input_shape_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError):
        export_onnx_step(_converted(), tmp_path / "net.onnx", info={"num_classes": 5})
    assert not list(tmp_path.iterdir())


def test_the_driver_in_the_docs_runs_from_the_metadata_alone(tmp_path):
    import re
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[2] / "docs" / "export_onnx.md").read_text()
    (driver,) = re.findall(r"```python\n(.*?)```", docs, flags=re.S)
    snn = _converted(pool=nn.MaxPool2d(2))
    path = tmp_path / "net.onnx"
    export_onnx_step(snn, path, info=INFO)
    x = _images(5)
    scope = {"path": str(path), "images": x.numpy()}
    exec(compile(driver, "docs/export_onnx.md", "exec"), scope)
    with torch.no_grad():
        expected = snn(x, snn.timesteps).sum(0).argmax(1).numpy()
    np.testing.assert_array_equal(scope["prediction"], expected)
