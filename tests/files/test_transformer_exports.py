"""A converted ViT: onnxruntime looping its ONNX step graph reproduces the simulation; NIR refuses it in one line."""

from __future__ import annotations

import pytest
import torch

import spikeconv
from spikeconv.errors import ConversionError
from spikeconv.files.nir_export import snn_to_nir
from spikeconv.files.onnx_step import export_onnx_step, run_onnx_step
from tests.ingest.test_transformer_ingest import tiny_vit

INFO = {"input_shape": [1, 8, 8], "num_classes": 3, "preprocessing": None}


def _snn():
    return spikeconv.convert(tiny_vit(layers=1), [torch.randn(32, 1, 8, 8, generator=torch.Generator().manual_seed(0))],
                             method="calibrated", timesteps=6)  # fmt: skip


def test_onnx_step_graph_of_a_vit_reproduces_the_simulation(tmp_path):
    snn = _snn()
    summary = export_onnx_step(snn, tmp_path / "vit.onnx", info=INFO)
    kinds = list(summary["neurons"].values())  # every stateful module of the step graph, by type
    assert kinds.count("SpikeEquivalentOperator") == 6 and kinds.count("IFNeuron") == 2 * 4 + 2  # ln_1 of block 1 is static
    images = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = snn(images, 6).numpy()
    looped = run_onnx_step(tmp_path / "vit.onnx", images.numpy(), 6)
    assert looped.shape == expected.shape
    assert abs(looped - expected).max() < 1e-3 * max(1.0, abs(expected).max())


def test_nir_export_refuses_spike_equivalent_operators_in_one_line():
    with pytest.raises(ConversionError, match="spike-equivalent .*NIR cannot express.*--format onnx") as info:
        snn_to_nir(_snn(), info=INFO)
    assert "\n" not in str(info.value)
