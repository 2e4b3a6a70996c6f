"""BSNN conversion: bistable neurons by spiking depth, synchronous delays at residual joins."""

from __future__ import annotations

import torch
from torch import nn

from spikeconv.calibration import calibrate, prepare
from spikeconv.convert import BistableConfig, ConvertConfig, NeuronKind, convert
from spikeconv.ingest import ingest_module
from spikeconv.neurons import BistableIFNeuron, SynchronousDelay


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 5)

    def forward(self, x):
        a = torch.relu(self.stem(x))
        b = torch.relu(self.conv1(a))
        return self.fc(torch.relu(self.conv2(b) + a).flatten(1))


def _converted(synchronous: bool):
    torch.manual_seed(0)
    model = Residual().eval()
    x = torch.rand(64, 1, 8, 8)
    config = ConvertConfig(neuron=NeuronKind.BISTABLE, bistable=BistableConfig(synchronous=synchronous))
    return model, x, convert(calibrate(prepare(ingest_module(model)), [x]), config)


def test_neurons_get_their_spiking_depth_and_the_shortcut_a_delay():
    _, _, snn = _converted(True)
    depths = {name: n.depth for name, n in snn.neurons() if isinstance(n, BistableIFNeuron)}
    assert sorted(depths.values()) == [1, 2, 3]
    delays = [m for m in snn.body.modules() if isinstance(m, SynchronousDelay)]
    assert [d.delay for d in delays] == [1]  # shortcut (depth 1) meets the main path (depth 2)
    assert snn.metadata["bistable"]["delays"] and snn.metadata["convert"]["neuron"] == "bistable"


def test_without_synchronous_neurons_no_delay_is_inserted():
    _, _, snn = _converted(False)
    assert not any(isinstance(m, SynchronousDelay) for m in snn.body.modules())


def test_bistable_snn_approaches_the_ann_as_t_grows():
    model, x, snn = _converted(True)
    with torch.no_grad():
        ref = model(x)
        errors = [((snn(x, t).mean(0) - ref).norm() / ref.norm()).item() for t in (16, 64, 256)]
    assert errors[2] < errors[1] < errors[0] and errors[2] < 0.05, errors
