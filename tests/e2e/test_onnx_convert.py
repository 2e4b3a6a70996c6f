"""An ONNX export converts to the same SNN as the torch model it came from (both exporters)."""

from __future__ import annotations

import json

import pytest
import torch

from spikeconv.cli import main
from spikeconv.models import build_model
from spikeconv.training import save_ann_checkpoint


@pytest.fixture
def digits_model(tmp_path):
    torch.manual_seed(0)
    model = build_model("digits-cnn", input_shape=(1, 8, 8), num_classes=10, mean=(0.3,), std=(0.4,)).eval()
    ckpt = tmp_path / "ann.pt"
    save_ann_checkpoint(ckpt, model=model, arch="digits-cnn", input_shape=(1, 8, 8), num_classes=10,
                        mean=(0.3,), std=(0.4,), metadata={})  # fmt: skip
    return model, ckpt


def _curve(model_path, tmp_path, name, capsys):
    snn, out = tmp_path / f"{name}.snn.pt", tmp_path / f"{name}.json"
    assert main(["convert", str(model_path), "--dataset", "digits", "--out", str(snn), "--calib-samples", "256"]) == 0
    assert main(["curve", str(snn), "--dataset", "digits", "--timesteps", "16", "--limit", "200", "--json", str(out)]) == 0
    capsys.readouterr()
    return json.loads(out.read_text())


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript-exporter", "dynamo-exporter"])
def test_onnx_export_gives_the_same_curve_as_the_torch_model(digits_model, tmp_path, capsys, dynamo):
    model, ckpt = digits_model
    onnx_path = tmp_path / "model.onnx"
    torch.onnx.export(model, (torch.rand(1, 1, 8, 8),), str(onnx_path), dynamo=dynamo)
    capsys.readouterr()
    from_torch = _curve(ckpt, tmp_path, "torch", capsys)
    from_onnx = _curve(onnx_path, tmp_path, "onnx", capsys)
    assert from_onnx["ann_accuracy"] == from_torch["ann_accuracy"]
    assert max(abs(a - b) for a, b in zip(from_onnx["accuracy"], from_torch["accuracy"], strict=True)) <= 0.1
