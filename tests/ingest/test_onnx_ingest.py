"""ingest_onnx on models exported by both torch exporters: same canonical form as ingest_module."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from spikeconv.calibration import CalibrationConfig, MaxThreshold, calibrate, prepare
from spikeconv.convert import ConvertConfig, convert
from spikeconv.ingest import CAPS_KEY, CHECK_KEY, SITES_KEY, STAGE_KEY, activation_sites, ingest_module, ingest_onnx
from spikeconv.ingest.passes import assert_canonical
from spikeconv.models import build_model

EXPORTERS = ["torchscript", "dynamo"]


def export(model: nn.Module, example: torch.Tensor, path: Path, exporter: str) -> Path:
    """Export with a symbolic batch dimension, quietly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            torch.onnx.export(model, (example,), str(path), dynamo=True, input_names=["input"], verbose=False,
                              dynamic_shapes=({0: torch.export.Dim("batch")},))  # fmt: skip
        else:
            torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=["input"],
                              dynamic_axes={"input": {0: "batch"}})  # fmt: skip
    return path


class SmallResidual(nn.Module):
    """Max-pool, a residual add, a concatenation, a ReLU6, adaptive average pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2)
        self.body = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.side = nn.Conv2d(8, 4, 1)
        self.cap = nn.ReLU6()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(12, 5)

    def forward(self, x):
        x = self.pool(self.relu(self.bn(self.stem(x))))
        y = self.relu(self.body(x)) + x
        z = torch.cat([y, self.cap(self.side(y))], dim=1)
        return self.fc(torch.flatten(self.gap(z), 1))


def _trained_like(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics, eval mode."""
    torch.manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model.eval()


def _check_like_torch_ingest(gm, model: nn.Module, x: torch.Tensor) -> None:
    reference = ingest_module(model)
    assert set(gm.meta) == set(reference.meta) | {CHECK_KEY}
    assert gm.meta[STAGE_KEY] == "ann"
    assert len(activation_sites(gm)) == len(activation_sites(reference))
    assert sorted(gm.meta[CAPS_KEY].values()) == sorted(reference.meta[CAPS_KEY].values())
    assert_canonical(gm)
    check = gm.meta[CHECK_KEY]
    assert check["max_abs_diff"] <= 1e-4 * check["max_abs_reference"] and check["probe_shape"][0] == 2
    with torch.no_grad():
        torch.testing.assert_close(gm(x), model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_small_residual_net(exporter, tmp_path):
    model = _trained_like(SmallResidual())
    path = export(model, torch.randn(2, 3, 16, 16), tmp_path / "residual.onnx", exporter)
    gm = ingest_onnx(path)
    _check_like_torch_ingest(gm, model, torch.randn(5, 3, 16, 16))
    assert sorted(gm.meta[CAPS_KEY].values()) == [6.0]
    assert sum(isinstance(m, nn.MaxPool2d) for m in gm.modules()) == 1
    assert sum(isinstance(m, nn.AdaptiveAvgPool2d) for m in gm.modules()) == 1


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_fmnist_cnn(exporter, tmp_path):
    model = _trained_like(build_model("fmnist-cnn", input_shape=(1, 28, 28), num_classes=10, mean=(0.286,), std=(0.353,)))
    path = export(model, torch.rand(2, 1, 28, 28), tmp_path / "fmnist.onnx", exporter)
    gm = ingest_onnx(str(path))
    _check_like_torch_ingest(gm, model, torch.rand(3, 1, 28, 28))
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in gm.modules())


@pytest.mark.slow
@pytest.mark.parametrize("exporter", EXPORTERS)
def test_torchvision_resnet18(exporter, tmp_path):
    from torchvision.models import resnet18

    model = _trained_like(resnet18(weights=None))
    path = export(model, torch.randn(1, 3, 64, 64), tmp_path / "resnet18.onnx", exporter)
    gm = ingest_onnx(path)
    assert len(activation_sites(gm)) == 17  # BasicBlock's shared ReLU: 2 sites per block, 8 blocks, + stem
    _check_like_torch_ingest(gm, model, torch.randn(2, 3, 64, 64))


def test_onnx_graph_converts_to_an_snn_that_tracks_the_ann(tmp_path):
    """Calibration and conversion take the ONNX graph as they take a torch one."""
    model = _trained_like(SmallResidual())
    gm = ingest_onnx(export(model, torch.randn(2, 3, 16, 16), tmp_path / "residual.onnx", "torchscript"))
    data = torch.randn(16, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    calibrated = calibrate(prepare(gm, CalibrationConfig(default=MaxThreshold())), [data])
    snn = convert(calibrated, ConvertConfig(timesteps=128))
    with torch.no_grad():
        rate = snn(data[:4]).mean(0)
        ann = gm(data[:4])
    error = (rate - ann).abs().max().item()
    assert error < 0.05 * ann.abs().max().item(), error
    assert set(snn.metadata["plan"]["thresholds"]) == set(gm.meta[SITES_KEY])


def test_site_caps_bound_calibrated_thresholds(tmp_path):
    model = _trained_like(SmallResidual())
    gm = ingest_onnx(export(model, torch.randn(2, 3, 16, 16), tmp_path / "residual.onnx", "torchscript"))
    data = torch.randn(16, 3, 16, 16, generator=torch.Generator().manual_seed(4)) * 20
    plan = calibrate(prepare(gm, CalibrationConfig(default=MaxThreshold())), [data]).meta["spikeconv_plan"]
    for site, cap in gm.meta[CAPS_KEY].items():
        assert max(plan.thresholds[site]) <= cap
    assert all(math.isfinite(max(t)) for t in plan.thresholds.values())
