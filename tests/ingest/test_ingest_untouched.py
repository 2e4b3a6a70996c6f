"""ingest_module leaves the user's model alone, drops dropout, and refuses NaN/Inf weights."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spikeconv.errors import CheckpointError, UnsupportedLayerError
from spikeconv.ingest import SITES_KEY, STAGE_KEY, ingest_module


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.bn = nn.BatchNorm2d(3)
        self.relu = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(3 * 4 * 4, 2)

    def forward(self, x):
        y = self.drop(self.relu(self.bn(self.conv(x))))
        return self.fc(F.dropout(y.flatten(1), 0.3, self.training))


def _snapshot(model: nn.Module) -> dict:
    return {
        "state": copy.deepcopy(model.state_dict()),
        "training": {name: m.training for name, m in model.named_modules()},
        "grad": {name: p.requires_grad for name, p in model.named_parameters()},
        "device": {p.device for p in model.parameters()},
        "modules": {name: (type(m), id(m)) for name, m in model.named_modules()},
    }


def test_user_model_is_untouched():
    torch.manual_seed(0)
    model = _Net().train()
    model.conv.weight.requires_grad_(False)
    with torch.no_grad():
        model.bn.running_var.fill_(2.0)
    before = _snapshot(model)
    gm = ingest_module(model)
    after = _snapshot(model)
    assert after["training"] == before["training"] and all(after["training"].values())
    assert after["grad"] == before["grad"] and after["grad"]["conv.weight"] is False
    assert after["device"] == before["device"]
    assert after["modules"] == before["modules"]
    for key, value in before["state"].items():
        assert torch.equal(after["state"][key], value), key
    model_tensors = {t.data_ptr() for t in list(model.parameters()) + list(model.buffers())}
    assert not model_tensors & {t.data_ptr() for t in list(gm.parameters()) + list(gm.buffers())}
    assert gm.training is False


def test_editing_the_graph_does_not_reach_the_model():
    model = _Net().eval()
    reference = model.fc.weight.detach().clone()
    gm = ingest_module(model)
    with torch.no_grad():
        for parameter in gm.parameters():
            parameter.zero_()
    gm.train()
    assert torch.equal(model.fc.weight, reference)
    assert model.training is False


def test_dropout_is_removed_and_outputs_match_eval_mode():
    torch.manual_seed(0)
    model = _Net().eval()
    gm = ingest_module(model)
    assert not any(isinstance(m, nn.Dropout) for m in gm.modules())
    assert not [n for n in gm.graph.nodes if n.op == "call_function" and n.target is F.dropout]
    assert gm.meta[STAGE_KEY] == "ann" and gm.meta[SITES_KEY] == ("relu",)
    x = torch.randn(4, 1, 6, 6)
    torch.testing.assert_close(gm(x), model(x))


@pytest.mark.parametrize(("tensor", "value"), [("conv.weight", float("nan")), ("bn.running_var", float("inf"))])
def test_non_finite_weights_are_rejected_by_name(tensor, value):
    model = _Net()
    with torch.no_grad():
        model.state_dict()[tensor].view(-1)[0] = value
    with pytest.raises(CheckpointError, match=rf"'{tensor}' contains NaN or Inf"):
        ingest_module(model)


def test_non_module_is_refused():
    with pytest.raises(UnsupportedLayerError, match="expected a torch.nn.Module, got function"):
        ingest_module(lambda x: x)


def test_untraceable_model_gets_one_line_error():
    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(UnsupportedLayerError, match=r"cannot trace Branchy with torch\.fx .*ingest_onnx") as info:
        ingest_module(Branchy())
    assert "\n" not in str(info.value)
