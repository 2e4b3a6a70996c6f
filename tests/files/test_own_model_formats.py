"""Every model format convert accepts is detected from the file, and rebuilds without the original."""

from __future__ import annotations

import textwrap

import pytest
import torch
from torch import nn

from spikeconv.errors import CheckpointError, ConfigError
from spikeconv.files import canonical_graph
from spikeconv.models import build_model
from spikeconv.training import save_ann_checkpoint
from spikeconv.workflows import ModelSpec, load_ann, rebuild_ann

SHAPE = (1, 8, 8)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_model("digits-cnn", input_shape=SHAPE, num_classes=10).eval()


def _same_function(loaded, model, x=None):
    x = torch.rand(6, *SHAPE) if x is None else x
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), model(x), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(rebuild_ann(loaded.source)(x), model(x), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(canonical_graph(loaded.source)(x), model(x), rtol=1e-4, atol=1e-5)


def test_spikeconv_checkpoint(model, tmp_path):
    path = tmp_path / "ann.pt"
    save_ann_checkpoint(path, model=model, arch="digits-cnn", input_shape=SHAPE, num_classes=10, mean=None, std=None, metadata={})
    loaded = load_ann(path)
    assert loaded.description == "spikeconv checkpoint" and loaded.input_shape == SHAPE
    _same_function(loaded, model)


@pytest.mark.parametrize("suffix", [".onnx", ".bin"])
def test_onnx_file_is_detected_by_content(model, tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    torch.onnx.export(model, (torch.rand(1, *SHAPE),), str(path), dynamo=False, dynamic_axes={"input": {0: "n"}}, input_names=["input"])
    loaded = load_ann(path)
    assert loaded.description == "ONNX file" and loaded.input_shape == SHAPE and loaded.input_shape_from == "file"
    assert loaded.num_classes == 10 and loaded.source["kind"] == "onnx"
    _same_function(loaded, model)


def test_torch_export_program_is_detected_and_embedded(model, tmp_path):
    path = tmp_path / "model.weights"  # any name: the content tells
    torch.export.save(torch.export.export(model, (torch.rand(1, *SHAPE),)), path)
    loaded = load_ann(path)
    assert loaded.description == "torch.export program" and loaded.source["kind"] == "torch-export"
    path.unlink()  # the source record holds the program's bytes
    _same_function(loaded, model)


def test_state_dict_needs_arch_and_then_rebuilds(model, tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)  # DataParallel-style
    with pytest.raises(ConfigError, match="holds only weights .*--arch SPEC or --model-factory"):
        load_ann(path)
    loaded = load_ann(path, ModelSpec(arch="digits-cnn"), data_shape=SHAPE)
    assert loaded.num_classes == 10 and loaded.input_shape_from == "data"
    assert loaded.description == "state_dict + --arch digits-cnn"
    _same_function(loaded, model)
    with pytest.raises(CheckpointError, match="do not fit architecture 'mlp'"):
        load_ann(path, ModelSpec(arch="mlp"), data_shape=SHAPE)


def _factory_file(tmp_path, body: str):
    path = tmp_path / "my_factory.py"
    path.write_text(textwrap.dedent(body))
    return path


FACTORY = """
    import torch
    from torch import nn

    def build():
        return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 10))

    def trained():
        torch.manual_seed(1)
        return build()

    def not_a_module():
        return 3
"""


def test_factory_with_a_state_dict_and_with_its_own_weights(tmp_path):
    factory = _factory_file(tmp_path, FACTORY)
    torch.manual_seed(2)
    reference = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 10)).eval()
    weights = tmp_path / "w.pt"
    torch.save(reference.state_dict(), weights)
    loaded = load_ann(weights, ModelSpec(factory=f"{factory}:build"), data_shape=SHAPE)
    assert loaded.source["kind"] == "torch-export" and "with weights w.pt" in loaded.description
    factory.unlink()  # the SNN source needs neither the factory nor its file
    _same_function(loaded, reference)


def test_factory_as_package_module(tmp_path, monkeypatch):
    _factory_file(tmp_path, FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = load_ann(None, ModelSpec(factory="my_factory:trained", input_shape=SHAPE))
    assert loaded.input_shape_from == "--input-shape" and "its own weights" in loaded.description
    torch.manual_seed(1)
    _same_function(loaded, nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 10)).eval())


@pytest.mark.parametrize(
    "factory, message",
    [
        ("{tmp}/missing.py:build", "missing.py does not exist"),
        ("{file}:nowhere", "defines no 'nowhere'"),
        ("{file}:not_a_module", "returned an object of type int, not a torch.nn.Module"),
        ("no_such_package_xyz.models:build", "cannot import module 'no_such_package_xyz.models'"),
        ("{file}", "names no function"),
    ],
)
def test_factory_errors(tmp_path, factory, message):
    file = _factory_file(tmp_path, FACTORY)
    with pytest.raises(ConfigError, match=message):
        load_ann(None, ModelSpec(factory=factory.format(tmp=tmp_path, file=file)), data_shape=SHAPE)


