"""An SNN file of a converted ViT records its spike-equivalent operators, and ``info`` shows them (text and JSON)."""

from __future__ import annotations

import json

import torch
from torch import nn

import spikeconv
from spikeconv.files import describe_file, format_description
from spikeconv.files.snn_file import save_snn
from tests.ingest.test_transformer_ingest import tiny_vit

INFO = {"input_shape": [1, 8, 8], "num_classes": 3, "preprocessing": None, "method": "calibrated"}


def _convert(model: nn.Module, shape: tuple[int, ...]) -> spikeconv.SpikingNetwork:
    calibration = [torch.randn(32, *shape, generator=torch.Generator().manual_seed(0))]
    return spikeconv.convert(model, calibration, method="calibrated", timesteps=4)


def test_vit_snn_file_lists_its_operators_and_info_reports_them(tmp_path):
    snn = _convert(tiny_vit(layers=2), (1, 8, 8))
    save_snn(tmp_path / "vit.snn.pt", snn, ann_source={"kind": "module"}, info=INFO)
    described = describe_file(tmp_path / "vit.snn.pt")
    operators = described["operators"]
    assert operators == snn.metadata["operators"]  # as the conversion made them, node name -> kind
    spiking = list(operators["spiking"].values())
    # per block: scores and context products, a softmax, a GELU; LayerNorms except the first (it reads the time-invariant input)
    assert spiking.count("product") == 4 and spiking.count("softmax") == 2 and spiking.count("gelu") == 2
    assert list(operators["static"].values()) == ["layer_norm"]
    assert spiking.count("layer_norm") == 5 - 1
    assert described["timesteps"] == 4
    json.dumps(described)  # `info --json` writes it as it is
    text = format_description(described)
    row = next(line for line in text.splitlines() if line.startswith("operators"))
    assert "12 spike-equivalent (2 gelu, 4 layer_norm, 4 product, 2 softmax;" in row
    assert "1 on time-invariant values computed once (1 layer_norm)" in row


def test_a_cnn_snn_file_has_no_operators_row(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    snn = _convert(model, (1, 8, 8))
    save_snn(tmp_path / "cnn.snn.pt", snn, ann_source={"kind": "module"}, info=INFO)
    assert "operators" not in torch.load(tmp_path / "cnn.snn.pt", weights_only=True)
    described = describe_file(tmp_path / "cnn.snn.pt")
    assert "operators" not in described and "\noperators" not in format_description(described)
