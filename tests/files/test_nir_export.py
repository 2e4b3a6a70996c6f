"""NIR export and import: exact round trips for every neuron NIR can express, refusals naming the node.

The round trip must give the *identical* network (``torch.equal`` readouts), since ``spikeconv curve
net.nir`` promises the SNN file's curve; the NIR primitives themselves are checked against an
independent simulator in bench/nir_independent_check.py (docs/benchmarks.md).
"""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch
from torch import nn

from spikeconv.calibration import CalibrationConfig, MaxThreshold, calibrate, prepare
from spikeconv.convert import ConvertConfig, Correction, CorrectionConfig, MaxPoolMode, NeuronKind, convert, correct
from spikeconv.errors import ConversionError, SpikeconvError
from spikeconv.files import load_snn
from spikeconv.files.nir_common import below
from spikeconv.files.nir_export import export_nir
from spikeconv.files.nir_import import load_nir_network
from spikeconv.ingest import ingest_module
from spikeconv.neurons import Reset, SinCorrection, trainable_neuron_config
from spikeconv.training.snn.spikify import spikify


class ResidualCnn(nn.Module):
    """Input normalisation, a residual join, BatchNorm (folded by ingest), average and max pooling, a bias-free head."""

    def __init__(self, pool: nn.Module | None = None) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.3]).reshape(1, 1, 1, 1))
        self.register_buffer("std", torch.tensor([0.4]).reshape(1, 1, 1, 1))
        self.c1, self.b1 = nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6)
        self.c2 = nn.Conv2d(6, 6, 3, padding=1)
        self.pool = pool if pool is not None else nn.AvgPool2d(2)
        self.c3 = nn.Conv2d(6, 8, 3, stride=2, padding=1)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5, bias=False)

    def forward(self, x):
        x = (x - self.mean) / self.std
        x = torch.relu(self.b1(self.c1(x)))
        x = x + torch.relu(self.c2(x))
        x = torch.relu(self.c3(self.pool(x)))
        return self.fc(torch.flatten(self.gap(x), 1))


def _data(n: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 12, 12, generator=torch.Generator().manual_seed(seed))


def _converted(config: ConvertConfig, model: nn.Module | None = None, *, corrected: Correction | None = None):
    torch.manual_seed(0)
    model = (model or ResidualCnn()).eval()
    calibration = CalibrationConfig(default=MaxThreshold(per_channel=True))
    calibrated = calibrate(prepare(ingest_module(model), calibration), [_data()])
    if corrected is not None:
        calibrated = correct(calibrated, [_data()], CorrectionConfig(kind=corrected, timesteps=4), config)
    return convert(calibrated, config)


INFO = {"input_shape": [1, 12, 12], "num_classes": 5, "preprocessing": {"mean": [0.3], "std": [0.4]}, "method": "test"}


def _round_trip(snn, tmp_path, steps: int = 6):
    path = tmp_path / "net.nir"
    summary = export_nir(snn, path, info=INFO)
    graph = nir.read(path)  # nir's own reader, with its default type check
    again, info = load_nir_network(path)
    x = _data(16, seed=1)
    with torch.no_grad():
        assert torch.equal(snn(x, steps), again(x, steps))
    return graph, info, summary


@pytest.mark.parametrize("config", [
    ConvertConfig(),
    ConvertConfig(reset=Reset.ZERO),
    ConvertConfig(max_spikes=3),
    ConvertConfig(v_init=0.0),
    ConvertConfig(maxpool=MaxPoolMode.AVERAGE),
], ids=["soft", "hard", "burst3", "v_init0", "maxpool-average"])  # fmt: skip
def test_converted_networks_round_trip_exactly(config, tmp_path):
    model = ResidualCnn(nn.MaxPool2d(2)) if config.maxpool is MaxPoolMode.AVERAGE else None
    graph, info, summary = _round_trip(_converted(config, model), tmp_path)
    assert info["input_shape"] == [1, 12, 12] and info["num_classes"] == 5 and info["method"] == "test"
    types = {type(n).__name__ for n in graph.nodes.values()}
    assert summary["neurons"] == 3
    if config.reset is Reset.ZERO:
        assert "IF" in types and "Threshold" not in types
    else:
        assert {"I", "Threshold", "Scale"} <= types and "IF" not in types


@pytest.mark.parametrize("kind", list(Correction))
def test_corrected_network_round_trips_with_its_bias_and_initial_charge(kind, tmp_path):
    snn = _converted(ConvertConfig(), corrected=kind)
    corrected = [n for _, n in snn.neurons() if n.bias.dim() or n.v_offset.dim()]
    assert corrected, "the correction should have installed bias or v_offset on some neuron"
    graph, _, _ = _round_trip(snn, tmp_path)
    again, _ = load_nir_network(tmp_path / "net.nir")
    for (_, a), (_, b) in zip(snn.neurons(), again.neurons(), strict=True):
        assert torch.equal(a.bias, b.bias) and torch.equal(a.v_offset, b.v_offset) and torch.equal(a.threshold, b.threshold)


