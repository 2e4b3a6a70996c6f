"""ANN checkpoint files: round trip, weights_only loading, and one-line errors for bad files."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from spikeconv.errors import CheckpointError, ConfigError
from spikeconv.models import build_model
from spikeconv.training import (
    ANN_CHECKPOINT_FORMAT,
    AnnCheckpoint,
    AnnTrainConfig,
    load_ann_checkpoint,
    save_ann_checkpoint,
)

MEAN, STD = (0.2860,), (0.3530,)


def _model() -> nn.Module:
    torch.manual_seed(0)
    model = build_model("digits-cnn", input_shape=(1, 8, 8), num_classes=10, mean=MEAN, std=STD)
    with torch.no_grad():  # non-default BN statistics, so buffers are checked too
        model.bn1.running_mean.uniform_(-1, 1)
    return model.eval()


def _save(path: Path, model: nn.Module, **overrides) -> None:
    options = dict(
        model=model,
        arch="digits-cnn",
        input_shape=(1, 8, 8),
        num_classes=10,
        mean=MEAN,
        std=STD,
        metadata={
            "dataset": "digits",
            "test_accuracy": 97.5,
            "train_config": AnnTrainConfig(epochs=3).to_dict(),
            "command": ["spikeconv", "train"],
        },
    )
    options.update(overrides)
    save_ann_checkpoint(path, **options)


def test_round_trip(tmp_path: Path) -> None:
    model = _model()
    path = tmp_path / "sub" / "ann.pt"
    _save(path, model)
    checkpoint = load_ann_checkpoint(path)
    assert isinstance(checkpoint, AnnCheckpoint)
    assert checkpoint.arch == "digits-cnn"
    assert checkpoint.input_shape == (1, 8, 8) and checkpoint.num_classes == 10
    assert checkpoint.mean == MEAN and checkpoint.std == STD
    assert checkpoint.batch_norm is True
    assert checkpoint.format_version == 1
    expected = model.state_dict()
    assert checkpoint.state_dict.keys() == expected.keys()
    assert all(torch.equal(checkpoint.state_dict[k], expected[k]) for k in expected)
    assert checkpoint.metadata["dataset"] == "digits"
    assert checkpoint.metadata["test_accuracy"] == 97.5
    assert checkpoint.metadata["train_config"]["epochs"] == 3
    assert checkpoint.metadata["torch_version"] == torch.__version__
    assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # no temporary files left


def test_rebuilt_model_gives_identical_outputs(tmp_path: Path) -> None:
    model = _model()
    _save(tmp_path / "ann.pt", model)
    checkpoint = load_ann_checkpoint(tmp_path / "ann.pt")
    rebuilt = build_model(
        checkpoint.arch,
        input_shape=checkpoint.input_shape,
        num_classes=checkpoint.num_classes,
        mean=checkpoint.mean,
        std=checkpoint.std,
        batch_norm=checkpoint.batch_norm,
    )
    rebuilt.load_state_dict(checkpoint.state_dict)
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(rebuilt.eval()(x), model(x), rtol=0, atol=0)


def test_file_loads_with_plain_weights_only_torch_load(tmp_path: Path) -> None:
    model = build_model("mlp", input_shape=(1, 4, 4), num_classes=3, batch_norm=False)
    path = tmp_path / "ann.pt"
    _save(path, model, arch="mlp", input_shape=(1, 4, 4), num_classes=3, mean=None, std=None)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["format"] == ANN_CHECKPOINT_FORMAT and raw["format_version"] == 1
    assert raw["normalization"] is None and raw["batch_norm"] is False and raw["activation"] is None
    assert set(raw) == {
        "format", "format_version", "arch", "input_shape", "num_classes",
        "normalization", "batch_norm", "activation", "state_dict", "metadata",
    }  # fmt: skip
    assert load_ann_checkpoint(path).mean is None


def test_pickled_module_rejected(tmp_path: Path) -> None:
    path = tmp_path / "module.pt"
    torch.save(_model(), path)
    with pytest.raises(CheckpointError, match="pickled Python objects .* will not execute") as info:
        load_ann_checkpoint(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize(
    "content",
    [b"this is not a torch file", b"", pickle.dumps({"format": ANN_CHECKPOINT_FORMAT})],
    ids=["garbage", "empty", "plain-pickle"],
)
def test_unreadable_files_rejected(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a readable torch file") as info:
        load_ann_checkpoint(path)
    assert "\n" not in str(info.value)


def test_truncated_file_rejected(tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    _save(good, _model())
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt or truncated") as info:
        load_ann_checkpoint(bad)
    assert "\n" not in str(info.value)


def test_missing_file_and_directory_rejected(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_ann_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="is not a file"):
        load_ann_checkpoint(tmp_path)


def test_bare_state_dict_and_wrong_format_rejected(tmp_path: Path) -> None:
    torch.save(_model().state_dict(), tmp_path / "state.pt")
    with pytest.raises(CheckpointError, match="not a spikeconv ANN checkpoint"):
        load_ann_checkpoint(tmp_path / "state.pt")
    torch.save({"format": "spikeconv-snn", "format_version": 1}, tmp_path / "snn.pt")
    with pytest.raises(CheckpointError, match="format 'spikeconv-snn', expected 'spikeconv-ann'"):
        load_ann_checkpoint(tmp_path / "snn.pt")
    torch.save({"format": ANN_CHECKPOINT_FORMAT, "format_version": 99}, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="format_version 99"):
        load_ann_checkpoint(tmp_path / "new.pt")
    torch.save({"format": ANN_CHECKPOINT_FORMAT, "format_version": 1}, tmp_path / "part.pt")
    with pytest.raises(CheckpointError, match="lacks arch, input_shape"):
        load_ann_checkpoint(tmp_path / "part.pt")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"metadata": {"when": object()}}, r"metadata\['when'\] holds a object"),
        ({"metadata": {"nested": [1, {"p": Path("x")}]}}, r"metadata\['nested'\]\[1\]\['p'\]"),
        ({"metadata": {1: "x"}}, "non-string key"),
        ({"mean": (0.5,), "std": None}, "both mean and std"),
        ({"arch": ""}, "arch"),
    ],
)
def test_invalid_save_arguments_rejected(tmp_path: Path, overrides: dict, expected: str) -> None:
    path = tmp_path / "ann.pt"
    with pytest.raises(ConfigError, match=expected):
        _save(path, _model(), **overrides)
    assert not path.exists() and list(tmp_path.iterdir()) == []