def test_pickled_module_is_refused_unless_trusted(model, tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(model, path)
    with pytest.raises(CheckpointError) as error:
        load_ann(path)
    message = str(error.value)
    assert "pickled Python objects" in message and "can run code" in message and "--trust-pickle" in message
    assert "state_dict" in message and "torch.export" in message and "\n" not in message
    loaded = load_ann(path, ModelSpec(trust_pickle=True), data_shape=SHAPE)
    assert loaded.description == "pickled nn.Module (--trust-pickle)" and loaded.source["kind"] == "torch-export"
    _same_function(loaded, model)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"this is not a model", "not a model file spikeconv can read; give a spikeconv checkpoint"),
        ("torchscript", "TorchScript archive"),
        ({"format": "spikeconv-snn"}, "already a spiking network"),
        ({"epoch": 3}, "holds a dict that is neither a model nor a state_dict"),
    ],
    ids=["garbage", "torchscript", "snn-file", "other-dict"],
)
def test_unknown_files_are_named_with_the_accepted_formats(model, tmp_path, content, message):
    path = tmp_path / "thing.pt"
    if content == "torchscript":
        torch.jit.save(torch.jit.trace(model, torch.rand(1, *SHAPE)), str(path))
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(CheckpointError, match=message) as error:
        load_ann(path)
    assert str(path) in str(error.value)


def test_options_that_contradict_the_file_are_refused(model, tmp_path):
    ckpt = tmp_path / "ann.pt"
    save_ann_checkpoint(ckpt, model=model, arch="digits-cnn", input_shape=SHAPE, num_classes=10, mean=(0.3,), std=(0.4,), metadata={})
    from spikeconv.workflows import Preprocessing

    with pytest.raises(ConfigError, match="records its own preprocessing"):
        load_ann(ckpt, ModelSpec(preprocessing=Preprocessing((0.5,), (0.5,))))
    with pytest.raises(ConfigError, match="--arch applies to state_dict files"):
        load_ann(ckpt, ModelSpec(arch="digits-cnn"))
    onnx_path = tmp_path / "m.onnx"
    torch.onnx.export(model, (torch.rand(1, *SHAPE),), str(onnx_path), dynamo=False)
    with pytest.raises(ConfigError, match=r"fixed in the file; --input-shape \(1, 9, 9\)"):
        load_ann(onnx_path, ModelSpec(input_shape=(1, 9, 9)))
    with pytest.raises(ConfigError, match="has 10 outputs, not --num-classes 7"):
        load_ann(onnx_path, ModelSpec(num_classes=7))
    with pytest.raises(ConfigError, match="--mean has 3 values but"):
        load_ann(onnx_path, ModelSpec(preprocessing=Preprocessing((0.1, 0.2, 0.3), (1.0,))))


@pytest.mark.parametrize("form", ["onnx", "pt2"])
def test_a_three_channel_model_on_grey_data_gets_the_grey_channel_repeated(tmp_path, form):
    """A stock RGB network trained on grey images fed as torchvision's Grayscale(3) does: the loader repeats the data's one
    channel, records it with the normalisation, and the rebuilt ANN computes the same."""
    from spikeconv.workflows import Preprocessing

    torch.manual_seed(0)
    rgb = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10)).eval()
    path = tmp_path / f"rgb.{form}"
    if form == "onnx":
        torch.onnx.export(rgb, (torch.rand(1, 3, 8, 8),), str(path), dynamo=False)
    else:
        torch.export.save(torch.export.export(rgb, (torch.rand(1, 3, 8, 8),)), str(path))
    mean, std = (0.1, 0.2, 0.3), (0.5,)
    loaded = load_ann(path, ModelSpec(preprocessing=Preprocessing(mean, std)), data_shape=SHAPE)
    assert loaded.input_shape == SHAPE and loaded.preprocessing["repeat_channels"] == 3
    grey = torch.rand(5, *SHAPE)
    expected = rgb((grey.repeat(1, 3, 1, 1) - torch.tensor(mean).reshape(1, 3, 1, 1)) / 0.5)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(grey), expected, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(rebuild_ann(loaded.source)(grey), expected, rtol=1e-4, atol=1e-5)
    assert load_ann(path, data_shape=(3, 8, 8)).input_shape == (3, 8, 8)  # RGB data: nothing repeated
    assert Preprocessing.from_dict({"mean": [0.5], "std": [0.5]}).repeat_channels == 1  # records before the option
    from spikeconv.ingest.preprocessing import describe_preprocessing

    assert describe_preprocessing(loaded.preprocessing).startswith("the grey channel repeated to 3, then (x - mean) / std")
    assert describe_preprocessing(load_ann(path, data_shape=SHAPE).preprocessing) == "the grey channel repeated to 3, x in [0, 1]"