def test_soft_reset_is_expressed_in_nir_primitives(tmp_path):
    """The construction other readers see: I -> Threshold(below(θ − V0)) -> Scale(−θ) back into I, Scale(θ) onward."""
    snn = _converted(ConvertConfig())
    graph, _, _ = _round_trip(snn, tmp_path)
    name, neuron = next(iter(snn.neurons()))
    edges = set(graph.edges)
    assert {(name, f"{name}_fire"), (f"{name}_fire", f"{name}_reset"), (f"{name}_reset", name), (f"{name}_fire", f"{name}_out")} <= edges
    theta = float(neuron.threshold.reshape(-1)[0])
    reset = graph.nodes[f"{name}_reset"].scale
    assert reset.reshape(reset.shape[0], -1)[0, 0] == np.float32(-theta)
    start = 0.5 * theta
    fire = graph.nodes[f"{name}_fire"].threshold.reshape(reset.shape[0], -1)[0, 0]
    assert fire == below(np.float32(theta) - np.float32(start)) and fire < np.float32(theta - start)
    assert isinstance(graph.nodes["readout"], nir.I) and ("readout", "output") in edges


@pytest.mark.parametrize("name, overrides", [("srif", {"mpr": True}), ("srif", {}), ("lif", {}), ("if", {}), ("mtlif", {})])
def test_directly_trained_networks_round_trip_exactly(name, overrides, tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                          nn.Linear(100, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 5))  # fmt: skip
    snn = spikify(model, trainable_neuron_config(name, **overrides), timesteps=4)
    with torch.no_grad():  # trained-looking BatchNorm statistics, so the round trip is not trivially zero
        for module in snn.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
    _round_trip(snn.eval(), tmp_path)


@pytest.mark.parametrize("config, option", [
    (ConvertConfig(sin_correction=SinCorrection.SIGNED), "--sin-correction none"),
    (ConvertConfig(neuron=NeuronKind.BISTABLE), "--method"),
], ids=["signed", "bistable"])  # fmt: skip
def test_what_nir_cannot_express_is_refused_by_name(config, option, tmp_path):
    snn = _converted(config)
    out = tmp_path / "net.nir"
    with pytest.raises(ConversionError, match=option) as error:
        export_nir(snn, out, info=INFO)
    first_neuron = next(iter(snn.neurons()))[0]
    assert f"node {first_neuron}" in str(error.value) and "\n" not in str(error.value)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_spiking_max_pool_is_refused_with_the_option_that_avoids_it(tmp_path):
    snn = _converted(ConvertConfig(), ResidualCnn(nn.MaxPool2d(2)))
    with pytest.raises(ConversionError, match="--maxpool average") as error:
        export_nir(snn, tmp_path / "net.nir", info=INFO)
    assert "node pool" in str(error.value)
    assert not list(tmp_path.iterdir())


def test_edited_file_is_refused_rather_than_read_with_stale_record(tmp_path):
    import h5py

    snn = _converted(ConvertConfig())
    path = tmp_path / "net.nir"
    export_nir(snn, path, info=INFO)
    name = next(iter(snn.neurons()))[0]
    with h5py.File(path, "r+") as handle:
        data = handle[f"node/nodes/{name}_fire/threshold"]
        data[...] = data[()] * 0.5
    with pytest.raises(SpikeconvError, match=f"node {name}.*edited"):
        load_nir_network(path)


def test_other_tools_uniform_if_nodes_read_as_hard_reset_neurons(tmp_path):
    """A NIR file spikeconv did not write: Affine -> IF -> Affine, the shape snnTorch/sinabs export."""
    gen = np.random.default_rng(0)
    w1, w2 = gen.normal(size=(6, 4)).astype(np.float32), gen.normal(size=(3, 6)).astype(np.float32)
    graph = nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([4])}),
        "fc1": nir.Affine(weight=w1, bias=np.zeros(6, np.float32)),
        "lif": nir.IF(r=np.ones(6, np.float32), v_threshold=np.full(6, 0.5, np.float32), v_reset=np.zeros(6, np.float32)),
        "fc2": nir.Linear(weight=w2),
        "output": nir.Output(output_type={"output": np.array([3])}),
    }, edges=[("input", "fc1"), ("fc1", "lif"), ("lif", "fc2"), ("fc2", "output")])  # fmt: skip
    path = tmp_path / "foreign.nir"
    nir.write(path, graph)
    loaded = load_snn(path)
    x = torch.rand(5, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = loaded.snn(x, 3)
    v, expected = torch.zeros(5, 6), []
    current = x @ torch.from_numpy(w1).T
    for _ in range(3):  # NIR's IF: v += x; z = v > 0.5; v = 0 where z
        v = v + current
        z = (v > 0.5).float()
        v = torch.where(z.bool(), torch.zeros_like(v), v)
        expected.append(z @ torch.from_numpy(w2).T)
    assert torch.allclose(out, torch.stack(expected)) and loaded.ann is None and loaded.info["num_classes"] == 3
