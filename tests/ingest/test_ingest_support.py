"""The support check: supported operators pass; every unsupported node is named in one error."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn

from spikeconv.errors import UnsupportedLayerError
from spikeconv.ingest import check_supported, find_unsupported, ingest_module


class _Wrap(nn.Module):
    """conv -> <op under test> -> conv: the op sits on time-varying data."""

    def __init__(self, op) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.op = op if isinstance(op, nn.Module) else None
        self.fn = None if isinstance(op, nn.Module) else op
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        y = self.stem(x)
        y = self.op(y) if self.op is not None else self.fn(y)
        return self.head(y)


class _Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(4, 1)  # batch_first=False: the batch in dimension 1 is refused

    def forward(self, x):
        tokens = x.flatten(2).permute(2, 0, 1)
        out, _ = self.attention(tokens, tokens, tokens)
        return out.permute(1, 2, 0).reshape(x.shape)


UNSUPPORTED = {  # LayerNorm, GELU, softmax, products and batch-first attention convert (tests/ingest/test_transformer_ingest.py)
    "Sigmoid": (nn.Sigmoid(), "op", "Sigmoid"),
    "Tanh": (nn.Tanh(), "op", "Tanh"),
    "SiLU": (nn.SiLU(), "op", "SiLU"),
    "LeakyReLU": (nn.LeakyReLU(0.1), "op", "LeakyReLU"),
    "Hardtanh(-1,1)": (nn.Hardtanh(), "op", "Hardtanh"),
    "GroupNorm": (nn.GroupNorm(2, 4), "op", "GroupNorm"),
    "Softmax-over-batch": (nn.Softmax(dim=0), "op", "Softmax"),
    "BatchNorm-without-stats": (nn.BatchNorm2d(4, track_running_stats=False), "op", "BatchNorm2d"),
    "attention-batch-second": (_Attention(), "op_attention", "MultiheadAttention"),
    "torch.sigmoid": (torch.sigmoid, "sigmoid", "sigmoid"),
    "x/x": (lambda y: y / (y.abs() + 1), "truediv", "truediv"),
    "clamp(-1,1)": (lambda y: torch.clamp(y, -1.0, 1.0), "clamp", "clamp"),
}


@pytest.mark.parametrize("case", list(UNSUPPORTED), ids=list(UNSUPPORTED))
def test_unsupported_op_is_named(case):
    op, node_name, label = UNSUPPORTED[case]
    model = _Wrap(op)
    gm = fx.symbolic_trace(model)
    found = {(item.name, item.op.rsplit(".", 1)[-1]) for item in find_unsupported(gm)}
    assert (node_name, label) in found
    with pytest.raises(UnsupportedLayerError, match=rf"\b{node_name} \(.*{label}"):
        ingest_module(model)


class _ManyUnsupported(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.SiLU()
        self.gate = nn.Sigmoid()
        self.norm = nn.GroupNorm(2, 4)
        self.attention = nn.MultiheadAttention(4, 1)

    def forward(self, x):
        y = self.conv(x)
        y = self.norm(self.act(y)) * self.gate(y)  # the product itself converts (a spike-equivalent operator)
        tokens = y.flatten(2).permute(2, 0, 1)
        out, _ = self.attention(tokens, tokens, tokens)
        return out.mean(0)


def test_all_unsupported_nodes_are_listed_in_one_error():
    model = _ManyUnsupported()
    with pytest.raises(UnsupportedLayerError) as info:
        ingest_module(model)
    message = str(info.value)
    assert "cannot convert 4 node(s) of _ManyUnsupported" in message
    expected = ["act (torch.nn.modules.activation.SiLU", "gate (torch.nn.modules.activation.Sigmoid",
                "norm (torch.nn.modules.normalization.GroupNorm",
                "attention (torch.nn.modules.activation.MultiheadAttention: batch_first"]  # fmt: skip
    for name in expected:
        assert name in message
    assert "\n" not in message


class _EverythingSupported(nn.Module):
    """One of each supported operator family; ingest must accept it and keep its outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1, groups=1)
        self.grouped = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=4)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.avg = nn.AvgPool2d(2, stride=1)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.conv1d = nn.Conv1d(2, 2, 3, padding=1)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(16 + 8 + 8, 3)

    def forward(self, x):
        y = self.relu(self.bn(self.conv(x)))
        z = F.relu(self.grouped(y)) + y
        z = torch.add(self.pool(z), F.max_pool2d(y, 2))
        z = torch.cat([self.avg(z), F.avg_pool2d(z, 2, stride=1)], dim=1) * 0.5
        pooled = self.gap(z).flatten(1)
        seq = self.conv1d(pooled[:, :8].view(-1, 2, 4))
        w = torch.flatten(F.adaptive_avg_pool2d(z, 1), 1) / 2.0
        return self.fc(self.drop(torch.cat([w, seq.reshape(seq.size(0), -1), F.dropout(pooled[:, 8:], 0.2, False)], 1)))


def test_supported_operators_pass_and_keep_outputs():
    torch.manual_seed(0)
    model = _EverythingSupported().eval()
    assert find_unsupported(fx.symbolic_trace(model)) == []
    x = torch.randn(3, 3, 12, 12)
    torch.testing.assert_close(ingest_module(model)(x), model(x), rtol=1e-5, atol=1e-5)


def test_check_supported_names_the_model():
    gm = fx.symbolic_trace(_Wrap(nn.Tanh()))
    with pytest.raises(UnsupportedLayerError, match=r"^cannot convert 1 node\(s\) of my_net: op \(torch\.nn\.modules\.activation\.Tanh: "):
        check_supported(gm, where="my_net")


def test_maxpool1d_is_refused_with_a_hint():
    model = nn.Sequential(nn.Conv1d(1, 2, 3), nn.ReLU(), nn.MaxPool1d(2), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(UnsupportedLayerError, match="only 2-D max pooling"):
        ingest_module(model)


def test_scaling_a_constant_by_an_activation_is_refused_but_constants_are_not():
    class Scale(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("gain", torch.tensor([2.0]))

        def forward(self, x):
            return 3.0 / x + x * (self.gain * self.gain)

    found = find_unsupported(fx.symbolic_trace(Scale()))
    assert [item.name for item in found] == ["truediv"]
